"""Bulk embedding under review (task BX): one run per output, the model, odd inputs.

- Two runs into one output at once raced (a failed checkpoint rename, an output of shape
  (0, 384)): a run now holds an exclusive lock on ``<output>.lock`` and a second one, in another
  process or in the same one, is refused before anything is sent.
- `BulkResult.model` / the iterators' ``model``: the model the server named; answers naming
  another model (or another width) than earlier ones stop the run with
  `APIResponseValidationError` (one output never mixes two models), across a resume too.
- Odd arguments: ids that do not match sized inputs are refused before sending; an exception
  raised by the inputs' generator or by the progress callback propagates as-is, and the output
  stays resumable.

Rows are compared with the deterministic embedder (`aligneai.testing.embed`), an independent
model of the local server's answers.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("aiohttp")

from aligneai import AligneAI, AsyncAligneAI  # noqa: E402
from aligneai.bulk import BulkResult  # noqa: E402
from aligneai.core.errors import (  # noqa: E402
    APIResponseValidationError,
    InvalidArgumentValueError,
)
from aligneai.testing import LocalServer  # noqa: E402

from ._helpers import DIMS, expected  # noqa: E402
from ._helpers import create_many as shared_create_many  # noqa: E402

DEFAULT_MODEL = "aligne-embed-small"  # the local server's default model (its contract)
CHILD_TIMEOUT = 60.0


def texts(n: int, start: int = 0) -> list[str]:
    return [f"review text {i} of the corpus" for i in range(start, start + n)]


def sent(server: LocalServer) -> list[str]:
    return [
        value
        for request in server.requests
        if request.path.endswith("/embeddings")
        for value in request.json["inputs"]
    ]


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer() as local:
        yield local


def create_many(url: str, driver: str, inputs: Any, **kwargs: Any) -> BulkResult:
    # Clients built with max_retries=0 (the bulk drivers retry batches themselves).
    return shared_create_many(url, driver, inputs, client_options={"max_retries": 0}, **kwargs)


drivers = pytest.mark.parametrize("driver", ["sync", "async"])


# -- one run per output ---------------------------------------------------------------------

# A run that stops inside its progress callback after its first batch, holding the output,
# until a line arrives on its stdin.
HOLDER = r"""
import asyncio, json, sys

spec = json.loads(sys.argv[1])
texts = [f"review text {i} of the corpus" for i in range(spec["n"])]
state = {"held": False}


def progress(event):
    if not state["held"]:
        state["held"] = True
        print("HOLDING", flush=True)
        sys.stdin.readline()


arguments = dict(dimensions=spec["dims"], batch_size=5, max_concurrency=1,
                 output=spec["output"], progress=progress)
if spec["driver"] == "sync":
    from aligneai import AligneAI

    with AligneAI(api_key="k", base_url=spec["url"]) as client:
        result = client.embeddings.create_many(texts, **arguments)
else:
    from aligneai import AsyncAligneAI

    async def main():
        async with AsyncAligneAI(api_key="k", base_url=spec["url"]) as client:
            return await client.embeddings.create_many(texts, **arguments)

    result = asyncio.run(main())
