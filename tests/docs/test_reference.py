"""The API reference (docs/reference/) renders every public module and every exported name.

mkdocstrings renders what a page asks for (``::: aligneai.core.retry``); a module added to the
package without a line in the reference would simply be missing from the site, which
``mkdocs build --strict`` cannot see. These tests can: they list the public modules of the
installed package (without importing them: optional engines stay unimported) and the names of
``aligneai.__all__``, and look for each in the pages' ``:::`` lines.
"""

from __future__ import annotations

import pkgutil
import re
from pathlib import Path

import aligneai
import aligneai.types

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference"
DIRECTIVE = re.compile(r"^::: *([\w.]+)\s*$", re.MULTILINE)
# Documented in prose (docs/configuration.md, "Module-level client"), not as objects.
PROSE = {"__version__", "api_key", "base_url"}


def rendered() -> dict[str, str]:
    """Map each ``:::`` identifier of the reference to the page that renders it."""
    found: dict[str, str] = {}
    for page in sorted(REFERENCE.glob("*.md")):
        for identifier in DIRECTIVE.findall(page.read_text(encoding="utf-8")):
            found[identifier] = page.name
    return found


def public_modules() -> list[str]:
    """Every module of the installed package whose dotted name has no ``_`` component."""
    names = ["aligneai"]
    packages = [("aligneai", list(aligneai.__path__))]
    seen: set[Path] = set()
    while packages:
        prefix, path = packages.pop()
        seen.update(Path(p).resolve() for p in path)
        for info in pkgutil.iter_modules(path):
            if info.name.startswith("_"):
                continue
            name = f"{prefix}.{info.name}"
            if info.ispkg:
                subpath = [str(Path(p) / info.name) for p in path]
                if any(Path(p).resolve() in seen for p in subpath):
                    continue  # a symbolic link back into a folder already walked
                packages.append((name, subpath))
            names.append(name)
    return sorted(names)


def test_the_reference_renders_from_the_package() -> None:
    assert REFERENCE.is_dir()
    found = rendered()
    assert "aligneai.AligneAI" in found and "aligneai.core.flow" in found, found


def test_every_public_module_has_a_reference() -> None:
    found = rendered()
    # The top-level package's names are checked one by one below; its subpackages and modules
    # must each be rendered (a package's own docstring page counts for the package).
    missing = [name for name in public_modules() if name != "aligneai" and name not in found]
    assert not missing, f"add a '::: <module>' line to a page of docs/reference/ for: {missing}"


def test_public_modules_are_found() -> None:
    # Guards the walk itself: it must see the subpackages' modules, not just the top level.
    modules = public_modules()
    expected = ["aligneai.core.retry", "aligneai.transports.base", "aligneai.testing.strategies"]
    assert set(expected) <= set(modules), modules


def test_every_exported_name_has_a_reference() -> None:
    found = rendered()
    missing = []
    for name in aligneai.__all__:
        if name in PROSE or f"aligneai.{name}" in found:
            continue
        obj = getattr(aligneai, name)
        module = getattr(obj, "__module__", "")
        in_types = name in aligneai.types.__all__ and "aligneai.types" in found
        if not (in_types or module in found):
            missing.append(name)
    assert not missing, f"not rendered by docs/reference/: {missing}"
