"""Type-check a snippet of user code under ``mypy --strict``, against aligneai as installed.

Used by test_typing_snippets.py and test_review_fixes.py. A snippet marks the lines that must
be errors with a trailing ``# E`` (`marked_lines`); `run_mypy_strict` gives the lines mypy
found errors on, to compare with them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import mypy.api as mypy_api
import pytest

import aligneai
import aligneai.core
import aligneai.transports


class MypyRun(NamedTuple):
    """What one mypy run said about the snippet."""

    stdout: str
    errors: list[str]  # its ``: error:`` lines
    lines: set[int]  # the snippet's line numbers those errors name


def marked_lines(snippet: str) -> set[int]:
    """The numbers of the snippet's lines marked ``# E``: those that must be errors."""
    return {n for n, line in enumerate(snippet.splitlines(), 1) if line.endswith("# E")}


def search_path(tmp: Path) -> str | None:
    """A folder where mypy finds ``aligneai`` as installed, or None if site-packages has it.

    mypy cannot follow the editable install's import hook; it refuses site-packages on its
    search path. So: nothing for a wheel install; the package's parent when the source tree
    holds the whole package (``core`` and ``transports`` inside it, as links or folders);
    otherwise a folder of symlinks laid out like the wheel.
    """
    package = Path(aligneai.__path__[0])
    if "site-packages" in package.parts:
        return None
    parts = {"core": aligneai.core.__path__[0], "transports": aligneai.transports.__path__[0]}
    if all((package / name).resolve() == Path(path).resolve() for name, path in parts.items()):
        return str(package.parent)
    shim = tmp / "shim" / "aligneai"
    shim.mkdir(parents=True)
    for entry in package.iterdir():
        if entry.name not in parts and entry.name != "__pycache__":
            (shim / entry.name).symlink_to(entry)
    for name, path in parts.items():
        (shim / name).symlink_to(path)
    return str(shim.parent)


def run_mypy_strict(snippet: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MypyRun:
    """Write ``snippet`` to ``tmp_path/user_code.py`` and run ``mypy --strict`` on it.

    mypy runs with an empty config (not the project's settings) and a cache in ``tmp_path``;
    anything it writes to stderr fails the test.
    """
    source = tmp_path / "user_code.py"
    source.write_text(snippet, encoding="utf-8")
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\n", encoding="utf-8")  # not the project's settings
    search = search_path(tmp_path)
    if search is not None:
        monkeypatch.setenv("MYPYPATH", search)
    monkeypatch.chdir(tmp_path)  # mypy puts its working directory first on its search path
    stdout, stderr, _ = mypy_api.run(
        [
            "--strict",
            "--no-error-summary",
            "--show-error-codes",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--config-file",
            str(config),
            str(source),
        ]
    )
    assert not stderr, stderr
    errors = [line for line in stdout.splitlines() if ": error:" in line]
    lines = {int(m.group(1)) for m in (re.search(r":(\d+): error:", e) for e in errors) if m}
    return MypyRun(stdout, errors, lines)
