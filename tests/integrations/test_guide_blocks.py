"""The at-scale guide's Ray, Dask, LangChain and LlamaIndex blocks run, as written.

tests/docs runs every ```python block of the guides in the main suite; these are fenced ```py
there because they need the engines and frameworks that only this env installs. Here each runs
against the local server with what the guide leaves to the reader: a ``corpus/`` folder of
parquet with a "text" column, a list ``texts`` and LlamaIndex ``documents`` (and, for Ray, a
local Ray of 2 CPUs). What each block produces (the ``vectors/`` folders the Ray and Dask blocks
write, the frameworks' stores) is then checked row by row against the deterministic embedder.
"""

from __future__ import annotations

import signal
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aligneai.testing import LocalServer, embed

from ._common import KEY, corpus

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "at-scale.md"
DIMS = 256  # what the guide's blocks ask for
TEXTS = corpus(60)


def guide_blocks() -> list[str]:
    """The ```py blocks of the guide, in order."""
    blocks, lines, i = [], GUIDE.read_text(encoding="utf-8").splitlines(), 0
    while i < len(lines):
        if lines[i].strip() == "```py":
            j = lines.index("```", i + 1)
            blocks.append(textwrap.dedent("\n".join(lines[i + 1 : j])) + "\n")
            i = j
        i += 1
    return blocks


BLOCKS = guide_blocks()


def block(word: str) -> str:
    (found,) = [code for code in BLOCKS if word in code]
    return found


@pytest.fixture
def guide_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalServer]:
    with LocalServer(api_key=KEY) as server:
        monkeypatch.setenv("ALIGNEAI_BASE_URL", server.url)
        monkeypatch.setenv("ALIGNEAI_API_KEY", KEY)
        monkeypatch.chdir(tmp_path)
        (tmp_path / "corpus").mkdir()
        pq.write_table(pa.table({"text": TEXTS}), tmp_path / "corpus" / "part-0.parquet")
        yield server


def check(by_text: dict[str, Any]) -> None:
    assert sorted(by_text) == sorted(TEXTS)  # nothing lost, nothing duplicated
    for text, vector in by_text.items():
        assert np.array_equal(np.asarray(vector, dtype=np.float32), embed(text, DIMS)), text


def test_the_guides_four_engine_blocks_are_the_ones_run_here() -> None:
    assert len(BLOCKS) == 4
    for word in ("import ray", "import dask", "langchain", "llama_index"):
        block(word)  # exactly one block each


# dask's read_parquet and to_parquet call pandas methods that pandas 3.1 deprecates (their code).
@pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index is deprecated")
@pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.set_index is deprecated")
def test_the_dask_block_runs(guide_env: LocalServer, tmp_path: Path) -> None:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(block("import dask"), f"{GUIDE}:dask", "exec"), namespace)
    table = pq.read_table(tmp_path / "vectors")  # what the block's to_parquet wrote
    assert table.schema.field("embedding").type == pa.list_(pa.float32())
    check(dict(zip(table.column("text").to_pylist(), table.column("embedding").to_pylist())))


# Ray warns about its own deprecated settings from inside ray.data, and older Rays leave a
# helper process of ray.init to the garbage collector (not our doing; as in test_ray.py).
@pytest.mark.filterwarnings(r"ignore::DeprecationWarning:ray\..*")
@pytest.mark.filterwarnings("ignore:subprocess .* is still running:ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
# 60 rows are one block, less than the block's 4 actors can share (a corpus has many more).
@pytest.mark.filterwarnings("ignore:The minimum number of concurrent actors:UserWarning")
def test_the_ray_block_runs(
    guide_env: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ray = pytest.importorskip("ray")
    assert not ray.is_initialized()
    monkeypatch.setenv("RAY_DEDUP_LOGS", "0")

    def too_long(signum: int, frame: Any) -> None:
        raise TimeoutError("the guide's Ray block ran for 300 s")

    # A small machine: 2 CPUs for the block's 4 actors and its read and write tasks (with a
    # whole CPU per actor, it waited forever). The workers start with this environment: the
    # local server's URL and the key come from it.
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    previous = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(300)  # bounded: a scheduling deadlock fails the test instead of hanging it
    try:
        exec(compile(block("import ray"), f"{GUIDE}:ray", "exec"), {"__name__": "__main__"})
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        ray.shutdown()
    table = pq.read_table(tmp_path / "vectors")  # what the block's write_parquet wrote
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), DIMS)
    check(dict(zip(table.column("text").to_pylist(), table.column("embedding").to_pylist())))
    assert guide_env.stats.inputs == len(TEXTS)  # each text embedded once


def test_the_langchain_block_runs(guide_env: LocalServer) -> None:
    code = block("langchain") + "\nresult = store.similarity_search(TEXTS[7], k=3)\n"
    namespace: dict[str, Any] = {"__name__": "__main__", "texts": TEXTS, "TEXTS": TEXTS}
    exec(compile(code, f"{GUIDE}:langchain", "exec"), namespace)
    assert namespace["result"][0].page_content == TEXTS[7]


def test_the_llama_index_block_runs(guide_env: LocalServer) -> None:
    from llama_index.core import Document

    documents = [Document(text=text) for text in TEXTS]
    code = block("llama_index")
    code += "\nnodes = index.as_retriever(similarity_top_k=1).retrieve(TEXTS[7])\n"
    namespace: dict[str, Any] = {"__name__": "__main__", "documents": documents, "TEXTS": TEXTS}
    exec(compile(code, f"{GUIDE}:llama_index", "exec"), namespace)
    assert namespace["nodes"][0].node.get_content() == TEXTS[7]
