"""kill -9 in the middle of ``create_many`` into a .npy, then ``resume=True`` (issue #11).

A child process embeds a corpus into a .npy against the local server (with a latency, so that
requests are in flight) and is killed with SIGKILL once the server has received a chosen number
of requests. A second child resumes into the same output. What must hold, for the sync and the
async driver:

- the final file holds exactly the deterministic embedder's vector of every input, at its index
  (nothing lost, duplicated or misplaced);
- the resumed run re-sends only inputs that were in flight at the kill: sent by the killed run
  but not in its checkpoint (every input it sends is either not done or such an input, and it
  sends none twice);
- every input not in the checkpoint is sent by the resumed run (nothing lost).

Which run sent a request is told by a header each child adds (``x-run``), not by timing, so a
request of the killed run that the server logs late cannot be mistaken for a re-send.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("aiohttp")

from aligneai.testing import LocalServer, embed  # noqa: E402

N = 300
BATCH = 10
CONCURRENCY = 4
DIMS = 8
LATENCY = 0.03  # each request takes >= 30 ms at the server: some are always in flight
CHILD_TIMEOUT = 60.0

CHILD = r"""
import asyncio, json, sys

spec = json.loads(sys.argv[1])


def texts():
    return (
        f"record {i} covers topic {i % 89} in section {i % 13} of part {i % 7}"
        for i in range(spec["n"])
    )


arguments = dict(
    dimensions=spec["dims"], batch_size=spec["batch"], max_concurrency=spec["concurrency"],
    output=spec["output"], resume=spec["resume"],
)
headers = {"x-run": spec["run"]}
if spec["driver"] == "sync":
    from aligneai import AligneAI

    with AligneAI(api_key="k", base_url=spec["url"], default_headers=headers) as client:
        result = client.embeddings.create_many(texts(), **arguments)
else:
    from aligneai import AsyncAligneAI

    async def main():
        async with AsyncAligneAI(
            api_key="k", base_url=spec["url"], default_headers=headers
        ) as client:
            return await client.embeddings.create_many(texts(), **arguments)

    result = asyncio.run(main())
print("DONE", result.count, flush=True)
"""


def text(i: int) -> str:
    """The child's input ``i`` (written out again here: the expected side of the test)."""
    return f"record {i} covers topic {i % 89} in section {i % 13} of part {i % 7}"


def index_of(value: str) -> int:
    words = value.split()
    assert words[0] == "record", value
    return int(words[1])


def child(spec: dict[str, Any], cwd: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIGNEAI_")}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(spec)],
        cwd=cwd,  # never the repo root: its ./aligneai would shadow the installed package
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def sent_by(server: LocalServer, run: str) -> list[int]:
    """Indexes of the inputs the server received from ``run`` (repeats kept)."""
    sent: list[int] = []
    for request in server.requests:
        if request.headers.get("x-run") == run and request.path.endswith("/embeddings"):
            sent.extend(index_of(value) for value in request.json["inputs"])
    return sent


def requests_by(server: LocalServer, run: str) -> int:
    return sum(request.headers.get("x-run") == run for request in server.requests)


def checkpoint_done(output: Path) -> set[int]:
    """Inputs recorded in the checkpoint sidecar (``done``: ``[start, stop, digest]`` ranges)."""
    path = output.with_name(output.name + ".checkpoint.json")
    if not path.exists():
        return set()
    done: set[int] = set()
    for start, stop, _digest in json.loads(path.read_text(encoding="utf-8"))["done"]:
        done.update(range(start, stop))
    return done


def run_and_kill(spec: dict[str, Any], cwd: Path, server: LocalServer, kill_after: int) -> None:
    process = child(spec, cwd)
    try:
        deadline = time.monotonic() + CHILD_TIMEOUT
        while requests_by(server, "killed") < kill_after:
            if process.poll() is not None:
                _, err = process.communicate()
                pytest.fail(
                    f"the run ended before the kill point (exit {process.returncode}): {err}"
                )
            assert time.monotonic() < deadline, "the run to kill made no progress"
            time.sleep(0.002)
        process.send_signal(signal.SIGKILL)
        process.wait(CHILD_TIMEOUT)
        assert process.returncode == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


@pytest.fixture(scope="module")
def expected() -> Any:
    # From the embedder itself (an independent model of the server's answers), never from
    # the client under test.
    return np.array([embed(text(i), DIMS) for i in range(N)], dtype=np.float32)


@pytest.mark.parametrize("driver", ["sync", "async"])
@pytest.mark.parametrize("seed", [11])
def test_kill_9_then_resume_sends_only_what_was_in_flight(
    driver: str, seed: int, tmp_path: Path, expected: Any
) -> None:
    batches = N // BATCH
    # A random point past the first round of requests and before the last one.
    kill_after = random.Random(f"{driver}-{seed}").randint(CONCURRENCY + 2, batches - 5)
    output = tmp_path / "vectors.npy"
    spec = {
        "n": N, "dims": DIMS, "batch": BATCH, "concurrency": CONCURRENCY,
        "output": str(output), "driver": driver,
    }  # fmt: skip
    with LocalServer(latency=LATENCY, request_log_limit=100_000) as server:
        spec["url"] = server.url
        run_and_kill({**spec, "run": "killed", "resume": False}, tmp_path, server, kill_after)
        done = checkpoint_done(output)  # the killed run cannot touch it any more

        resumed = child({**spec, "run": "resumed", "resume": True}, tmp_path)
        out, err = resumed.communicate(timeout=CHILD_TIMEOUT)
        assert resumed.returncode == 0, err
        assert out.split() == ["DONE", str(N)]
        killed_sent = sent_by(server, "killed")
        resumed_sent = sent_by(server, "resumed")

    in_flight = set(killed_sent) - done
    resent = [i for i in resumed_sent if i in set(killed_sent)]
    assert done <= set(killed_sent)  # the checkpoint records only what was sent
    assert len(done) < N  # the kill came before the end
    assert set(resent) <= in_flight  # nothing checkpointed is sent again...
    assert len(resent) <= len(in_flight)
    assert len(resumed_sent) == len(set(resumed_sent))  # ...and nothing twice
    assert set(resumed_sent) | done == set(range(N))  # nothing left out
    assert not (set(resumed_sent) & done)

    matrix = np.load(output)
    assert matrix.dtype == np.float32
    assert matrix.shape == (N, DIMS)
    # Bytewise: every row is its input's vector exactly, at its index.
    assert matrix.tobytes() == expected.tobytes(), [
        i for i in range(N) if matrix[i].tobytes() != expected[i].tobytes()
    ][:10]
    assert not output.with_name(output.name + ".checkpoint.json").exists()
