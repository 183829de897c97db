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
