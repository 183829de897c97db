"""``embeddings.create_many`` against the local server, sync and async (issue #11).

Every row is compared with the deterministic embedder's vector for its text (an independent
model of what the server returns); faults come from the server's fault injection and limiter.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("aiohttp")

from aligneai import AligneAI, AsyncAligneAI, BadRequestError  # noqa: E402
from aligneai.bulk import BulkResumeError, InputTooLargeError  # noqa: E402
from aligneai.core.errors import (  # noqa: E402
    InvalidArgumentTypeError,
    InvalidArgumentValueError,
)
from aligneai.testing import Fault, LocalServer, count_tokens  # noqa: E402

from ._helpers import DIMS, create_many, expected  # noqa: E402


def corpus(n: int, *, words: int = 4) -> list[str]:
    return [" ".join(f"w{i}x{k}" for k in range(words)) + f" #{i}" for i in range(n)]


drivers = pytest.mark.parametrize("driver", ["sync", "async"])


def embedded_requests(server: LocalServer) -> list[Any]:
    return [r for r in server.requests if r.path.endswith("/embeddings")]


@drivers
def test_every_row_in_order_from_a_generator(driver: str) -> None:
    texts = corpus(301)
    with LocalServer(latency=0.002) as server:
        result = create_many(server, driver, (t for t in texts), batch_size=16, max_concurrency=4)
        sent = embedded_requests(server)
    assert result.count == 301 and result.dimensions == DIMS
    assert result.matrix is not None and result.matrix.dtype == np.float32
    assert np.array_equal(result.matrix, expected(texts))
    assert result.requests == len(sent) == 19  # ceil(301 / 16), nothing retried
    assert result.retries == 0 and result.rate_limited == 0 and result.failed == ()
    assert result.usage.prompt_tokens == sum(count_tokens(t) for t in texts)
    assert result.output is None
    # Each input went out exactly once, each request held at most 16.
    seen = [t for request in sent for t in request.json["inputs"]]
    assert sorted(seen) == sorted(texts)
    assert all(len(request.json["inputs"]) <= 16 for request in sent)
    # Requests carry no retries of their own: the scheduler owns them.
    assert all(r.headers.get("x-aligneai-retry-count", "0") == "0" for r in sent)


@drivers
def test_empty_inputs_give_an_empty_result(driver: str) -> None:
    with LocalServer() as server:
        result = create_many(server, driver, [])
        assert embedded_requests(server) == []
    assert result.count == 0 and result.matrix is not None and result.matrix.shape[0] == 0


@drivers
def test_429_holds_then_retries_the_same_inputs(driver: str) -> None:
    texts = corpus(40)
    with LocalServer() as server:
        server.enqueue(Fault.status(429, retry_after=0.05), Fault.status(429, retry_after=0.05))
        result = create_many(server, driver, texts, batch_size=10, max_concurrency=1)
        sent = embedded_requests(server)
    assert np.array_equal(result.matrix, expected(texts))
    assert result.rate_limited == 2 and result.retries == 2
    assert result.requests == len(sent) == 6
    # The first batch was sent three times: twice refused, then answered.
    assert [r.json["inputs"][0] for r in sent[:3]] == [texts[0]] * 3


@drivers
def test_5xx_and_dropped_connections_are_retried(driver: str) -> None:
    texts = corpus(30)
    with LocalServer() as server:
        server.enqueue(
            Fault.status(503, retry_after=0.01),
            Fault.drop_before_headers(),
            Fault.status(500, retry_after=0.01),
        )
        result = create_many(server, driver, texts, batch_size=10, max_concurrency=1)
    assert np.array_equal(result.matrix, expected(texts))
    assert result.retries == 3 and result.rate_limited == 0


@drivers
def test_pacing_follows_the_servers_rate_limit(driver: str) -> None:
    # 60000 tokens a minute: 1000 a second, a burst of 10000. About 12000 tokens: ~2 s paced.
    texts = corpus(1715, words=5)  # 7 tokens each: 5 words, "#", the number
    total = sum(count_tokens(t) for t in texts)
    assert 11_000 < total < 13_000
    with LocalServer(tokens_per_minute=60_000) as server:
        started = time.monotonic()
        result = create_many(server, driver, texts, batch_size=50)
        elapsed = time.monotonic() - started
    assert np.array_equal(result.matrix, expected(texts))
    assert elapsed >= (total - 10_000) / 1000 - 0.5
    # The x-ratelimit headers let the client pace itself: (almost) nothing is refused.
    assert result.rate_limited <= 2


@drivers
def test_request_too_large_splits_the_batch(driver: str) -> None:
    texts = corpus(320)  # 6 tokens each: 4 words, "#", the number
    with LocalServer(max_request_tokens=60) as server:
        result = create_many(server, driver, texts, batch_size=32, max_concurrency=2)
        sent = embedded_requests(server)
    assert np.array_equal(result.matrix, expected(texts))
    too_large = [r for r in sent if sum(count_tokens(t) for t in r.json["inputs"]) > 60]
    assert result.retries == len(too_large) > 0
    # Each refusal halves the token budget of later batches: they soon fit at once (without
    # that, each of the 10 batches of 32 would be refused 3 times).
    assert not too_large[-1:] or sent.index(too_large[-1]) < len(sent) // 2


@drivers
def test_a_single_input_over_the_servers_cap_is_named(driver: str) -> None:
    texts = corpus(10)
    texts[6] = " ".join(["word"] * 80)
    with LocalServer(max_request_tokens=60) as server, pytest.raises(InputTooLargeError) as caught:
        create_many(server, driver, texts, batch_size=4, max_concurrency=1)
    assert caught.value.argument == "inputs[6]"
    assert isinstance(caught.value.__cause__, BadRequestError)

    with LocalServer(max_request_tokens=60) as server:
        result = create_many(server, driver, texts, batch_size=4, on_error="skip")
    assert result.failed == (6,)
    assert np.isnan(result.matrix[6]).all()
    rows = [i for i in range(10) if i != 6]
    assert np.array_equal(result.matrix[rows], expected([texts[i] for i in rows]))


@drivers
def test_an_input_estimated_over_max_batch_tokens_is_never_sent(driver: str) -> None:
    texts = ["short text", "x" * 4000, "another one"]
    with LocalServer() as server:
        with pytest.raises(InputTooLargeError, match=r"inputs\[1\]"):
            create_many(server, driver, texts, batch_size=1, max_batch_tokens=100)
        assert all("x" * 4000 not in r.json["inputs"] for r in embedded_requests(server))


@drivers
def test_skip_records_failed_inputs_and_goes_on(driver: str) -> None:
    texts = corpus(8)
    with LocalServer() as server:
        # One at a time: [0, 4) refused, bisected to [0, 2), then [0, 1): inputs[0] fails.
        server.enqueue(Fault.status(422), Fault.status(422), Fault.status(422))
        result = create_many(
            server, driver, texts, batch_size=4, max_concurrency=1, on_error="skip"
        )
    assert result.failed == (0,)
    assert np.isnan(result.matrix[0]).all()
    assert np.array_equal(result.matrix[1:], expected(texts[1:]))


@drivers
def test_a_rejected_batch_raises_when_not_skipping(driver: str) -> None:
    with LocalServer() as server:
        server.enqueue(Fault.status(422))
        with pytest.raises(Exception) as caught:
            create_many(server, driver, corpus(8), batch_size=4, max_concurrency=1)
    assert getattr(caught.value, "status_code", None) == 422


@drivers
def test_npy_output_is_a_memmap_and_the_checkpoint_goes_away(driver: str, tmp_path: Path) -> None:
    texts = corpus(100)
    out = tmp_path / "vectors.npy"
    with LocalServer() as server:
        result = create_many(server, driver, texts, batch_size=16, output=out)
    assert result.output == out
    assert isinstance(result.matrix, np.memmap)
    assert np.array_equal(np.load(out), expected(texts))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vectors.npy", "vectors.npy.done.json"]
    with LocalServer() as server, pytest.raises(InvalidArgumentValueError, match="exists"):
        create_many(server, driver, texts, output=out)


@drivers
def test_jsonl_output_with_ids(driver: str, tmp_path: Path) -> None:
    texts = corpus(20)
    out = tmp_path / "vectors.jsonl"
    with LocalServer() as server:
        result = create_many(
            server, driver, texts, ids=(f"doc-{i}" for i in range(20)), batch_size=6, output=out
        )
    assert result.matrix is None
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["index"] for line in lines] == list(range(20))
    assert [line["id"] for line in lines] == [f"doc-{i}" for i in range(20)]
    assert np.array_equal(
        np.array([line["embedding"] for line in lines], np.float32), expected(texts)
    )


def _interrupt_after(events: int, exc: Callable[[], BaseException]) -> Callable[[Any], None]:
    seen = []

    def callback(event: Any) -> None:
        seen.append(event)
        if len(seen) == events:
            raise exc()

    return callback


def test_ctrl_c_stops_promptly_and_resume_finishes(tmp_path: Path) -> None:
    texts = corpus(400)
    out = tmp_path / "vectors.npy"
    raised_at: list[float] = []

    def interrupt(event: Any) -> None:
        # Progress callbacks run on the driver's thread, where Ctrl-C lands: raise it there.
        if event.done >= 30:
            raised_at.append(time.monotonic())
            raise KeyboardInterrupt

    # Each request takes 1 s at the server: waiting for those in flight would take up to 1 s.
    with LocalServer(latency=1.0) as server:
        with AligneAI(api_key="k", base_url=server.url) as client, pytest.raises(KeyboardInterrupt):
            client.embeddings.create_many(
                texts, dimensions=DIMS, batch_size=10, max_concurrency=4, output=out,
                progress=interrupt,
            )  # fmt: skip
        stopped = time.monotonic() - raised_at[0]
        first_run = len(embedded_requests(server))
    assert stopped < 0.5
    assert (tmp_path / "vectors.npy.checkpoint.json").exists()
    with LocalServer() as server:
        result = create_many(server, "sync", texts, batch_size=10, output=out, resume=True)
        second_run = len(embedded_requests(server))
    assert np.array_equal(np.load(out), expected(texts))
    assert result.resumed >= 30
    # Only what was not recorded is sent again: at most what was in flight at the interrupt.
    assert second_run <= 40 - 3 + 4
    assert first_run <= 3 + 4 + 4
    assert not (tmp_path / "vectors.npy.checkpoint.json").exists()


def test_task_cancel_stops_promptly_and_resume_finishes(tmp_path: Path) -> None:
    texts = corpus(400)
    out = tmp_path / "vectors.npy"

    async def main(server: LocalServer) -> float:
        async with AsyncAligneAI(api_key="k", base_url=server.url) as client:
            progress: list[Any] = []
            task = asyncio.ensure_future(
                client.embeddings.create_many(
                    texts,
                    dimensions=DIMS,
                    batch_size=10,
                    max_concurrency=4,
                    output=out,
                    progress=progress.append,
                )
            )
            while len(progress) < 3:
                await asyncio.sleep(0.005)
            started = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return time.monotonic() - started

    # Each request takes 1 s at the server: waiting for those in flight would take up to 1 s.
    with LocalServer(latency=1.0) as server:
        stopped = asyncio.run(main(server))
    assert stopped < 0.5
    assert (tmp_path / "vectors.npy.checkpoint.json").exists()
    with LocalServer() as server:
        result = create_many(server, "async", texts, batch_size=10, output=out, resume=True)
    assert np.array_equal(np.load(out), expected(texts))
    assert result.resumed >= 30


@drivers
def test_resume_with_other_inputs_is_refused(driver: str, tmp_path: Path) -> None:
    texts = corpus(60)
    out = tmp_path / "vectors.npy"
    with LocalServer() as server:
        with pytest.raises(KeyboardInterrupt):
            create_many(
                server, driver, texts, batch_size=10, max_concurrency=1, output=out,
                progress=_interrupt_after(3, KeyboardInterrupt),
            )  # fmt: skip
        changed = list(texts)
        changed[5] = "something else entirely"
        with pytest.raises(BulkResumeError):
            create_many(server, driver, changed, batch_size=10, output=out, resume=True)
        with pytest.raises(BulkResumeError, match="dimensions"):
            create_many(server, driver, texts, dimensions=4, output=out, resume=True)


@drivers
@pytest.mark.parametrize(
    ("arguments", "error", "argument"),
    [
        ({"batch_size": 0}, InvalidArgumentValueError, "batch_size"),
        ({"batch_size": 4096}, InvalidArgumentValueError, "batch_size"),
        ({"batch_size": "10"}, InvalidArgumentTypeError, "batch_size"),
        ({"max_concurrency": 0}, InvalidArgumentValueError, "max_concurrency"),
        ({"requests_per_minute": -1}, InvalidArgumentValueError, "requests_per_minute"),
        ({"tokens_per_minute": float("nan")}, InvalidArgumentValueError, "tokens_per_minute"),
        ({"on_error": "ignore"}, InvalidArgumentValueError, "on_error"),
        ({"model": ""}, InvalidArgumentValueError, "model"),
        ({"dimensions": 0}, InvalidArgumentValueError, "dimensions"),
        ({"output": "vectors.csv"}, InvalidArgumentValueError, "output"),
        ({"resume": True}, InvalidArgumentValueError, "resume"),
        ({"progress": "yes"}, InvalidArgumentTypeError, "progress"),
    ],
)
def test_bad_arguments_are_named_before_anything_is_sent(
    driver: str, arguments: dict[str, Any], error: type, argument: str, tmp_path: Path
) -> None:
    if arguments.get("output"):
        arguments = {**arguments, "output": tmp_path / arguments["output"]}
    with LocalServer() as server:
        with pytest.raises(error) as caught:
            create_many(server, driver, corpus(5), **arguments)
        assert caught.value.argument == argument  # type: ignore[attr-defined]
        assert server.requests == []
    assert list(tmp_path.iterdir()) == []


@drivers
@pytest.mark.parametrize(
    ("inputs", "argument"),
    [("a string", "inputs"), (["ok", 3], "inputs[1]"), (["ok", ""], "inputs[1]"), (None, "inputs")],
)
def test_bad_inputs_are_named(driver: str, inputs: Any, argument: str) -> None:
    with LocalServer() as server, pytest.raises((TypeError, ValueError)) as caught:
        create_many(server, driver, inputs, batch_size=4)
    assert caught.value.argument == argument  # type: ignore[attr-defined]


def test_numpy_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from aligneai import MissingDependencyError

    monkeypatch.setitem(sys.modules, "numpy", None)
    with (
        AligneAI(api_key="k", base_url="http://127.0.0.1:9") as client,
        pytest.raises(MissingDependencyError, match=r"aligneai\[numpy\]"),
    ):
        client.embeddings.create_many(["a"])


def test_import_aligneai_loads_neither_numpy_nor_the_drivers() -> None:
    code = (
        "import sys, aligneai; from aligneai._bulk import _methods; "
        "print(sorted(m for m in sys.modules if m == 'numpy' or m.startswith('aligneai._bulk.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "['aligneai._bulk._methods']"


SIGINT_CHILD = r"""
import json, sys
from aligneai import AligneAI
from aligneai._bulk._methods import BulkEmbeddingsMixin

