"""Check the layering of the source tree by reading imports (AST only: nothing is imported).

Rules, for the folders that are installed as ``aligneai.core`` (``core/``) and
``aligneai.transports`` (``transports/``):

* ``core/`` is sans-IO: it imports no networking, concurrency, clock or randomness module
  (``socket``, ``ssl``, ``asyncio``, ``threading``, ``time``, ``random``, ``uuid``, ``urllib3``,
  ``aiohttp``, ``requests``, ``httpx`` and the few others in ``CORE_FORBIDDEN``), nothing from
  ``aligneai.transports`` and nothing from the facade (``aligneai`` other than ``aligneai.core``),
  relative imports that climb out of ``core/`` included.
* ``transports/`` imports nothing from the facade (``aligneai`` other than ``aligneai.core`` and
  ``aligneai.transports``).
* No folder imports ``core`` or ``transports`` as top-level packages: they are not installed
  under those names.

Imports under ``if TYPE_CHECKING:`` count too, and so do ``importlib.import_module("...")`` and
``__import__("...")`` calls with a literal name.

Usage: ``python tools/check_architecture.py [ROOT]`` (ROOT defaults to the repository that holds
this file). Prints one ``file:line: message`` per violation and exits 1 if there is any.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: Source folder -> the package it is installed as.
LAYERS = {
    "core": "aligneai.core",
    "transports": "aligneai.transports",
    "aligneai": "aligneai",
}

#: Modules (and their submodules) that the sans-IO core must not import.
CORE_FORBIDDEN = frozenset(
    {
        # Named in the architecture.
        "socket",
        "ssl",
        "asyncio",
        "threading",
        "time",
        "random",
        "uuid",
        "urllib3",
        "aiohttp",
        "requests",
        "httpx",
        # The same kinds of thing under other names.
        "selectors",
        "http.client",
        "urllib.request",
        "multiprocessing",
        "concurrent",
        "subprocess",
        "secrets",
        "trio",
        "anyio",
        "httpcore",
    }
)


@dataclass(frozen=True)
class Violation:
    """One forbidden import."""

    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass(frozen=True)
class _Import:
    line: int
    module: str  # absolute dotted name as written or resolved
    relative: bool = False


def _module_name(folder: Path, package: str, file: Path) -> tuple[str, bool]:
    """Return the installed dotted name of ``file`` and whether it is a package ``__init__``."""
    parts = list(file.relative_to(folder).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join([package, *parts]), is_package


def _imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[_Import | Violation]:
    """Yield every import of ``tree`` as absolute dotted names (``from X import a`` gives X.a)."""
    package_parts = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield _Import(node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if node.level > len(package_parts):
                    yield Violation(Path(), node.lineno, "relative import beyond the top package")
                    continue
                base = package_parts[: len(package_parts) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [alias.name for alias in node.names]
            if "*" in names:
                yield _Import(node.lineno, target, bool(node.level))
            for name in names:
                if name != "*":
                    yield _Import(node.lineno, f"{target}.{name}", bool(node.level))
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func) and node.args:
            first = node.args[0]
            if (
                isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and not first.value.startswith(".")
            ):
                yield _Import(node.lineno, first.value)


def _is_dynamic_import(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in {"__import__", "import_module"}
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "import_module"
        and isinstance(func.value, ast.Name)
        and func.value.id == "importlib"
    )


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _layer_problem(layer: str, module: str) -> str | None:
    """Return why ``module`` may not be imported from the ``layer`` folder, or None."""
    if _within(module, "core") or _within(module, "transports"):
        return (
            f"imports {module!r}: the folder {module.split('.')[0]}/ is installed as "
            f"aligneai.{module.split('.')[0]}, never as a top-level package"
        )
    if layer == "aligneai":
        return None
    if _within(module, "aligneai.core"):
        return None
    if _within(module, "aligneai.transports"):
        if layer == "transports":
            return None
        return f"imports {module!r}: the sans-IO core must not depend on the transports"
    if _within(module, "aligneai"):
        return f"imports {module!r}: {layer}/ must not depend on the facade (aligneai)"
    if layer == "core":
        for forbidden in sorted(CORE_FORBIDDEN):
            if _within(module, forbidden):
                return f"imports {module!r}: the sans-IO core must not use {forbidden!r}"
    return None


def check(root: Path) -> tuple[list[Violation], int]:
    """Check the tree under ``root``; return the violations and the number of modules read."""
    violations: list[Violation] = []
    count = 0
    for layer, package in LAYERS.items():
        folder = root / layer
        if not folder.is_dir():
            continue
        for file in sorted(folder.rglob("*.py")):
            if any(part.startswith(".") or part == "__pycache__" for part in file.parts):
                continue
            count += 1
            shown = file.relative_to(root)
            try:
                tree = ast.parse(file.read_bytes(), filename=str(shown))
            except SyntaxError as error:
                violations.append(Violation(shown, error.lineno or 0, f"syntax error: {error}"))
                continue
            module, is_package = _module_name(folder, package, file)
            seen: set[tuple[int, str]] = set()
            for item in _imports(tree, module, is_package):
                if isinstance(item, Violation):
                    violations.append(Violation(shown, item.line, item.message))
                    continue
                problem = _layer_problem(layer, item.module)
                if problem and (item.line, problem) not in seen:
                    seen.add((item.line, problem))
                    violations.append(Violation(shown, item.line, problem))
    violations.sort(key=lambda v: (str(v.path), v.line, v.message))
    return violations, count


def main(argv: list[str] | None = None) -> int:
    """Run the check from the command line; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "root",
        nargs="?",
        type=Path,
        default=Path(__file__).resolve().parent.parent,
        help="the repository root (default: the one holding this script)",
    )
    args = parser.parse_args(argv)
    violations, count = check(args.root)
    for violation in violations:
        print(violation)
    if violations:
        print(f"check_architecture: {len(violations)} violation(s)", file=sys.stderr)
        return 1
    print(f"check_architecture: OK ({count} modules)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
