"""The pytest plugin, used the way a user would: a test file in a fresh pytest run."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

PLUGIN = "aligneai.testing.pytest_plugin"


def _plugin_args() -> list[str]:
    """Load the plugin with -p unless its pytest11 entry point already does (twice fails)."""
    if not os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        entry_points = metadata.entry_points()
        group = (
            entry_points.select(group="pytest11")
            if hasattr(entry_points, "select")
            else entry_points.get("pytest11", [])  # type: ignore[attr-defined]  # Python 3.9
        )
        if any(entry.value == PLUGIN for entry in group):
            return []
    return ["-p", PLUGIN]


USER_TESTS = """
import json
import urllib.error
import urllib.request

from aligneai.testing._faults import Fault

PORTS = []


def call(url, payload=None):
    request = urllib.request.Request(
        url,
        data=None if payload is None else json.dumps(payload).encode(),
        headers={"Authorization": "Bearer sk-user", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_models(aligneai_server, aligneai_server_url):
    assert aligneai_server_url == aligneai_server.url
    assert aligneai_server_url.startswith("http://127.0.0.1:")
    status, body = call(aligneai_server_url + "/models")
    assert status == 200
    assert [model["id"] for model in body["data"]] == ["aligne-embed-small", "aligne-embed-large"]
    assert [r.path for r in aligneai_server.requests] == ["/v1/models"]
    PORTS.append(aligneai_server.port)


def test_embeddings(aligneai_server_url):
    status, body = call(aligneai_server_url + "/embeddings", {"inputs": ["coffee", "tea"]})
    assert status == 200 and len(body["data"]) == 2
    assert len(body["data"][0]["embedding"]) == 384


def test_leaves_faults_behind(aligneai_server):
    aligneai_server.enqueue(Fault.status(503), Fault.status(503))
    aligneai_server.set_fault_rate(Fault.status(500), 1.0)
    assert call(aligneai_server.url + "/models")[0] == 503
    PORTS.append(aligneai_server.port)


def test_starts_clean(aligneai_server):
    assert aligneai_server.pending_faults == 0
    assert aligneai_server.requests == []
    # The counters too (ServerStats), though earlier tests sent requests.
    assert aligneai_server.stats.requests == 0 and aligneai_server.stats.accepted == 0
    assert call(aligneai_server.url + "/models")[0] == 200
    PORTS.append(aligneai_server.port)


def test_one_server_for_the_session():
    assert len(PORTS) == 3 and len(set(PORTS)) == 1
"""


def test_fixtures_in_a_user_test_suite(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest(*_plugin_args(), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)


def test_fixtures_are_listed(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(*_plugin_args(), "--fixtures", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*aligneai_server*", "*aligneai_server_url*"])
    assert "_aligneai_session_server" not in result.stdout.str()


def test_importing_the_testing_package_does_not_load_the_plugin(tmp_path: Path) -> None:
    code = (
        "import sys, aligneai.testing, aligneai.testing._server;"
        f"print({PLUGIN!r} in sys.modules, 'pytest' in sys.modules)"
    )
    output = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,  # not the repo root, whose ./aligneai would shadow the package
    ).stdout
    assert output.split() == ["False", "False"]


def test_the_plugin_imports_nothing_of_the_kit(tmp_path: Path) -> None:
    """It loads in every pytest run: importing it must start nothing and load no server code."""
    code = (
        "import sys, threading, pytest; before = threading.active_count();"
        f"import {PLUGIN};"
        "kit = ['http.server', 'socketserver', 'aligneai.testing._server',"
        " 'aligneai.testing._faults', 'aligneai.testing._api', 'aligneai.testing._embedder'];"
        "print(sorted(m for m in kit if m in sys.modules), threading.active_count() - before)"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    ).stdout
    assert output.split() == ["[]", "0"]


def test_the_lazy_front_door_still_exports_everything() -> None:
    import importlib

    import aligneai.testing as kit

    # By sys.modules (pytester's in-process runs above drop and re-import the kit's modules).
    server = importlib.import_module("aligneai.testing._server")
    faults = importlib.import_module("aligneai.testing._faults")
    for name in kit.__all__:
        assert getattr(kit, name) is not None
    assert kit.LocalServer is server.LocalServer and kit.StatusFault is faults.StatusFault
    assert set(kit.__all__) <= set(dir(kit))
    with pytest.raises(AttributeError):
        kit.NoSuchThing  # noqa: B018