print("DONE", result.count, result.model, flush=True)
"""


class Holder:
    """A child process running create_many into ``output``, paused after its first batch."""

    def __init__(self, url: str, output: Path, driver: str, n: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALIGNEAI_")}
        spec = {"url": url, "output": str(output), "driver": driver, "n": n, "dims": DIMS}
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, json.dumps(spec)],
            cwd=output.parent,  # never the repo root: its ./aligneai would shadow the install
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        assert self.process.stdout is not None
        stdout = self.process.stdout
        threading.Thread(target=lambda: [self._lines.put(x) for x in stdout], daemon=True).start()

    def line(self) -> str:
        try:
            return self._lines.get(timeout=CHILD_TIMEOUT)
        except queue.Empty:
            self.process.kill()
            _, err = self.process.communicate()
            pytest.fail(f"the child said nothing: {err}")

    def resume(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("\n")
        self.process.stdin.flush()

    def finish(self) -> tuple[int, str]:
        _, err = self.process.communicate(timeout=CHILD_TIMEOUT)
        return self.process.returncode, err

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate(timeout=CHILD_TIMEOUT)


@drivers
def test_a_second_process_is_refused_while_a_run_holds_the_output(
    tmp_path: Path, driver: str
) -> None:
    output = tmp_path / "v.npy"
    corpus = texts(20)
    with LocalServer() as theirs, LocalServer() as ours:
        holder = Holder(theirs.url, output, "sync" if driver == "async" else "async", 20)
        try:
            assert holder.line().strip() == "HOLDING"
            checkpoint = output.with_name("v.npy.checkpoint.json").read_bytes()
            for resume in (False, True):
                with pytest.raises(InvalidArgumentValueError) as caught:
                    create_many(ours.url, driver, corpus, output=str(output), resume=resume)
                assert caught.value.argument == "output"
                assert "in use by another run" in str(caught.value)
            assert ours.requests == []  # refused before anything was sent
            # ... and before any file was touched: the holder's checkpoint is as it left it
            assert output.with_name("v.npy.checkpoint.json").read_bytes() == checkpoint
            holder.resume()
            assert holder.line().split() == ["DONE", "20", DEFAULT_MODEL]
            code, err = holder.finish()
            assert code == 0, err
        finally:
            holder.kill()
    np.testing.assert_allclose(np.load(output), expected(corpus), atol=1e-6)
    # no lock file left (the record of the finished run stays)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.npy", "v.npy.done.json"]


def test_a_killed_run_leaves_no_stale_lock(tmp_path: Path) -> None:
    output = tmp_path / "v.jsonl"
    corpus = texts(20)
    with LocalServer() as theirs, LocalServer() as ours:
        holder = Holder(theirs.url, output, "sync", 20)
        try:
            assert holder.line().strip() == "HOLDING"
        finally:
            holder.kill()  # SIGKILL: the OS drops the lock with the process
        result = create_many(ours.url, "sync", corpus, output=str(output), resume=True)
        assert result.resumed == 5  # the killed run's first batch was kept
        assert sorted(sent(ours)) == sorted(corpus[5:])
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [row["index"] for row in rows] == list(range(20))
    np.testing.assert_allclose([row["embedding"] for row in rows], expected(corpus), atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.jsonl", "v.jsonl.done.json"]


@pytest.mark.parametrize(("outer", "inner"), [("sync", "async"), ("async", "sync")])
def test_a_second_run_in_the_same_process_is_refused(
    server: LocalServer, tmp_path: Path, outer: str, inner: str
) -> None:
    output = tmp_path / "v.parquet"
    pytest.importorskip("pyarrow")
    corpus = texts(12)
    refusals: list[BaseException] = []

    # Texts of their own: the outer run's other requests may land while the callback runs
    # (its workers go on), so "nothing sent" is checked by content, not by a request count.
    refused = [f"refused text {i}" for i in range(3)]

    def progress(event: Any) -> None:
        if refusals:
            return
        try:
            if inner == "sync":
                create_many(server.url, "sync", refused, output=str(output), resume=True)
            else:  # the outer run is sync: no event loop is running on this thread
                create_many(server.url, "async", refused, output=str(output), resume=True)
        except BaseException as exc:
            refusals.append(exc)
        assert not set(refused) & set(sent(server))  # nothing sent by the refused run

    result = create_many(
        server.url, outer, corpus, output=str(output), batch_size=4, progress=progress
    )
    assert len(refusals) == 1
    assert isinstance(refusals[0], InvalidArgumentValueError)
    assert refusals[0].argument == "output"
    assert "in use by another run" in str(refusals[0])
    assert result.count == 12 and result.failed == ()
    assert not set(refused) & set(sent(server))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.parquet", "v.parquet.done.json"]


@drivers
def test_the_lock_is_released_when_a_run_fails(
    server: LocalServer, tmp_path: Path, driver: str
) -> None:
    # A generator that raises midway: its own exception propagates, as it is (it is the
    # caller's: wrapping it would hide it), and the output keeps what was written.
    boom = RuntimeError("the source went away")
    corpus = texts(30)

    def broken() -> Iterator[str]:
        yield from corpus[:20]
        raise boom

    output = tmp_path / "v.npy"
    with pytest.raises(RuntimeError) as caught:
        create_many(server.url, driver, broken(), output=str(output), batch_size=5)
    assert caught.value is boom
    assert not output.with_name("v.npy.lock").exists()
    first = len(sent(server))
    assert first <= 20
    result = create_many(server.url, driver, iter(corpus), output=str(output), resume=True)
    assert result.count == 30
    # The answers in flight when the inputs raised were collected and written: every input
    # the failed run sent is kept, and only the rest is sent now.
    assert result.resumed == first == 20
    assert sorted(sent(server)[first:]) == sorted(corpus[20:])
    np.testing.assert_allclose(np.load(output), expected(corpus), atol=1e-6)


@drivers
def test_an_exception_from_the_progress_callback_propagates_and_keeps_the_output(
    server: LocalServer, tmp_path: Path, driver: str
) -> None:
    class Stop(Exception):
        pass

    calls: list[int] = []

    def progress(event: Any) -> None:
        calls.append(event.done)
        if len(calls) == 2:
            raise Stop

    corpus = texts(20)
    output = tmp_path / "v.npy"
    with pytest.raises(Stop):
        create_many(
            server.url,
            driver,
            corpus,
            output=str(output),
            batch_size=5,
            max_concurrency=1,
            progress=progress,
        )
    result = create_many(server.url, driver, corpus, output=str(output), resume=True)
    assert result.resumed == 10  # both batches reported were written before the callback ran
    np.testing.assert_allclose(np.load(output), expected(corpus), atol=1e-6)


# -- the model ------------------------------------------------------------------------------


@drivers
def test_the_result_names_the_model_the_server_reported(server: LocalServer, driver: str) -> None:
    assert create_many(server.url, driver, texts(5)).model == DEFAULT_MODEL
    assert create_many(server.url, driver, texts(5), model="aligne-embed-large").model == (
        "aligne-embed-large"
    )
    # No input, no answer: no model.
    assert create_many(server.url, driver, []).model is None


def test_iterators_name_the_model(server: LocalServer) -> None:
    with AligneAI(api_key="k", base_url=server.url) as client:
        chunks = client.embeddings.iter_many(texts(6), batch_size=2, dimensions=DIMS)
        assert chunks.model is None  # nothing answered yet
        assert sum(len(chunk) for chunk in chunks) == 6
        assert chunks.model == DEFAULT_MODEL

    async def main() -> str | None:
        async with AsyncAligneAI(api_key="k", base_url=server.url) as client:
            chunks = client.embeddings.iter_many(texts(6), batch_size=2, dimensions=DIMS)
            async for _ in chunks:
                pass
            return chunks.model

    assert asyncio.run(main()) == DEFAULT_MODEL


class FickleServer:
    """Answers embeddings requests (base64) with the model and width it is told, per request."""

    def __init__(self, httpserver: Any) -> None:
        self.answers: list[tuple[str, int]] = []  # (model, width) of each request, in order
        self.default = ("model-a", 4)
        self.count = 0
        self.url = httpserver.url_for("/v1")
        httpserver.expect_request("/v1/embeddings", method="POST").respond_with_handler(self.handle)

    def handle(self, request: Any) -> Any:
        from werkzeug.wrappers import Response

        body = json.loads(request.data)
        model, width = self.answers[self.count] if self.count < len(self.answers) else self.default
        self.count += 1
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": base64.b64encode(
                    np.full(width, len(text), dtype="<f4").tobytes()
                ).decode(),
            }
            for i, text in enumerate(body["inputs"])
        ]
        tokens = sum(len(text) for text in body["inputs"])
        answer = {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return Response(json.dumps(answer), content_type="application/json")


@pytest.fixture
def fickle(httpserver: Any) -> FickleServer:
    return FickleServer(httpserver)


@drivers
def test_answers_from_two_models_stop_the_run(
    fickle: FickleServer, tmp_path: Path, driver: str
) -> None:
    fickle.answers = [("model-a", 4), ("model-b", 4)]
    output = tmp_path / "v.npy"
    corpus = texts(6)
    with pytest.raises(APIResponseValidationError, match=r"'model-b'.*'model-a'.*mix"):
        create_many(
            fickle.url,
            driver,
            corpus,
            output=str(output),
            batch_size=2,
            max_concurrency=1,
            dimensions=None,
        )
    # The other model's rows were not written: the output resumes from the first batch.
    fickle.answers, fickle.count = [], 0
    fickle.default = ("model-b", 4)  # the server's default changed in between
    with pytest.raises(APIResponseValidationError, match=r"the interrupted run.*'model-a'"):
        create_many(fickle.url, driver, corpus, output=str(output), resume=True, dimensions=None)
    fickle.default = ("model-a", 4)
    result = create_many(
        fickle.url, driver, corpus, output=str(output), resume=True, dimensions=None
    )
    assert (result.model, result.resumed, result.count) == ("model-a", 2, 6)
    np.testing.assert_array_equal(
        np.load(output), np.array([[float(len(t))] * 4 for t in corpus], dtype=np.float32)
    )


@drivers
def test_iter_many_refuses_answers_of_another_width(fickle: FickleServer, driver: str) -> None:
    fickle.answers = [("model-a", 4), ("model-a", 6)]

    def consume() -> list[int]:
        if driver == "sync":
            with AligneAI(api_key="k", base_url=fickle.url, max_retries=0) as client:
                chunks = client.embeddings.iter_many(texts(6), batch_size=2, max_concurrency=1)
                return [len(chunk) for chunk in chunks]

        async def main() -> list[int]:
            async with AsyncAligneAI(api_key="k", base_url=fickle.url, max_retries=0) as client:
                chunks = client.embeddings.iter_many(texts(6), batch_size=2, max_concurrency=1)
                return [len(chunk) async for chunk in chunks]

        return asyncio.run(main())

    with pytest.raises(APIResponseValidationError, match=r"6-dimensional.*got 4"):
        consume()


# -- arguments checked before sending -------------------------------------------------------


@drivers
@pytest.mark.parametrize("id_count", [10, 31])
def test_ids_that_do_not_match_sized_inputs_are_refused_before_sending(
    server: LocalServer, tmp_path: Path, driver: str, id_count: int
) -> None:
    ids = [f"id-{i}" for i in range(id_count)]
    with pytest.raises(InvalidArgumentValueError) as caught:
        create_many(
            server.url,
            driver,
            texts(30),
            ids=ids,
            output=str(tmp_path / "v.jsonl"),
            batch_size=5,
        )
    assert caught.value.argument == "ids"
    assert f"has {id_count} items but inputs have 30" in str(caught.value)
    assert server.requests == []
    assert list(tmp_path.iterdir()) == []  # no file was created


def test_ids_of_a_generator_that_runs_short_are_refused_when_it_does(
    server: LocalServer, tmp_path: Path
) -> None:
    # Unsized: the mismatch shows when the ids run out; what was written stays resumable.
    output = tmp_path / "v.jsonl"
    with pytest.raises(InvalidArgumentValueError, match="ids: has 10 items but inputs have more"):
        create_many(
            server.url,
            "sync",
            iter(texts(30)),
            ids=(f"id-{i}" for i in range(10)),
            output=str(output),
            batch_size=5,
        )
    assert output.with_name("v.jsonl.checkpoint.json").exists()
    assert not output.with_name("v.jsonl.lock").exists()


@drivers
def test_a_batch_given_up_on_keeps_the_answers_in_flight(tmp_path: Path, driver: str) -> None:
    from aligneai import UnprocessableEntityError
    from aligneai.testing import Fault

    corpus = texts(20)
    output = tmp_path / "v.npy"
    # Four requests go out at once; the first the server receives is refused at once, the
    # others are answered a little later: their rows are written before the error is raised.
    with LocalServer(latency=0.05) as server:
        server.enqueue(Fault.status(422))
        with pytest.raises(UnprocessableEntityError):
            create_many(
                server.url, driver, corpus, output=str(output), batch_size=5, max_concurrency=4
            )
        assert len(server.requests) == 4
        server.reset()
        result = create_many(server.url, driver, corpus, output=str(output), resume=True)
        assert result.resumed == 15
        assert len(sent(server)) == 5  # only the refused batch is sent again
    np.testing.assert_allclose(np.load(output), expected(corpus), atol=1e-6)


@drivers
def test_a_server_asking_for_an_hour_stops_the_run_at_once(
    server: LocalServer, tmp_path: Path, driver: str
) -> None:
    import time

    from aligneai import RateLimitError
    from aligneai.testing import Fault

    server.enqueue(Fault.status(429, retry_after=3600))
    output = tmp_path / "v.npy"
    started = time.monotonic()
    with pytest.raises(RateLimitError):
        create_many(server.url, driver, texts(4), output=str(output), batch_size=2)
    assert time.monotonic() - started < 30  # not an hour
    result = create_many(server.url, driver, texts(4), output=str(output), resume=True)
    assert result.count == 4
    np.testing.assert_allclose(np.load(output), expected(texts(4)), atol=1e-6)


@drivers
def test_ids_without_an_output_file_are_refused(server: LocalServer, driver: str) -> None:
    # In memory, row i of result.matrix is input i and the result has no place for ids: taking
    # them would drop them silently.
    with pytest.raises(InvalidArgumentValueError) as caught:
        create_many(server.url, driver, texts(3), ids=["a", "b", "c"])
    assert caught.value.argument == "ids"
    assert "needs an output file" in str(caught.value)
    assert server.requests == []


def test_resume_over_a_done_range_longer_than_a_skip_chunk(
    server: LocalServer, tmp_path: Path
) -> None:
    # The checkpoint merges the first run's batches into one range of 8,192 rows; the resumed
    # run reads (and checks) it in chunks of SKIP_CHUNK texts, then sends only the rest.
    from aligneai.core.batching import SKIP_CHUNK

    class Stop(Exception):
        pass

    corpus = texts(9000)

    def progress(event: Any) -> None:
        if event.done >= 4 * 2048:
            raise Stop

    output = tmp_path / "v.npy"
    with pytest.raises(Stop):
        create_many(
            server.url, "sync", corpus, output=str(output), max_concurrency=1, progress=progress
        )
    done = json.loads(output.with_name("v.npy.checkpoint.json").read_text())["done"]
    assert [(a, b) for a, b, _ in done] == [(0, 8192)] and SKIP_CHUNK < 8192
    server.reset()
    result = create_many(server.url, "sync", iter(corpus), output=str(output), resume=True)
    assert result.resumed == 8192
    assert sent(server) == corpus[8192:]
    np.testing.assert_allclose(np.load(output), expected(corpus), atol=1e-6)


@drivers
@pytest.mark.parametrize(
    ("bad", "argument", "error"),
    [("", "inputs[4000]", InvalidArgumentValueError), (7, "inputs[4000]", TypeError)],
)
def test_a_bad_text_deep_in_a_list_is_named_before_anything_is_sent(
    server: LocalServer, tmp_path: Path, driver: str, bad: object, argument: str, error: type
) -> None:
    # A list can be checked whole before the first request (a generator cannot: its texts
    # are checked as they are read, and the run stops at the first bad one).
    inputs: list[object] = list(texts(5000))
    inputs[4000] = bad
    with pytest.raises(error) as caught:
        create_many(server.url, driver, inputs, batch_size=100, output=str(tmp_path / "v.npy"))
    assert caught.value.argument == argument  # type: ignore[attr-defined]
    assert server.requests == []
    assert list(tmp_path.iterdir()) == []
    with AligneAI(api_key="k", base_url=server.url) as client, pytest.raises(error):
        client.embeddings.iter_many(inputs, batch_size=100)
    assert server.requests == []


@drivers
@pytest.mark.parametrize(
    ("arguments", "argument", "error"),
    [
        ({"max_concurrency": 0}, "max_concurrency", InvalidArgumentValueError),
        ({"max_concurrency": True}, "max_concurrency", TypeError),
        ({"max_concurrency": 1.5}, "max_concurrency", TypeError),
        ({"requests_per_minute": -1}, "requests_per_minute", InvalidArgumentValueError),
        ({"requests_per_minute": math.nan}, "requests_per_minute", InvalidArgumentValueError),
        ({"tokens_per_minute": math.inf}, "tokens_per_minute", InvalidArgumentValueError),
        ({"progress": 1}, "progress", TypeError),
        ({"progress": "yes"}, "progress", TypeError),
        ({"output": "missing/folder/v.npy"}, "output", InvalidArgumentValueError),
        ({"output": "v.csv"}, "output", InvalidArgumentValueError),
        ({"resume": 1, "output": "v.npy"}, "resume", TypeError),
        ({"resume": True}, "resume", InvalidArgumentValueError),
        ({"ids": "abc", "output": "v.jsonl"}, "ids", TypeError),
        ({"on_error": "ignore"}, "on_error", InvalidArgumentValueError),
    ],
)
def test_odd_arguments_are_named_before_anything_is_sent(
    server: LocalServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    driver: str,
    arguments: dict[str, Any],
    argument: str,
    error: type,
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error) as caught:
        create_many(server.url, driver, texts(3), **arguments)
    assert caught.value.argument == argument  # type: ignore[attr-defined]
    assert server.requests == []
    assert list(tmp_path.iterdir()) == []
