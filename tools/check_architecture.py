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
``__import__("...")`` calls with a literal name. A deprecated module kept at its old path may
import its new home and nothing else of a higher layer (`SHIMS`).

Two more rules read the same imports:

* No cycles in the import graph of ``core/`` (issue #13). Every import that runs counts:
  module-level, function-local, inside ``try``. Imports under ``if TYPE_CHECKING:`` never run
  and are typing-only, so they do not count unless ``--typing-imports`` is given. A cycle is
  printed as the chain of modules, at the line of its first import.
* No private name crosses a module boundary, in ``core/``, ``transports/`` and ``aligneai/``:
  ``from M import _name`` where M is one of our modules and ``_name`` is not a module of it
  (private submodules such as ``aligneai._client`` are how a package uses its own parts), and
  ``X._name`` where X is a name bound by an import of one of our modules (the module itself or
  an object imported from it), and ``obj._name`` on any object but ``self``/``cls`` when the
  module itself never defines or binds ``_name`` (so it must belong to someone else). A line
  with a ``# private-ok: why`` comment is exempt: for another library's private attribute
  that has no public equivalent. Dunder names are not private. ``--report-private`` prints
  these findings without failing (for a tree in the middle of a refactoring).

Usage: ``python tools/check_architecture.py [--typing-imports] [--report-private] [ROOT]``
(ROOT defaults to the repository that holds this file). Prints one ``file:line: message`` per
violation and exits 1 if there is any.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable, Iterator, Mapping
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


#: Deprecated modules kept at a documented old path -> the one module (their new home) they may
#: import although the layer rules forbid it.
SHIMS = {
    "aligneai.core.contract": "aligneai.testing.contract",
}

#: Whether a private name crossing a module boundary fails the check (True) or is only reported
#: (``--report-private``: for a tree in the middle of a refactoring).
ENFORCE_PRIVATE_NAMES = True

#: A comment that excuses one line from the private-name rule: for another library's private
#: attribute that has no public equivalent (say why after the colon).
PRIVATE_OK = "# private-ok:"


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
    typing_only: bool = False  # under ``if TYPE_CHECKING:``: never runs


def _module_name(folder: Path, package: str, file: Path) -> tuple[str, bool]:
    """Return the installed dotted name of ``file`` and whether it is a package ``__init__``."""
    parts = list(file.relative_to(folder).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join([package, *parts]), is_package


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _typing_only_nodes(tree: ast.AST) -> set[int]:
    """The ids of the nodes under an ``if TYPE_CHECKING:`` (its body, not its ``else``)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for statement in node.body:
                found.update(id(inner) for inner in ast.walk(statement))
    return found


def _from_target(node: ast.ImportFrom, package_parts: list[str]) -> str | None:
    """The absolute module of a ``from ... import``, or None for a relative climb too high."""
    if not node.level:
        return node.module or ""
    if node.level > len(package_parts):
        return None
    base = package_parts[: len(package_parts) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[_Import | Violation]:
    """Yield every import of ``tree`` as absolute dotted names (``from X import a`` gives X.a)."""
    package_parts = module.split(".") if is_package else module.split(".")[:-1]
    typing_only = _typing_only_nodes(tree)
    for node in ast.walk(tree):
        hidden = id(node) in typing_only
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield _Import(node.lineno, alias.name, typing_only=hidden)
        elif isinstance(node, ast.ImportFrom):
            target = _from_target(node, package_parts)
            if target is None:
                yield Violation(Path(), node.lineno, "relative import beyond the top package")
                continue
            names = [alias.name for alias in node.names]
            if "*" in names:
                yield _Import(node.lineno, target, bool(node.level), hidden)
            for name in names:
                if name != "*":
                    yield _Import(node.lineno, f"{target}.{name}", bool(node.level), hidden)
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func) and node.args:
            first = node.args[0]
            if (
                isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and not first.value.startswith(".")
            ):
                yield _Import(node.lineno, first.value, typing_only=hidden)


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


@dataclass(frozen=True)
class _Source:
    """One parsed module of the tree."""

    path: Path  # as shown: relative to the root
    layer: str
    module: str
    is_package: bool
    tree: ast.Module
    imports: tuple[_Import, ...]
    excused: frozenset[int]  # lines marked ``# private-ok: <why>`` (another library's private)


def _read(root: Path) -> tuple[list[_Source], list[Violation], int]:
    """Parse every module of the layers; return them, the unreadable ones, and the count."""
    sources: list[_Source] = []
    problems: list[Violation] = []
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
                text = file.read_bytes()
                tree = ast.parse(text, filename=str(shown))
            except SyntaxError as error:
                problems.append(Violation(shown, error.lineno or 0, f"syntax error: {error}"))
                continue
            module, is_package = _module_name(folder, package, file)
            imports: list[_Import] = []
            for item in _imports(tree, module, is_package):
                if isinstance(item, Violation):
                    problems.append(Violation(shown, item.line, item.message))
                else:
                    imports.append(item)
            excused = frozenset(
                number
                for number, line in enumerate(text.decode("utf-8", "replace").splitlines(), 1)
                if PRIVATE_OK in line
            )
            sources.append(_Source(shown, layer, module, is_package, tree, tuple(imports), excused))
    return sources, problems, count


def _layer_violations(sources: list[_Source]) -> Iterator[Violation]:
    for source in sources:
        seen: set[tuple[int, str]] = set()
        allowed = SHIMS.get(source.module)
        for item in source.imports:
            if allowed is not None and _within(item.module, allowed):
                continue
            problem = _layer_problem(source.layer, item.module)
            if problem and (item.line, problem) not in seen:
                seen.add((item.line, problem))
                yield Violation(source.path, item.line, problem)


def _resolve(name: str, modules: Iterable[str]) -> str | None:
    """The longest known module that ``name`` (a module or ``module.attribute``) lies in."""
    known = set(modules)
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def _cycle_violations(sources: list[_Source], typing_imports: bool) -> Iterator[Violation]:
    """One violation per import cycle among the modules of ``core/``."""
    core = {source.module: source for source in sources if source.layer == "core"}
    # module -> imported module -> the first line importing it
    edges: dict[str, dict[str, int]] = {name: {} for name in core}
    for name, source in core.items():
        for item in source.imports:
            if item.typing_only and not typing_imports:
                continue
            target = _resolve(item.module, core)
            # A submodule's import also runs its package's __init__, but that is Python's doing,
            # not a dependency this module chose: only the named module counts.
            if target is not None and target not in edges[name]:
                edges[name][target] = item.line
    for component in _cycles(edges):
        chain = _one_cycle(component, edges)
        first = core[chain[0]]
        kind = "import cycle (typing imports counted)" if typing_imports else "import cycle"
        message = f"{kind}: {' -> '.join(chain)}"
        others = sorted(set(component) - set(chain))
        if others:
            message += f" (the same knot also holds {', '.join(others)})"
        yield Violation(first.path, edges[chain[0]][chain[1]], message)


def _cycles(edges: Mapping[str, Mapping[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module, or with a self-import."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan; the graph is a few dozen modules deep at most
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in edges[node]:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(found)


def _one_cycle(component: list[str], edges: Mapping[str, Mapping[str, int]]) -> list[str]:
    """A shortest cycle through the first module of ``component``, closed (first == last)."""
    start = component[0]
    members = set(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for target in sorted(edges[node]):
            if target == start:
                return [*paths[node], start]
            if target in members and target not in paths:
                paths[target] = [*paths[node], target]
                queue.append(target)
    raise AssertionError(f"no cycle through {start}")  # pragma: no cover - a component has one


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _ours(module: str) -> bool:
    return any(_within(module, package) for package in LAYERS.values())


def _private_violations(sources: list[_Source]) -> Iterator[Violation]:
    modules = {source.module for source in sources}
    for source in sources:
        package_parts = (
            source.module.split(".") if source.is_package else source.module.split(".")[:-1]
        )
        bound: dict[str, str] = {}  # local name -> what it is bound to, from our imports
        for node in ast.walk(source.tree):
            if isinstance(node, ast.ImportFrom):
                target = _from_target(node, package_parts)
                if target is None or not _ours(target):
                    continue
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    if _is_private(alias.name) and full not in modules:
                        yield Violation(
                            source.path,
                            node.lineno,
                            f"imports the private name {alias.name!r} of {target}",
                        )
                    if alias.name != "*":
                        bound[alias.asname or alias.name] = full
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if _ours(alias.name):
                        name = alias.asname or alias.name.split(".")[0]
                        bound[name] = alias.name if alias.asname else name
        local = _defined_names(source.tree)
        for node in ast.walk(source.tree):
            if not (isinstance(node, ast.Attribute) and _is_private(node.attr)):
                continue
            if node.lineno in source.excused:
                continue
            value = node.value
            if _dotted(node, bound) in modules:
                continue  # a private module of its package, reached as an attribute
            if isinstance(value, ast.Name) and value.id in bound:
                yield Violation(
                    source.path,
                    node.lineno,
                    f"uses the private name {node.attr!r} of {bound[value.id]} "
                    f"({value.id}.{node.attr})",
                )
            elif not (isinstance(value, ast.Name) and value.id in {"self", "cls"}) and (
                node.attr not in local
            ):
                yield Violation(
                    source.path,
                    node.lineno,
                    f"reaches into another module's private attribute "
                    f"({ast.unparse(node)}): this module never defines {node.attr!r}",
                )


def _dotted(node: ast.expr, bound: Mapping[str, str]) -> str | None:
    """``a.b.c`` as the dotted name it stands for when ``a`` is bound by an import, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in bound:
        return None
    return ".".join([bound[node.id], *reversed(parts)])


def _defined_names(tree: ast.AST) -> set[str]:
    """Every name ``tree`` defines or binds: its own private attributes are no one else's."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.keyword) and node.arg:
            names.add(node.arg)  # attrs' private fields are set by keyword (``_x=...``)
        elif isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__slots__" for target in node.targets
        ):
            names.update(
                inner.value
                for inner in ast.walk(node.value)
                if isinstance(inner, ast.Constant) and isinstance(inner.value, str)
            )
    return names


def check(
    root: Path,
    *,
    typing_imports: bool = False,
    enforce_private: bool | None = None,
) -> tuple[list[Violation], int]:
    """Check the tree under ``root``; return the violations and the number of modules read.

    The private-name findings are among the violations only when ``enforce_private`` (default:
    `ENFORCE_PRIVATE_NAMES`); `private_names` lists them either way.
    """
    sources, violations, count = _read(root)
    violations.extend(_layer_violations(sources))
    violations.extend(_cycle_violations(sources, typing_imports))
    if ENFORCE_PRIVATE_NAMES if enforce_private is None else enforce_private:
        violations.extend(_private_violations(sources))
    return _sorted(violations), count


def private_names(root: Path) -> list[Violation]:
    """Every private name that crosses a module boundary in the tree under ``root``."""
    sources, _, _ = _read(root)
    return _sorted(_private_violations(sources))


def _sorted(violations: Iterable[Violation]) -> list[Violation]:
    return sorted(set(violations), key=lambda v: (str(v.path), v.line, v.message))


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
    parser.add_argument(
        "--typing-imports",
        action="store_true",
        help="count imports under 'if TYPE_CHECKING:' in the import graph of core/ too",
    )
    parser.add_argument(
        "--enforce-private",
        dest="enforce_private",
        action="store_true",
        default=ENFORCE_PRIVATE_NAMES,
        help="fail on private names that cross a module boundary (the default)",
    )
    parser.add_argument(
        "--report-private",
        dest="enforce_private",
        action="store_false",
        help="only report private names that cross a module boundary",
    )
    args = parser.parse_args(argv)
    violations, count = check(
        args.root, typing_imports=args.typing_imports, enforce_private=args.enforce_private
    )
    for violation in violations:
        print(violation)
    if not args.enforce_private:
        report = private_names(args.root)
        for finding in report:
            print(f"{finding} [report only]")
        if report:
            print(
                f"check_architecture: {len(report)} private name(s) cross a module boundary "
                "(reported, not enforced: --report-private)",
                file=sys.stderr,
            )
    if violations:
        print(f"check_architecture: {len(violations)} violation(s)", file=sys.stderr)
        return 1
    print(f"check_architecture: OK ({count} modules)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
