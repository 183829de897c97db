"""One client shared by many threads or tasks: no errors, no crossed answers, no leaked connections.

Every answer is checked against its own input: the local server's embeddings are deterministic
(`aligneai.testing.embed`), and each call embeds texts no other call sends.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from aligneai import (
    AligneAI,
    APIConnectionError,
    APIError,
    AsyncAligneAI,
    CreateEmbeddingResponse,
    InternalServerError,
)
from aligneai.testing import Fault, LocalServer, embed
from aligneai.transports.aiohttp_transport import AiohttpTransport
from aligneai.transports.urllib3_transport import Urllib3Transport, default_ssl_context

DIMS = 8
PATH = "/v1/embeddings"
THREADS = 16
SYNC_CALLS = 2000
ASYNC_TASKS = 1000
STREAM_TASKS = 200


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer() as local:
        yield local


@pytest.fixture(scope="module")
def ssl_context() -> ssl.SSLContext:
    return default_ssl_context()


def _texts(call: int) -> list[str]:
    return [f"call {call} first text", f"another text of call {call}"]


def _check_answer(call: int, result: Any) -> None:
    """``result`` answers call number ``call``, and no other."""
    assert isinstance(result, CreateEmbeddingResponse)
    texts = _texts(call)
    assert [item.index for item in result.data] == list(range(len(texts)))
    for item, text in zip(result.data, texts):
        expected = embed(text, DIMS)
        assert all(abs(a - b) <= 1e-6 for a, b in zip(item.embedding, expected)), (call, text)


def test_threads_share_one_sync_client(server: LocalServer, ssl_context: ssl.SSLContext) -> None:
    server.reset()
    transport = Urllib3Transport(max_connections=THREADS, ssl_context=ssl_context, trust_env=False)
    client = AligneAI(api_key="sk-threads", base_url=server.url, transport=transport)
    errors: list[BaseException] = []
    done = collections.Counter[int]()
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def work(thread: int) -> None:
        start.wait()
        for call in range(thread, SYNC_CALLS, THREADS):
            try:
                result = client.embeddings.create(inputs=_texts(call), dimensions=DIMS)
                _check_answer(call, result)
            except BaseException as exc:  # crossed answers fail the check: record, go on
                with lock:
                    errors.append(exc)
            else:
                with lock:
                    done[call] += 1

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    transport.close()
    assert not errors, f"{len(errors)} calls failed, first: {errors[0]!r}"
    assert sorted(done) == list(range(SYNC_CALLS)) and set(done.values()) == {1}
    assert len([r for r in server.requests if r.path == PATH]) == SYNC_CALLS


def _connector(client: AsyncAligneAI) -> Any:
    # Private access, on purpose: aiohttp has no public view of the connections checked out of
    # its pool. `_acquired` is the set of connections in use by a request or an unread body.
    session = client._transport.session  # type: ignore[attr-defined]
    assert session is not None
    return session.connector


@pytest.mark.parametrize(
    ("fault", "error_class"),
    [
        (Fault.status(503), InternalServerError),
        (Fault.drop_before_headers(), APIConnectionError),
        (Fault.drop_mid_body(), APIConnectionError),
    ],
    ids=["503", "drop_before_headers", "drop_mid_body"],
)
def test_tasks_share_one_async_client_under_faults(
    server: LocalServer, ssl_context: ssl.SSLContext, fault: Fault, error_class: type
) -> None:
    server.reset()
    server.set_fault_rate(fault, 0.1, seed=7)
    sleeps: list[float] = []

    async def record_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def run() -> tuple[list[Any], int]:
        transport = AiohttpTransport(ssl_context=ssl_context, trust_env=False)
        client = AsyncAligneAI(
            api_key="sk-tasks", base_url=server.url, transport=transport, _sleep=record_sleep
        )

        async def one(call: int) -> Any:
            try:
                return await client.embeddings.create(inputs=_texts(call), dimensions=DIMS)
            except APIError as exc:
                return exc

        outcomes = await asyncio.gather(*(one(call) for call in range(ASYNC_TASKS)))
        acquired = len(_connector(client)._acquired)
        await transport.aclose()
        return outcomes, acquired

    outcomes, acquired = asyncio.run(run())
    assert acquired == 0, f"{acquired} connections still checked out after every call ended"

    kinds = collections.Counter(type(outcome).__name__ for outcome in outcomes)
    unexpected = {
        kind: n
        for kind, n in kinds.items()
        if kind not in ("CreateEmbeddingResponse", error_class.__name__)
    }
    assert not unexpected, f"undocumented outcomes: {unexpected} (all: {kinds})"
    failures = kinds[error_class.__name__]
    # A call fails only if 3 attempts in a row meet the fault: about 1 in 1000 calls.
    assert failures <= 10, kinds
    for call, outcome in enumerate(outcomes):
        if isinstance(outcome, CreateEmbeddingResponse):
            _check_answer(call, outcome)

    received = [r for r in server.requests if r.path == PATH]
    faulted = sum(1 for r in received if r.fault is not None)
    assert faulted > 0.05 * ASYNC_TASKS, "the fault rate did not apply"
    # Every faulted attempt is retried after a sleep, except the last attempt of a failed call.
    # A retry can also follow a failure the server never recorded: on a loaded machine a pooled
    # connection the server just closed may be picked for the next request, which fails before
    # the server reads it (a ReadError, retried like any other). Those retries show up as sleeps
    # without a recorded request; they must stay rare (a few percent of the calls at most).
    assert len(sleeps) >= faulted - failures
    unrecorded = ASYNC_TASKS + len(sleeps) - len(received)
    assert 0 <= unrecorded <= 0.05 * ASYNC_TASKS, (unrecorded, len(sleeps), faulted)
    server.reset()


def test_concurrent_streams_release_their_connections(
    server: LocalServer, ssl_context: ssl.SSLContext
) -> None:
    """Streams that finish, fail mid-body, or are abandoned after one item leak nothing.

    Every stream is sent slowly (a pause before each event), so that a stream abandoned after
    its first item still has body on the way: only closing it can give its connection back.
    """
    server.reset()
    server.enqueue(*[Fault.sse_drop(after_items=1)] * (STREAM_TASKS // 5))
    server.set_fault_rate(Fault.slow_body(0.02), 1.0)

    async def run() -> tuple[collections.Counter[str], int, int]:
        transport = AiohttpTransport(ssl_context=ssl_context, trust_env=False)
        client = AsyncAligneAI(api_key="sk-streams", base_url=server.url, transport=transport)
        in_use: list[int] = []

        async def one(call: int) -> str:
            try:
                stream = await client.embeddings.create(
                    inputs=_texts(call), dimensions=DIMS, stream=True
                )
                if call % 5 == 0:  # abandon after the first item
                    async for _item in stream:
                        in_use.append(len(_connector(client)._acquired))
                        break
                    await stream.aclose()
                    return "abandoned"
                _check_answer(call, await stream.get_final_response())
                return "complete"
            except APIConnectionError:
                return "dropped"

        outcomes = await asyncio.gather(*(one(call) for call in range(STREAM_TASKS)))
        acquired = len(_connector(client)._acquired)
        await transport.aclose()
        return collections.Counter(outcomes), acquired, max(in_use, default=0)

    counts, acquired, most_in_use = asyncio.run(run())
    server.reset()
    # Positive control: open streams do show up as checked-out connections.
    assert most_in_use > 0
    assert acquired == 0, f"{acquired} connections still checked out ({counts})"
    assert sum(counts.values()) == STREAM_TASKS
    assert counts["dropped"] > 0 and counts["complete"] > 0 and counts["abandoned"] > 0, counts