spec = json.loads(sys.argv[1])


class Bulk(BulkEmbeddingsMixin):
    def __init__(self, client):
        self._runner = client.runner


texts = (f"text {i} of the corpus" for i in range(spec["n"]))
with AligneAI(api_key="k", base_url=spec["url"]) as client:
    try:
        Bulk(client).create_many(
            texts, dimensions=8, batch_size=10, max_concurrency=4, output=spec["output"]
        )
    except KeyboardInterrupt:
        print("INTERRUPTED", flush=True)
        raise
"""


def test_a_real_sigint_stops_the_sync_driver_promptly(tmp_path: Path) -> None:
    import os
    import signal

    out = tmp_path / "vectors.npy"
    with LocalServer(latency=1.0) as server:
        spec = {"n": 400, "url": server.url, "output": str(out)}
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALIGNEAI_")}
        process = subprocess.Popen(
            [sys.executable, "-c", SIGINT_CHILD, json.dumps(spec)],
            cwd=tmp_path,  # not the repo root, whose ./aligneai would shadow the install
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while len(server.requests) < 4:  # the first requests are in flight (1 s each)
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.01)
            started = time.monotonic()
            process.send_signal(signal.SIGINT)
            out_text, err = process.communicate(timeout=30)
            stopped = time.monotonic() - started
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert "INTERRUPTED" in out_text, err
    assert process.returncode != 0 and "KeyboardInterrupt" in err
    # Nothing waited for the requests in flight (they take 1 s at the server).
    assert stopped < 0.9
    assert (tmp_path / "vectors.npy.checkpoint.json").exists()


@drivers
def test_progress_events_count_up_to_the_total(driver: str) -> None:
    texts = corpus(50)
    events: list[Any] = []
    with LocalServer() as server:
        result = create_many(server, driver, texts, batch_size=10, progress=events.append)
    assert [e.done for e in events] == sorted(e.done for e in events)
    assert events[-1].done == 50 and events[-1].total == 50
    assert events[-1].requests == result.requests == 5
    assert events[-1].tokens == result.usage.prompt_tokens


def test_progress_true_writes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    with LocalServer() as server:
        create_many(server, "sync", corpus(20), batch_size=10, progress=True)
    assert "20" in capsys.readouterr().err
