"""The wheel holds exactly the aligneai package (core/ and transports/ mapped into it)."""

from __future__ import annotations

import ast
import configparser
import email.message
import email.parser
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"aligneai": "aligneai", "core": "aligneai/core", "transports": "aligneai/transports"}
# Not needed to build the wheel (and copying .tox or a venv would be slow).
SKIP_TOP = {"tests", "benchmarks", "examples", "build", "dist", "tools", "requirements"}
# Only in the copy that is built: prove that new subpackages and JSON files are picked up.
PROBES = {"core/_probe_sub/__init__.py": '"""Probe."""\n', "core/_probe_data.json": "{}\n"}


def _version() -> str:
    tree = ast.parse((ROOT / "core" / "_version.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and any(isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets)
        ):
            return str(node.value.value)
    raise AssertionError("no __version__ in core/_version.py")


VERSION = _version()
DIST_INFO = f"aligneai-{VERSION}.dist-info"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    """Build the wheel from a copy of the tree (builds write build/ and *.egg-info in place)."""
    source = tmp_path_factory.mktemp("source")
    for entry in ROOT.iterdir():
        if entry.name in SKIP_TOP or entry.name.startswith(".") or entry.suffix == ".egg-info":
            continue
        if entry.is_dir():
            # symlinks=True: aligneai/core and aligneai/transports stay links to the folders.
            shutil.copytree(
                entry,
                source / entry.name,
                symlinks=True,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )
        else:
            shutil.copy2(entry, source / entry.name)
    for name, text in PROBES.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text, encoding="utf-8")
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
            "--wheel-dir",
            str(out),
            str(source),
        ],
        check=True,
        cwd=out,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    (built,) = out.glob("*.whl")
    assert built.name == f"aligneai-{VERSION}-py3-none-any.whl"
    archive = zipfile.ZipFile(built)
    yield archive
    archive.close()


def test_the_installed_package_is_the_one_under_test() -> None:
    # tox installs the wheel: the imports must resolve to it, whatever the working directory.
    import aligneai.transports
    from aligneai.core._version import __version__

    assert aligneai.transports.__name__ == "aligneai.transports"
    assert __version__ == VERSION


def test_the_source_tree_imports_from_the_repo_root() -> None:
    # aligneai/core and aligneai/transports are links to the top-level folders, so the most
    # natural commands work from a fresh clone's root (python -c, python -m pytest, mypy).
    code = "import aligneai.core.flow, aligneai.transports.base, aligneai; print(aligneai.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert Path(out.stdout.strip()) == ROOT / "aligneai" / "__init__.py"


def test_a_checkout_without_the_links_refuses_to_build(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    # What git writes for a link when core.symlinks is false: a file holding the target.
    (source / "aligneai").mkdir()
    (source / "aligneai" / "core").write_text("../core", encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "setup.py", "--name"], cwd=source, capture_output=True, text=True
    )
    assert out.returncode != 0
    assert "aligneai/core must be a symbolic link to ../core" in out.stderr
    assert "core.symlinks" in out.stderr


def _metadata(wheel: zipfile.ZipFile) -> email.message.Message:
    return email.parser.Parser().parsestr(wheel.read(f"{DIST_INFO}/METADATA").decode())


def test_only_the_aligneai_package_is_in_the_wheel(wheel: zipfile.ZipFile) -> None:
    stray = [n for n in wheel.namelist() if not n.startswith(("aligneai/", f"{DIST_INFO}/"))]
    assert stray == []


def test_every_source_module_is_in_the_wheel(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    expected = {
        f"{target}/{path.relative_to(ROOT / folder).as_posix()}"
        for folder, target in FOLDERS.items()
        for path in (ROOT / folder).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    # A folder without __init__.py is not a package: its modules would be silently left out.
    assert expected - names == set()


def test_package_data_and_new_subpackages_are_in_the_wheel(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    assert "aligneai/py.typed" in names
    assert "aligneai/core/openapi.json" in names
    assert "aligneai/core/_probe_data.json" in names
    assert "aligneai/core/_probe_sub/__init__.py" in names


def test_entry_points_are_declared(wheel: zipfile.ZipFile) -> None:
    entry_points = configparser.ConfigParser()
    entry_points.read_string(wheel.read(f"{DIST_INFO}/entry_points.txt").decode())
    assert dict(entry_points["console_scripts"]) == {"aligneai": "aligneai.cli:console_main"}
    assert dict(entry_points["pytest11"]) == {"aligneai": "aligneai.testing.pytest_plugin"}


def test_metadata(wheel: zipfile.ZipFile) -> None:
    metadata = _metadata(wheel)
    assert metadata["Name"] == "aligneai"
    assert metadata["Version"] == VERSION
    assert metadata["Requires-Python"] == ">=3.9"
    assert set(metadata.get_all("Provides-Extra") or []) >= FRAMEWORK_EXTRAS | {
        "aiohttp",
        "numpy",
        "orjson",
        "parquet",
        "tqdm",
    }


# The engines' and frameworks' extras are not installed by `tox -e lowest` (they need Python
# 3.11+ and minutes to install); their floors are the ones tests/integrations was run against.
FRAMEWORK_EXTRAS = {"ray", "dask", "langchain", "llama-index"}


def _lower_bounds(wheel: zipfile.ZipFile) -> dict[str, str]:
    bounds = {}
    for line in _metadata(wheel).get_all("Requires-Dist") or []:
        requirement = Requirement(line)
        marker = str(requirement.marker or "")
        if any(f'extra == "{extra}"' in marker for extra in FRAMEWORK_EXTRAS):
            continue
        (lowest,) = [s.version for s in requirement.specifier if s.operator == ">="]
        bounds[requirement.name] = lowest
    return bounds


def _lowest_pins() -> dict[str, str]:
    text = (ROOT / "requirements" / "lowest.txt").read_text(encoding="utf-8")
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", text, re.MULTILINE))


def test_lowest_constraints_match_the_declared_lower_bounds(wheel: zipfile.ZipFile) -> None:
    bounds = _lower_bounds(wheel)
    assert set(bounds) == {
        "attrs",
        "cattrs",
        "urllib3",
        "aiohttp",
        "numpy",
        "orjson",
        "pyarrow",
        "tqdm",
    }
    pins = _lowest_pins()
    assert {name: pins.get(name) for name in bounds} == bounds


@pytest.mark.skipif(not os.environ.get("ALIGNEAI_EXPECT_LOWEST"), reason="only in `tox -e lowest`")
def test_lowest_versions_are_the_installed_ones() -> None:
    pins = _lowest_pins()
    installed = {name: importlib.metadata.version(name) for name in pins}
    assert installed == pins
