"""Every ```python block of the guides (docs/*.md) runs against the local server.

The setup is the one docs/index.md documents ("How the examples run"): a fresh
`aligneai.testing.LocalServer` per page, ``ALIGNEAI_BASE_URL`` pointing at it, ``ALIGNEAI_API_KEY``
set (the server accepts any key), a scratch working directory for the files a page writes. The
blocks of one page run in order in one namespace (``__name__ == "__main__"``), as if they were
typed into one script, so a page may build on its earlier blocks. A block that must not run is not
a ```python block: ```sh for commands, ```py for Python that needs something the suite does not
install (the line before it then says why, in an HTML comment ``<!-- not run: ... -->``).

The reference pages (docs/reference/) hold no examples of their own: mkdocstrings fills them in.
"""

from __future__ import annotations

import os
import re
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import aligneai
from aligneai.testing import LocalServer

DOCS = Path(__file__).resolve().parents[2] / "docs"
GUIDES = sorted(path for path in DOCS.glob("*.md"))
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,}|~{3,})(?P<info>[^`]*)$")
NOT_RUN = re.compile(r"<!--\s*not run:\s*\S.*-->")
# The whole docs suite must stay fast (< 30 s on a loaded 2-core machine): one page gets 10 s.
PAGE_BUDGET = 10.0


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: Path
    line: int  # 1-based line of the opening fence
    info: str  # the fence's info string: "python", "sh", ...
    code: str  # dedented to the fence's indentation
    previous: str  # the last non-blank line before the fence

    @property
    def where(self) -> str:
        """Return ``docs/page.md:line``, for failure messages."""
        return f"docs/{self.page.name}:{self.line}"


def extract_blocks(page: Path) -> list[Block]:
    """Return the fenced code blocks of ``page``, in order (fences may be indented in lists)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    previous = ""
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            if lines[i].strip():
                previous = lines[i].strip()
            i += 1
            continue
        indent, ticks = opening.group("indent"), opening.group("ticks")
        body: list[str] = []
        j = i + 1
        while j < len(lines) and lines[j].strip() != ticks:
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j])
            j += 1
        assert j < len(lines), f"docs/{page.name}:{i + 1}: the code block is never closed"
        info = opening.group("info").strip()
        blocks.append(Block(page, i + 1, info, textwrap.dedent("\n".join(body)) + "\n", previous))
        previous = ""
        i = j + 1
    return blocks


def python_blocks(page: Path) -> list[Block]:
    """Return the blocks of ``page`` that the suite runs: those fenced ```python."""
    return [block for block in extract_blocks(page) if block.info == "python"]


@pytest.fixture
def docs_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalServer]:
    """The documented setup: a local server, the two variables, a scratch directory."""
    with LocalServer() as server:
        for name in [name for name in os.environ if name.startswith("ALIGNEAI_")]:
            monkeypatch.delenv(name)
        monkeypatch.setenv("ALIGNEAI_BASE_URL", server.url)
        monkeypatch.setenv("ALIGNEAI_API_KEY", "sk-local-test")
        monkeypatch.chdir(tmp_path)
        try:
            yield server
        finally:
            # The module-level client's settings are process-wide: leave them as they were.
            monkeypatch.setattr(aligneai, "api_key", None)
            monkeypatch.setattr(aligneai, "base_url", None)


@pytest.mark.parametrize("page", GUIDES, ids=[page.name for page in GUIDES])
def test_python_blocks_run(page: Path, docs_env: LocalServer) -> None:
    namespace: dict[str, object] = {"__name__": "__main__"}
    started = time.monotonic()
    for block in python_blocks(page):
        code = compile(block.code, f"<{block.where}>", "exec")
        try:
            exec(code, namespace)
        except Exception as exc:  # say which block failed
            raise AssertionError(f"{block.where}: the python block failed: {exc!r}") from exc
    elapsed = time.monotonic() - started
    assert elapsed < PAGE_BUDGET, f"docs/{page.name}: its blocks took {elapsed:.1f} s"


@pytest.mark.parametrize("page", GUIDES, ids=[page.name for page in GUIDES])
def test_python_that_does_not_run_says_why(page: Path) -> None:
    # A block that looks like Python but is not ```python would silently escape the suite.
    for block in extract_blocks(page):
        language = block.info.split()[0] if block.info else ""
        looks_like_python = language in ("py", "python3", "py3")
        if looks_like_python or (language == "python" and block.info != language):
            assert NOT_RUN.fullmatch(block.previous), (
                f"{block.where}: ```{block.info} is not run by the suite; fence it ```python, or "
                "put <!-- not run: <reason> --> on the line before it"
            )


def test_the_guides_hold_examples() -> None:
    # Guards the extractor itself: a broken fence pattern would make every page "pass" empty.
    counts = {page.name: len(python_blocks(page)) for page in GUIDES}
    assert counts.get("quickstart.md", 0) >= 3, counts
    assert sum(counts.values()) >= 30, counts


def test_quickstart_holds_the_seed_example_verbatim() -> None:
    # The quickstart says its first block is examples/get_embeddings.py (the product's example,
    # which tests/client/test_sync_lifecycle.py checks against the seed README byte for byte).
    example = (DOCS.parent / "examples" / "get_embeddings.py").read_text(encoding="utf-8")
    assert python_blocks(DOCS / "quickstart.md")[0].code == example


def test_extractor_reads_indented_fences_and_info(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "Intro\n\n```python\nx = 1\n```\n\n- item\n\n    ```python\n    y = x + 1\n    ```\n\n"
        "<!-- not run: needs ray -->\n```py\nimport ray\n```\n\n```sh\nmake docs\n```\n",
        encoding="utf-8",
    )
    blocks = extract_blocks(page)
    assert [(b.line, b.info, b.code) for b in blocks] == [
        (3, "python", "x = 1\n"),
        (9, "python", "y = x + 1\n"),
        (14, "py", "import ray\n"),
        (18, "sh", "make docs\n"),
    ]
    assert blocks[2].previous == "<!-- not run: needs ray -->"
    assert [b.line for b in python_blocks(page)] == [3, 9]
