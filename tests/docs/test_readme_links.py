"""README.md is the front page on GitHub: its links lead to files, its example is the seed's.

The site's own links are checked by ``mkdocs build --strict``; the README is not part of the site,
so its links into docs/ (and to examples, benchmarks) are checked here, and so is its usage
example, which ``make demo`` runs as examples/get_embeddings.py.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def relative_links(text: str) -> list[str]:
    """Return the targets of the Markdown links in ``text`` that are paths, without anchors."""
    targets = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # https:, mailto:, or an anchor of the page itself
        targets.append(target.split("#", 1)[0])
    return targets


def test_readme_links_lead_to_files() -> None:
    links = relative_links(README.read_text(encoding="utf-8"))
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_readme_links_into_every_guide() -> None:
    links = set(relative_links(README.read_text(encoding="utf-8")))
    guides = {f"docs/{page.name}" for page in (ROOT / "docs").glob("*.md")} - {"docs/index.md"}
    assert guides <= links, f"README.md does not link to: {sorted(guides - links)}"


def test_relative_links_ignores_urls_and_anchors() -> None:
    text = "[a](docs/a.md#x) [b](https://x.org/y.md) [c](#top) [d](examples/e.py)"
    assert relative_links(text) == ["docs/a.md", "examples/e.py"]


def test_readme_usage_is_the_example_make_demo_runs() -> None:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Usage\n\n```python\n") + len("## Usage\n\n```python\n")
    block = text[start : text.index("```", start)]
    assert block == (ROOT / "examples" / "get_embeddings.py").read_text(encoding="utf-8")
