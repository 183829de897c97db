"""Fuzz the local server from its OpenAPI document with schemathesis, every check (issue #12).

schemathesis generates requests from ``core/openapi.json`` (valid ones, invalid ones, methods the
document does not list, stateful sequences) and checks each answer against the same document:
statuses, headers (``allow``, ``retry-after``, ``x-ratelimit-*``), bodies and event streams. Any
failure is a place where the server and the contract disagree, so there must be none.

The run is bounded (``MAX_EXAMPLES`` per operation, a fixed seed: the same cases every run; set
``ALIGNEAI_FUZZ_SEED`` to explore others) and takes about 10 s per server on 2 cores.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aligneai.testing import LocalServer
from aligneai.testing.contract import load_openapi

KEY = "sk-fuzz"
MAX_EXAMPLES = 40
SEED = int(os.environ.get("ALIGNEAI_FUZZ_SEED", "20261201"))

SERVERS: dict[str, dict[str, Any]] = {
    "plain": {},
    # Budgets that bind during the run: 429s with retry-after, and x-ratelimit-* on every answer.
    "rate-limited": {"requests_per_minute": 600, "tokens_per_minute": 20_000},
}


def _schemathesis() -> list[str]:
    # The `st` script of this environment (next to the interpreter), else the module's CLI.
    script = Path(sys.executable).with_name("st")
    if script.exists():
        return [str(script)]
    found = shutil.which("st")
    assert found is not None, "schemathesis is not installed (requirements/schemathesis.txt)"
    return [found]


@pytest.mark.parametrize("settings", list(SERVERS.values()), ids=list(SERVERS))
def test_local_server_passes_every_schemathesis_check(
    tmp_path: Path, settings: dict[str, Any]
) -> None:
    # The document the installed package ships, not a source file: what users fuzz against.
    document = tmp_path / "openapi.json"
    document.write_text(json.dumps(load_openapi()), encoding="utf-8")
    with LocalServer(api_key=KEY, **settings) as server:
        command = [
            *_schemathesis(),
            "run",
            str(document),
            "--url",
            server.url,
            "--header",
            f"Authorization: Bearer {KEY}",
            "--checks",
            "all",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(SEED),
            "--workers",
            "2",
            "--generation-database",
            "none",
            "--request-timeout",
            "30",
            "--no-color",
        ]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,  # schemathesis writes its cassettes/reports there, not in the repo
            env={**os.environ, "NO_COLOR": "1"},
            check=False,
        )
    report = result.stdout[-30_000:] + result.stderr[-5_000:]
    assert result.returncode == 0, report
    assert "No issues found" in result.stdout, report
