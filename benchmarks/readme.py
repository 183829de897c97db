"""Copy a results table into the Markdown files that have a place for it.

A place is a pair of marker comments, ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``; what
lies between them is replaced. The tables may live in benchmarks/README.md, the top-level
README.md or a page of docs/: every one of those files that has the markers gets the table,
so moving the markers moves the table.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def candidates(root: Path = ROOT) -> list[Path]:
    """The files that may hold a results section."""
    return [root / "benchmarks" / "README.md", root / "README.md", *sorted(root.glob("docs/*.md"))]


def replace_section(text: str, name: str, body: str) -> str | None:
    """``text`` with the ``name`` section's content replaced by ``body``; None without markers."""
    start_marker, end_marker = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    start = text.find(start_marker)
    end = text.find(end_marker, start + len(start_marker))
    if start < 0 or end < 0:
        return None
    body = body if body.endswith("\n") else body + "\n"
    return text[: start + len(start_marker)] + "\n" + body + text[end:]


def update_sections(name: str, body: str, files: list[Path] | None = None) -> list[Path]:
    """Write ``body`` into the ``name`` section of every file that has one; the files written.

    Raises SystemExit when no file has the markers (``--update-readme`` would do nothing).
    """
    files = candidates() if files is None else files
    written = []
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        new = replace_section(text, name, body)
        if new is None:
            continue
        if new != text:
            path.write_text(new, encoding="utf-8")
        written.append(path)
    if not written:
        names = ", ".join(str(path) for path in files)
        raise SystemExit(f"no <!-- {name}:start --> ... <!-- {name}:end --> section in {names}")
    return written
