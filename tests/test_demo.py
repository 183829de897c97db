"""``examples/demo.py`` (``make demo``): the README example and the similarity demo, end to end.

The demo runs in a subprocess from a scratch directory (the repository root would shadow the
installed package), with the script's absolute path; it starts the local server in-process,
so the process ending in time means the server stopped.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.py"
SUCCESS = "Embeddings created sccessfully:"  # sic: the README example's wording, verbatim
PAIR = re.compile(r"^\s+([+-]\d\.\d{3})\s+('.*')\s+~\s+('.*')$")
TIMEOUT = 60


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIGNEAI_")}
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, str(DEMO)],
        cwd=tmp_path_factory.mktemp("demo"),
        env=env,  # PYTHONPATH (if any) passes through
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    return completed, time.monotonic() - started


def test_demo_exits_0_in_time(demo: tuple[subprocess.CompletedProcess[str], float]) -> None:
    completed, elapsed = demo
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert elapsed < TIMEOUT
    assert "Traceback" not in completed.stderr


def test_demo_prints_two_embeddings_as_json(
    demo: tuple[subprocess.CompletedProcess[str], float],
) -> None:
    out = demo[0].stdout
    assert out.count(SUCCESS) == 1, out
    after = out.split(SUCCESS, 1)[1].lstrip()
    body, _ = json.JSONDecoder().raw_decode(after)
    assert body["object"] == "list"
    assert [item["index"] for item in body["data"]] == [0, 1]
    vectors = [item["embedding"] for item in body["data"]]
    assert len(vectors[0]) == len(vectors[1]) > 0
    assert all(isinstance(value, float) for value in vectors[0])
    assert vectors[0] != vectors[1]
    assert body["usage"]["total_tokens"] > 0


def test_demo_similarity_ranks_the_coffee_pair_first(
    demo: tuple[subprocess.CompletedProcess[str], float],
) -> None:
    out = demo[0].stdout
    assert "== examples/similarity.py" in out
    block = out.split("== examples/similarity.py", 1)[1]
    pairs = [match.groups() for match in map(PAIR.match, block.splitlines()) if match]
    assert len(pairs) == 3, block
    scores = [float(score) for score, _, _ in pairs]
    assert all(-1.0 <= score <= 1.0 for score in scores)
    first, second, third = pairs
    # The similarity.py texts are cut to 40 characters: both coffee texts name BeanWorks.
    assert "BeanWorks" in first[1] and "BeanWorks" in first[2]
    assert "beach" not in first[1] + first[2]
    assert "beach" in second[2] and "beach" in third[2]
    assert scores[0] > scores[1]
    assert scores[0] > scores[2]


def test_demo_used_its_local_server_and_stopped_it(
    demo: tuple[subprocess.CompletedProcess[str], float],
) -> None:
    out = demo[0].stdout
    match = re.search(r"^== Local AligneAI server at (http://127\.0\.0\.1:\d+/v1)$", out, re.M)
    assert match, out
    # One request from get_embeddings.py, one from similarity.py: both hit the local server.
    assert out.rstrip().endswith("== The server answered 2 requests; stopping it."), out
