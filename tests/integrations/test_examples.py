"""The recipes of examples/ run as they are (local server in-process) and check their own rows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("script", ["dask_embed.py", "ray_embed.py"])
def test_recipe_runs_against_the_local_server(script: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIGNEAI_")}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    # cwd elsewhere: the repo root would shadow the installed package (see tox.ini).
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        capture_output=True,
        text=True,
        cwd="/",
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "2000 rows x 64 dimensions" in out.stdout
    assert "every row checked against the local server's deterministic embedder" in out.stdout
