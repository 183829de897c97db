"""tools/check_architecture.py passes on the real tree and catches each kind of violation."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "check_architecture.py"


def _load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_architecture", TOOL)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


tool = _load_tool()


def _tree(root: Path, files: dict[str, str]) -> Path:
    """Write a synthetic source tree: every folder gets an __init__.py."""
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        for folder in path.relative_to(root).parents:
            if folder != Path("."):
                (root / folder / "__init__.py").touch()
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    return root


def _run(root: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), str(root)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )


def test_real_tree_passes(tmp_path: Path) -> None:
    result = _run(ROOT, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "check_architecture: OK" in result.stdout


VIOLATIONS = [
    # (file, source, line of the violation, text in the message)
    ("core/a.py", "import socket\n", 1, "'socket'"),
    ("core/a.py", "import ssl\n", 1, "'ssl'"),
    ("core/a.py", '"""Doc."""\n\nimport asyncio\n', 3, "'asyncio'"),
    ("core/a.py", "import threading\n", 1, "'threading'"),
    ("core/a.py", "from time import monotonic\n", 1, "'time'"),
    ("core/a.py", "import random as r\n", 1, "'random'"),
    ("core/a.py", "from uuid import uuid4\n", 1, "'uuid'"),
    ("core/a.py", "import urllib3.util\n", 1, "'urllib3'"),
    ("core/a.py", "import aiohttp\n", 1, "'aiohttp'"),
    ("core/a.py", "import requests\n", 1, "'requests'"),
    ("core/a.py", "import httpx\n", 1, "'httpx'"),
    ("core/a.py", "from http import client\n", 1, "'http.client'"),
    ("core/sub/deep.py", "\n\nimport socket\n", 3, "'socket'"),
    ("core/a.py", "import importlib\nimportlib.import_module('ssl')\n", 2, "'ssl'"),
    (
        "core/a.py",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import aiohttp\n",
        3,
        "'aiohttp'",
    ),
    ("core/a.py", "from aligneai.transports import base\n", 1, "transports"),
    ("core/a.py", "import aligneai.transports.sync_driver\n", 1, "transports"),
    ("core/a.py", "from aligneai import transports\n", 1, "transports"),
    ("core/a.py", "from aligneai import Client\n", 1, "facade"),
    ("core/a.py", "import aligneai.testing\n", 1, "facade"),
    ("core/a.py", "from aligneai import *\n", 1, "facade"),
    ("core/a.py", "from .. import transports\n", 1, "transports"),
    ("core/a.py", "from ..transports.base import Driver\n", 1, "transports"),
    ("core/a.py", "from .. import __version__\n", 1, "facade"),
    ("core/a.py", "from ..client import Client\n", 1, "facade"),
    ("core/sub/b.py", "from ...client import Client\n", 1, "facade"),
    ("core/a.py", "from ... import anything\n", 1, "beyond the top package"),
    ("core/a.py", "import transports.base\n", 1, "never as a top-level package"),
    ("core/a.py", "from core import models\n", 1, "never as a top-level package"),
    ("transports/t.py", "from aligneai import Client\n", 1, "facade"),
    ("transports/t.py", "import aligneai.client\n", 1, "facade"),
    ("transports/t.py", "from aligneai.testing import server\n", 1, "facade"),
    ("transports/t.py", "from .. import client\n", 1, "facade"),
    ("transports/t.py", "from ..client import Client\n", 1, "facade"),
    ("transports/t.py", "from core.models import Embedding\n", 1, "never as a top-level package"),
]


@pytest.mark.parametrize(("name", "source", "line", "text"), VIOLATIONS)
def test_violation_is_reported(
    tmp_path: Path, name: str, source: str, line: int, text: str
) -> None:
    root = _tree(tmp_path / "repo", {name: source})
    violations, _ = tool.check(root)
    assert [(str(v.path), v.line) for v in violations] == [(name, line)], violations
    assert text in violations[0].message


def test_cli_lists_violations_and_fails(tmp_path: Path) -> None:
    root = _tree(
        tmp_path / "repo",
        {
            "core/a.py": "import os\nimport socket\n",
            "transports/t.py": "from aligneai.core import models\nfrom aligneai import Client\n",
        },
    )
    result = _run(root, tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "core/a.py:2: imports 'socket': the sans-IO core must not use 'socket'",
        "transports/t.py:2: imports 'aligneai.Client': transports/ must not depend on the "
        "facade (aligneai)",
    ]
    assert "2 violation(s)" in result.stderr


ALLOWED = {
    "core/a.py": """\
        from __future__ import annotations

        import json
        import math
        from collections.abc import Mapping
        from email.utils import parsedate_to_datetime
        from http import HTTPStatus
        from urllib.parse import urlsplit

        import attrs
        import cattrs

        import aligneai.core.b
        from aligneai import core
        from aligneai.core import b
        from aligneai.core.b import thing

        from . import b as b2
        from .b import thing as thing2
        from .sub import c
        """,
    "core/b.py": "thing = 1\n",
    "core/sub/c.py": "from .. import b\nfrom ..b import thing\nfrom . import d\n",
    "core/sub/d.py": "",
    "transports/t.py": """\
        import asyncio
        import socket
        import time

        import aiohttp
        import urllib3

        from aligneai import core, transports
        from aligneai.core import b
        from aligneai.transports import u

        from .. import core as core2
        from ..core.b import thing
        from . import u as u2
        """,
    "transports/u.py": "",
    "aligneai/__init__.py": "from aligneai.core import b\nfrom aligneai.transports import u\n",
    "aligneai/client.py": "import socket\nfrom .core import b\nfrom . import transports\n",
}


def test_allowed_imports_pass(tmp_path: Path) -> None:
    root = _tree(tmp_path / "repo", ALLOWED)
    violations, count = tool.check(root)
    assert violations == []
    assert count == len(ALLOWED) + 3  # the __init__.py files of core, core/sub and transports


# -- import cycles in core/ -----------------------------------------------------------------------

CYCLES = [
    # (files, the expected "file:line: message" lines)
    (
        {"core/a.py": "from . import b\n", "core/b.py": "def f():\n    from . import a\n"},
        ["core/a.py:1: import cycle: aligneai.core.a -> aligneai.core.b -> aligneai.core.a"],
    ),
    (
        {
            "core/models.py": "def to_dict():\n    from .converter import c\n    return c\n",
            "core/converter.py": '"""Doc."""\n\nfrom .models import Model\n',
        },
        [
            "core/converter.py:3: import cycle: aligneai.core.converter -> aligneai.core.models"
            " -> aligneai.core.converter"
        ],
    ),
    (
        {
            "core/a.py": "import aligneai.core.b\n",
            "core/b.py": "from aligneai.core.c import x\n",
            "core/c.py": "try:\n    from aligneai.core import a\nexcept ImportError:\n    pass\n",
        },
        [
            "core/a.py:1: import cycle: aligneai.core.a -> aligneai.core.b -> aligneai.core.c"
            " -> aligneai.core.a"
        ],
    ),
    (
        {"core/a.py": "from .a import x\n"},
        ["core/a.py:1: import cycle: aligneai.core.a -> aligneai.core.a"],
    ),
    (
        {
            "core/a.py": "from . import b, d\n",
            "core/b.py": "from . import a, c\n",
            "core/c.py": "from . import b\n",
            "core/d.py": "from . import a\n",
        },
        [
            "core/a.py:1: import cycle: aligneai.core.a -> aligneai.core.b -> aligneai.core.a"
            " (the same knot also holds aligneai.core.c, aligneai.core.d)"
        ],
    ),
    # the core's front door importing a module that imports the package back
    (
        {"core/__init__.py": "from .a import x\n", "core/a.py": "import aligneai.core\nx = 1\n"},
        ["core/__init__.py:1: import cycle: aligneai.core -> aligneai.core.a -> aligneai.core"],
    ),
]


@pytest.mark.parametrize(("files", "expected"), CYCLES)
def test_import_cycles_in_the_core_are_reported(
    tmp_path: Path, files: dict[str, str], expected: list[str]
) -> None:
    root = _tree(tmp_path / "repo", files)
    violations, _ = tool.check(root)
    assert [str(v) for v in violations] == expected


ACYCLIC = {
    # a submodule's import runs its package's __init__, which is not the module's own choice
    "core/__init__.py": "from .a import x\nfrom .b import y\n",
    "core/a.py": "from .b import y\nx = y\n",
    "core/b.py": "y = 1\n",
    # transports/ and the facade may import each other's parts freely: only core/ is checked
    "transports/t.py": "from . import u\n",
    "transports/u.py": "from . import t\n",
}


def test_an_acyclic_core_passes(tmp_path: Path) -> None:
    root = _tree(tmp_path / "repo", ACYCLIC)
    assert tool.check(root)[0] == []


TYPING_CYCLE = {
    "core/errors.py": (
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from .response import Head\n"
    ),
    "core/response.py": "from .errors import APIError\n",
}


def test_typing_only_imports_count_only_when_asked(tmp_path: Path) -> None:
    root = _tree(tmp_path / "repo", TYPING_CYCLE)
    assert tool.check(root)[0] == []
    violations, _ = tool.check(root, typing_imports=True)
    assert [str(v) for v in violations] == [
        "core/errors.py:4: import cycle (typing imports counted): aligneai.core.errors"
        " -> aligneai.core.response -> aligneai.core.errors"
    ]
    result = subprocess.run(
        [sys.executable, str(TOOL), "--typing-imports", str(root)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1 and "import cycle (typing imports counted)" in result.stdout


def test_the_typing_else_branch_runs(tmp_path: Path) -> None:
    files = {
        "core/a.py": (
            "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    pass\n"
            "else:\n    from . import b\n"
        ),
        "core/b.py": "from . import a\n",
    }
    violations, _ = tool.check(_tree(tmp_path / "repo", files))
    assert [(str(v.path), v.line) for v in violations] == [("core/a.py", 6)]


# -- deprecated modules at their old path ---------------------------------------------------------


def test_a_shim_may_import_its_new_home_only(tmp_path: Path) -> None:
    assert tool.SHIMS == {"aligneai.core.contract": "aligneai.testing.contract"}
    files = {
        "core/contract.py": (
            "from aligneai.testing.contract import load_openapi\n"
            "import aligneai.testing.contract\n"
            "from aligneai.testing import LocalServer\n"
        ),
        "core/other.py": "from aligneai.testing.contract import load_openapi\n",
    }
    violations, _ = tool.check(_tree(tmp_path / "repo", files))
    assert [(str(v.path), v.line) for v in violations] == [
        ("core/contract.py", 3),
        ("core/other.py", 1),
    ]


# -- private names across module boundaries -------------------------------------------------------

PRIVATE = [
    # (file, source, line, text in the message); the fixture also holds core/b.py (``_x``,
    # ``Thing``), aligneai/testing/_api.py and aligneai/_client.py
    ("core/a.py", "from .b import _x\n", 1, "private name '_x' of aligneai.core.b"),
    ("core/a.py", "from aligneai.core.b import _x\n", 1, "'_x' of aligneai.core.b"),
    ("aligneai/m.py", "from aligneai.core.b import _x as y\n", 1, "'_x' of aligneai.core.b"),
    ("core/a.py", "from . import b\nb._x\n", 2, "'_x' of aligneai.core.b (b._x)"),
    ("core/a.py", "import aligneai.core.b as b\nb._x()\n", 2, "(b._x)"),
    ("core/a.py", "from .b import Thing\nThing._hidden\n", 2, "of aligneai.core.b.Thing"),
    ("aligneai/m.py", "def f(client):\n    client._call()\n", 2, "client._call"),
    ("aligneai/m.py", "class R:\n    def f(self):\n        self._client._call()\n", 3, "_call"),
    ("aligneai/m.py", "def f(x):\n    return x.y._z\n", 2, "(x.y._z)"),
    # defined here as well as in core/b.py: the import-bound rule still sees b's
    ("core/a.py", "from . import b\n_x = b._x\n", 2, "(b._x)"),
]


@pytest.mark.parametrize(("name", "source", "line", "text"), PRIVATE)
def test_private_name_across_modules_is_reported(
    tmp_path: Path, name: str, source: str, line: int, text: str
) -> None:
    files = {
        "core/b.py": "_x = 1\nclass Thing:\n    _hidden = 2\n",
        "aligneai/testing/_api.py": "",
        "aligneai/_client.py": "",
        name: source,
    }
    root = _tree(tmp_path / "repo", files)
    found = tool.private_names(root)
    assert [(str(v.path), v.line) for v in found] == [(name, line)], found
    assert text in found[0].message
    # Enforced by default; only reported on request.
    assert tool.check(root)[0] == found
    assert tool.check(root, enforce_private=False)[0] == []


PRIVATE_ALLOWED = {
    "core/b.py": "_x = 1\n__version__ = '1'\n",
    "core/_json.py": "def loads(b): ...\n",
    "core/a.py": """\
        from . import _json
        from ._json import loads
        from .b import __version__
        import aligneai.core._json
        from cattrs.gen import _private_but_not_ours

        class Holder:
            __slots__ = ("_slot",)

            def __init__(self, other):
                self._own = 1
                self._slot = other._slot  # the slot is declared in this module
                self.__dict__  # dunders are not private

            @classmethod
            def make(cls):
                return cls._build()

            @staticmethod
            def _build():
                return Holder(None)

        def use(holder: Holder, legacy):
            holder._own  # this module defines _own
            aligneai.core._json.loads(b"1")
            _json.loads(b"1")
            legacy._dispatch  # private-ok: an old library's only way in
            return Holder.make()._own
        """,
    "aligneai/testing/_api.py": "",
    "aligneai/testing/__init__.py": "",
    "aligneai/testing/m.py": "from aligneai.testing import _api\nfrom aligneai import _client\n",
    "aligneai/_client.py": "",
}


def test_private_modules_and_own_names_pass(tmp_path: Path) -> None:
    root = _tree(tmp_path / "repo", PRIVATE_ALLOWED)
    assert tool.private_names(root) == []
    assert tool.check(root, enforce_private=True)[0] == []


def test_cli_enforces_private_names_and_reports_them_on_request(tmp_path: Path) -> None:
    root = _tree(tmp_path / "repo", {"core/b.py": "_x = 1\n", "core/a.py": "from .b import _x\n"})
    enforced = _run(root, tmp_path)
    assert enforced.returncode == 1
    assert enforced.stdout.splitlines() == [
        "core/a.py:1: imports the private name '_x' of aligneai.core.b"
    ]
    report = subprocess.run(
        [sys.executable, str(TOOL), "--report-private", str(root)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert report.returncode == 0, report.stdout + report.stderr
    assert report.stdout.splitlines() == [
        "core/a.py:1: imports the private name '_x' of aligneai.core.b [report only]",
        "check_architecture: OK (3 modules)",
    ]
    assert "1 private name(s)" in report.stderr


def test_the_real_tree_has_no_private_names_crossing_modules() -> None:
    found = tool.private_names(ROOT)
    assert found == [], [str(v) for v in found]
