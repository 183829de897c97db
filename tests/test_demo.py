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
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.py"
SUCCESS = "Embeddings created sccessfully:"  # sic: the README example's wording, verbatim
PAIR = re.compile(r"^\s+([+-]\d\.\d{3})\s+('.*')\s+~\s+('.*')$")
TIMEOUT = 60


class Demo:
    """One run of the demo: its output, or the output it had when it was stopped."""

    def __init__(self, stdout: str, stderr: str, returncode: int | None) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.returncode = returncode  # None: still running at TIMEOUT, killed


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIGNEAI_")}
    try:
        completed = subprocess.run(
            [sys.executable, str(DEMO)],
            cwd=tmp_path_factory.mktemp("demo"),
            env=env,  # PYTHONPATH (if any) passes through
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired as expired:
        # A demo that does not end (say, its server thread keeps the process alive) is a
        # test failure with its output, not an error in this fixture.
        return Demo(_text(expired.stdout), _text(expired.stderr), None)
    return Demo(completed.stdout, completed.stderr, completed.returncode)


def _text(output: str | bytes | None) -> str:
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


def test_demo_exits_0_in_time(demo: Demo) -> None:
    assert demo.returncode is not None, (
        f"the demo was still running after {TIMEOUT} s:\n" + demo.stdout + demo.stderr
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "Traceback" not in demo.stderr


def test_demo_prints_two_embeddings_as_json(
    demo: Demo,
) -> None:
    out = demo.stdout
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
    demo: Demo,
) -> None:
    out = demo.stdout
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
    demo: Demo,
) -> None:
    out = demo.stdout
    match = re.search(r"^== Local AligneAI server at (http://127\.0\.0\.1:\d+/v1)$", out, re.M)
    assert match, out
    # One request from get_embeddings.py, one from similarity.py: both hit the local server.
    assert out.rstrip().endswith("== The server answered 2 requests; stopping it."), out
