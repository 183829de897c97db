"""The at-scale guide's Dask, LangChain and LlamaIndex blocks run, as written.

tests/docs runs every ```python block of the guides in the main suite; these are fenced ```py
there because they need the engines and frameworks that only this env installs. (The Ray block,
which reads and writes parquet folders on a Ray cluster, is not run here: examples/ray_embed.py
and test_ray.py exercise the same `map_batches(Embedder, ...)` call.) Here each runs against the
local server with what the guide leaves to the reader: a ``corpus/`` folder of parquet with a
"text" column, a list ``texts`` and LlamaIndex ``documents``. What each block produces is then
checked row by row against the deterministic embedder.
"""

from __future__ import annotations

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
