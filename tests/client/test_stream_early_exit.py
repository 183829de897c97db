"""Leaving a stream early, in every way a user can, never harms the client's connection pool.

A stream read part-way holds a connection in the middle of a body: it can never serve another
request and must be discarded, whether the caller closes the stream, leaves its ``with`` block,
returns or breaks out of the loop, raises inside it, or simply drops it (garbage collection).
Afterwards the client keeps working, no ``ResourceWarning`` appears (pytest runs with
``filterwarnings = error``, and ``gc.collect()`` makes finalizers run inside the test), and a
closed stream ends its iteration instead of failing.

The server notes the client port of every request: a half-read stream's connection must never
carry a later request, while healthy connections are reused (so the check can fail).
"""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import pytest

import aligneai
from aligneai import APIConnectionError, APIError
from aligneai.core.failures import ReadError
from aligneai.testing import LocalServer

N_ITEMS = 50
ROUNDS = 30


class _Boom(Exception):
    """Raised by user code inside a ``for`` loop over a stream."""


def _item(index: int) -> bytes:
    payload = {"object": "embedding", "index": index, "embedding": [float(index), 1.0]}
    return f"event: embedding\ndata: {json.dumps(payload)}\n\n".encode()


_DONE = b'event: done\ndata: {"object": "list", "model": "m", "usage": ' + (
    b'{"prompt_tokens": 1, "total_tokens": 1}}\n\n'
)


class _Handler(BaseHTTPRequestHandler):
    """``POST /v1/embeddings`` over HTTP/1.1 keep-alive; streams are chunked and gated."""

    protocol_version = "HTTP/1.1"
    timeout = 10.0  # bounds an idle keep-alive connection's thread

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        server: GatedServer = self.server  # type: ignore[assignment]
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        port = self.client_address[1]
        count = len(request["inputs"])
        if not request.get("stream"):
            server.log.append(("plain", port))
            data = [{"object": "embedding", "index": i, "embedding": [1.0]} for i in range(count)]
            usage = {"prompt_tokens": 1, "total_tokens": 1}
            body = json.dumps({"object": "list", "data": data, "model": "m", "usage": usage})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())
            return
        server.log.append(("stream", port))
        gate = threading.Event()
        if not server.hold_back:
            gate.set()
        server.gates.append(gate)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            self._chunk(_item(0))
            gate.wait(5.0)  # bounded: released by the test, or at teardown
            for index in range(1, count):
                self._chunk(_item(index))
            if request.get("model") == "hold-the-end":  # the last event, but not the body's end
                self._chunk(_DONE)
                server.end_gate.wait(5.0)
                self.wfile.write(b"0\r\n\r\n")
            else:  # the last event and the body's end together, as servers send them
                self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(_DONE), _DONE))
        except OSError:  # the client discarded the connection, as it should
            self.close_connection = True

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


class GatedServer(ThreadingHTTPServer):
    """A keep-alive server: a stream sends its first item, then the rest once released.

    So a stream left after its first item is certainly half-read (the rest of the body has not
    even been sent). Each request's client port is logged as ``(kind, port)``: a connection
    carries several requests here (pytest-httpserver closes each one, so it cannot tell).
    """

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.log: list[tuple[str, int]] = []
        self.gates: list[threading.Event] = []
        self.end_gate = threading.Event()
        self.hold_back = True  # False: streams are sent whole at once
        self.base_url = f"http://127.0.0.1:{self.server_address[1]}/v1"

    def release_all(self) -> None:
        for gate in self.gates:
            gate.set()
        self.end_gate.set()


@pytest.fixture
def gated() -> Iterator[GatedServer]:
    server = GatedServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.release_all()
        server.shutdown()
        server.server_close()
        thread.join(5.0)


def _new_stream(client: Any) -> Any:
    return client.embeddings.create(inputs=["x"] * N_ITEMS, stream=True)


def _by_return(client: Any) -> list[float]:
    for item in _new_stream(client):
        return list(item.embedding)
    raise AssertionError("the stream was empty")


def _by_break(client: Any) -> list[float]:
    vector: list[float] = []
    for item in _new_stream(client):
        vector = list(item.embedding)
        break
    return vector


def _by_exception(client: Any) -> None:
    with pytest.raises(_Boom):
        for _item in _new_stream(client):
            raise _Boom


def _by_final_after_partial(client: Any) -> None:
    stream = _new_stream(client)
    next(iter(stream))
    with pytest.raises(APIError) as info:
        stream.get_final_response()
    assert type(info.value) is APIError  # a usage error, not a transport failure


def _by_with_block(client: Any) -> None:
    with _new_stream(client) as stream:
        next(iter(stream))


def _by_close_twice(client: Any) -> None:
    stream = _new_stream(client)
    next(iter(stream))
    stream.close()
    stream.close()


def _by_drop_unstarted(client: Any) -> None:
    _new_stream(client)  # never iterated, never closed


EXITS: dict[str, Callable[[Any], object]] = {
    "return": _by_return,
    "break": _by_break,
    "exception": _by_exception,
    "get_final_response-after-partial": _by_final_after_partial,
    "with-block": _by_with_block,
    "close-twice": _by_close_twice,
    "drop-unstarted": _by_drop_unstarted,
}


@pytest.mark.parametrize("exit_kind", list(EXITS))
def test_leaving_a_stream_early_discards_its_connection(api, gated, exit_kind):
    client = api.make(base_url=gated.base_url, max_retries=0)
    leave = EXITS[exit_kind]
    for _ in range(3):
        leave(client)
        gc.collect()  # a stream in a reference cycle is finalised now, inside the test
        gated.release_all()
        assert len(client.embeddings.create(inputs=["y", "z"]).data) == 2

    kinds = [kind for kind, _ in gated.log]
    assert kinds == ["stream", "plain"] * 3
    ports = [port for _, port in gated.log]
    for round_ in range(3):
        stream_port, plain_port = ports[2 * round_], ports[2 * round_ + 1]
        assert plain_port != stream_port  # the half-read connection was not reused
        if round_ > 0:
            assert stream_port == ports[2 * round_ - 1]  # a healthy connection was reused


def test_a_stream_caught_in_a_reference_cycle_is_released_by_the_collector(api, gated):
    # Only the cycle collector can free this stream; its finalizer may then run at any point
    # of other code, so it closes the socket at once and the pool takes the slot back later.
    client = api.make(base_url=gated.base_url, max_retries=0)
    for _ in range(3):
        stream = _new_stream(client)
        next(iter(stream))
        holder: dict[str, Any] = {"stream": stream}
        holder["self"] = holder
        del holder, stream
        gc.collect()
        gated.release_all()
        assert len(client.embeddings.create(inputs=["y"]).data) == 1

    ports = [port for _, port in gated.log]
    assert [kind for kind, _ in gated.log] == ["stream", "plain"] * 3
    for round_ in range(3):
        assert ports[2 * round_ + 1] != ports[2 * round_]
        if round_ > 0:
            assert ports[2 * round_] == ports[2 * round_ - 1]


def test_a_stream_read_to_its_end_leaves_its_connection_for_reuse(api, gated):
    # The server ends the body right after the `done` event: the connection goes back to the
    # pool (the sync client used to discard it, the chunked terminator being still unread).
    client = api.make(base_url=gated.base_url, max_retries=0)
    gated.hold_back = False
    for _ in range(3):
        assert len(list(_new_stream(client))) == N_ITEMS
        assert len(client.embeddings.create(inputs=["y"]).data) == 1

    assert [kind for kind, _ in gated.log] == ["stream", "plain"] * 3
    assert len({port for _, port in gated.log}) == 1


def test_a_body_left_open_after_done_does_not_hold_the_stream(api, gated):
    # A server that sends `done` but never ends the body: the stream still ends at `done` (at
    # once, not after the 5 s read timeout), and that connection is not reused.
    client = api.make(base_url=gated.base_url, max_retries=0, timeout=5.0)
    gated.hold_back = False  # only the end of the body is held back
    try:
        started = time.monotonic()
        stream = client.embeddings.create(inputs=["x"] * 3, model="hold-the-end", stream=True)
        items = list(stream)
        elapsed = time.monotonic() - started
        assert [item.index for item in items] == [0, 1, 2]
        assert stream.model == "m"
        assert elapsed < 2.5  # the wait for the body's end is 0.1 s; the read timeout is 5 s
    finally:
        gated.end_gate.set()
    assert len(client.embeddings.create(inputs=["y"]).data) == 1
    ports = [port for _, port in gated.log]
    assert ports[1] != ports[0]


def test_the_reported_repro_thirty_returns_each_followed_by_a_call(api, gated):
    # The repro: return from inside the loop, then a plain call, 30 times over.
    client = api.make(base_url=gated.base_url, max_retries=0)
    vectors = []
    for _ in range(ROUNDS):
        vectors.append(_by_return(client))
        gated.release_all()
        assert len(client.embeddings.create(inputs=["y"]).data) == 1
    gc.collect()
    assert vectors == [[0.0, 1.0]] * ROUNDS
    assert [kind for kind, _ in gated.log] == ["stream", "plain"] * ROUNDS


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_the_reported_repro_against_the_local_server(kind):
    def first_sync(client: aligneai.AligneAI) -> list[float]:
        for item in client.embeddings.create(inputs=["x"] * N_ITEMS, stream=True):
            return list(item.embedding)
        raise AssertionError("empty stream")

    async def first_async(client: aligneai.AsyncAligneAI) -> list[float]:
        async for item in await client.embeddings.create(inputs=["x"] * N_ITEMS, stream=True):
            return list(item.embedding)
        raise AssertionError("empty stream")

    with LocalServer() as server:
        with aligneai.AligneAI(api_key="k", base_url=server.url) as client:
            expected = client.embeddings.create(inputs="x").data[0].embedding
        if kind == "sync":
            with aligneai.AligneAI(api_key="k", base_url=server.url, max_retries=0) as client:
                for _ in range(ROUNDS):
                    assert first_sync(client) == pytest.approx(expected, abs=1e-6)
                    gc.collect()
                    assert client.embeddings.create(inputs=["y"]).data[0].index == 0
        else:

            async def main() -> None:
                async with aligneai.AsyncAligneAI(
                    api_key="k", base_url=server.url, max_retries=0
                ) as client:
                    for _ in range(ROUNDS):
                        assert await first_async(client) == pytest.approx(expected, abs=1e-6)
                        gc.collect()
                        response = await client.embeddings.create(inputs=["y"])
                        assert response.data[0].index == 0

            asyncio.run(main())
        assert len(server.requests) == 1 + 2 * ROUNDS
    gc.collect()


# -- iterating a closed stream ---------------------------------------------------------------


def _closers() -> dict[str, Callable[[Any], None]]:
    def by_close(stream: Any) -> None:
        stream.close()

    def by_with(stream: Any) -> None:
        with stream:
            pass

    return {"close": by_close, "with": by_with}


@pytest.mark.parametrize("how", ["close", "with"])
@pytest.mark.parametrize("read_first", [False, True], ids=["unread", "after-one-item"])
def test_iterating_a_closed_stream_ends_at_once(api, server, wire, how, read_first):
    # The whole body arrives at once, so items are already buffered when the stream is closed:
    # none of them may come out after close().
    server.reply("/embeddings", wire.sse_response(wire.sse_body()))
    stream = api.client.embeddings.create(inputs=["a", "b", "c"], stream=True)
    if read_first:
        assert next(iter(stream)).index == 0

    _closers()[how](stream)

    assert list(stream) == []
    with pytest.raises(StopIteration):
        next(iter(stream))
    assert stream._response is None  # released on close
    assert server.count == 1


def test_close_inside_the_loop_ends_it(api, server, wire):
    server.reply("/embeddings", wire.sse_response(wire.sse_body()))
    stream = api.client.embeddings.create(inputs=["a", "b", "c"], stream=True)

    seen = []
    for item in stream:
        seen.append(item.index)
        stream.close()

    assert seen == [0]


def test_get_final_response_of_a_closed_stream_raises_api_error(api, server, wire):
    server.reply("/embeddings", wire.sse_response(wire.sse_body()))
    stream = api.client.embeddings.create(inputs=["a", "b", "c"], stream=True)
    stream.close()

    with pytest.raises(APIError) as info:
        stream.get_final_response()

    assert type(info.value) is APIError
    assert "closed" in str(info.value)


def test_async_stream_after_aclose_raises_stop_async_iteration(server, wire):
    server.reply("/embeddings", wire.sse_response(wire.sse_body()))

    async def main() -> tuple[list[int], list[int], bool]:
        async with aligneai.AsyncAligneAI(api_key="k", base_url=server.base_url) as client:
            stream = await client.embeddings.create(inputs=["a", "b", "c"], stream=True)
            first = [(await stream.__anext__()).index]
            await stream.aclose()
            after = [item.index async for item in stream]
            try:
                await stream.__anext__()
            except StopAsyncIteration:
                stopped = True
            else:
                stopped = False
            async with await client.embeddings.create(
                inputs=["a", "b", "c"], stream=True
            ) as second:
                pass
            after += [item.index async for item in second]
            return first, after, stopped

    assert asyncio.run(main()) == ([0], [], True)


def test_async_aclose_from_another_task_ends_a_pending_iteration(gated):
    # One task waits for the next item (the server holds it back); another closes the stream.
    # The waiting iteration ends quietly, as if the stream were over.
    async def main() -> tuple[list[int], str]:
        async with aligneai.AsyncAligneAI(
            api_key="k", base_url=gated.base_url, max_retries=0
        ) as client:
            stream = await client.embeddings.create(inputs=["x"] * 3, stream=True)
            got_first = asyncio.Event()
            seen: list[int] = []

            async def consume() -> str:
                async for item in stream:
                    seen.append(item.index)
                    got_first.set()
                return "ended"

            task = asyncio.ensure_future(consume())
            await asyncio.wait_for(got_first.wait(), 5.0)
            await asyncio.sleep(0.01)  # let the consumer block on the next read
            await stream.aclose()
            outcome = await asyncio.wait_for(task, 5.0)
            return seen, outcome

    assert asyncio.run(main()) == ([0], "ended")


def test_async_aclose_during_get_final_response_raises_api_error(gated):
    async def main() -> Exception | None:
        async with aligneai.AsyncAligneAI(
            api_key="k", base_url=gated.base_url, max_retries=0
        ) as client:
            stream = await client.embeddings.create(inputs=["x"] * 3, stream=True)
            task = asyncio.ensure_future(stream.get_final_response())
            for _ in range(5000):  # at most 5 s: the reader starts at once
                if stream._started:
                    break
                await asyncio.sleep(0.001)
            await asyncio.sleep(0.01)  # let the reader block on the held-back rest
            await stream.aclose()
            try:
                await asyncio.wait_for(task, 5.0)
            except Exception as exc:
                return exc
            return None

    error = asyncio.run(main())
    assert type(error) is APIError
    assert "closed before its end" in str(error)


# -- nothing but APIError escapes --------------------------------------------------------------


class _FakeResponse:
    def __init__(self, chunks: list[Any]) -> None:
        self.status_code = 200
        self.headers = {"content-type": "text/event-stream"}
        self._chunks = chunks
        self.closed = 0

    def iter_bytes(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            if isinstance(chunk, BaseException):
                raise chunk
            yield chunk

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        for chunk in self.iter_bytes():
            yield chunk

    def close(self) -> None:
        self.closed += 1

    async def aclose(self) -> None:
        self.closed += 1


class _StrayTransport:
    """A transport (sync and async at once) whose failures are not the core's kinds."""

    def __init__(self, *, send_error: Exception | None = None, chunks: Any = ()) -> None:
        self.send_error = send_error
        self.chunks = list(chunks)
        self.responses: list[_FakeResponse] = []

    def _send(self) -> _FakeResponse:
        if self.send_error is not None:
            raise self.send_error
        response = _FakeResponse(self.chunks)
        self.responses.append(response)
        return response

    def close(self) -> None:
        pass


class _SyncStray(_StrayTransport):
    def send(self, request: Any) -> _FakeResponse:
        return self._send()


class _AsyncStray(_StrayTransport):
    async def send(self, request: Any) -> _FakeResponse:
        return self._send()

    async def aclose(self) -> None:
        pass


def _run_with(kind: str, transport_args: dict[str, Any], call: Callable[[Any], Any]) -> Any:
    """Run ``call(client)`` with a client of ``kind`` on a stray-failing transport."""
    settings = {"api_key": "k", "base_url": "http://127.0.0.1:9/v1", "max_retries": 0}
    if kind == "sync":
        transport: Any = _SyncStray(**transport_args)
        return call(aligneai.AligneAI(transport=transport, **settings)), transport

    async def main() -> Any:
        transport = _AsyncStray(**transport_args)
        client = aligneai.AsyncAligneAI(transport=transport, **settings)
        return await call(client), transport

    return asyncio.run(main())


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_stray_exception_from_send_becomes_api_connection_error(kind):
    failure = ValueError("file descriptor cannot be a negative integer (-1)")

    def call(client: Any) -> Any:
        return client.embeddings.create(inputs="a")

    with pytest.raises(APIConnectionError) as info:
        _run_with(kind, {"send_error": failure}, call)

    assert type(info.value) is APIConnectionError
    assert "ValueError: file descriptor cannot be a negative integer" in str(info.value)
    cause = info.value.__cause__
    assert isinstance(cause, ReadError)
    assert cause.__cause__ is failure


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_stray_exception_mid_stream_becomes_api_connection_error(wire, kind):
    chunks = [wire.sse_embedding(0, [1.0]).encode(), RuntimeError("the socket vanished")]
    seen: list[int] = []

    def call_sync(client: Any) -> None:
        for item in client.embeddings.create(inputs=["a", "b"], stream=True):
            seen.append(item.index)

    async def call_async(client: Any) -> None:
        async for item in await client.embeddings.create(inputs=["a", "b"], stream=True):
            seen.append(item.index)

    with pytest.raises(APIConnectionError) as info:
        _run_with(kind, {"chunks": chunks}, call_sync if kind == "sync" else call_async)

    assert type(info.value) is APIConnectionError
    assert "RuntimeError: the socket vanished" in str(info.value)
    assert seen == [0]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_warning_raised_as_an_error_is_not_disguised(kind):
    # Under `-W error` a warning is the user's own signal: it passes through unchanged.
    def call(client: Any) -> Any:
        return client.embeddings.create(inputs="a")

    with pytest.raises(ResourceWarning):
        _run_with(kind, {"send_error": ResourceWarning("large body")}, call)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_credential_quoted_by_a_stray_exception_is_masked(kind):
    # http.client quotes a header value it rejects; the API key must not reach the message,
    # nor ride along as the chained cause.
    key = "sk-secret-key-12345"
    failure = ValueError(f"Invalid header value b'Bearer {key}\\n'")

    def call(client: Any) -> Any:
        return client.embeddings.create(inputs="a")

    settings = {"api_key": key, "base_url": "http://127.0.0.1:9/v1", "max_retries": 0}
    with pytest.raises(APIConnectionError) as info:
        if kind == "sync":
            call(aligneai.AligneAI(transport=_SyncStray(send_error=failure), **settings))
        else:

            async def main() -> Any:
                transport = _AsyncStray(send_error=failure)
                return await call(aligneai.AsyncAligneAI(transport=transport, **settings))

            asyncio.run(main())

    chain = []
    error: BaseException | None = info.value
    while error is not None:
        chain.append(error)
        error = error.__cause__ or error.__context__
    assert failure not in chain
    assert all(key not in str(error) for error in chain)
    assert "Invalid header value" in str(info.value)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_an_interrupt_while_reading_releases_the_stream(wire, kind):
    # KeyboardInterrupt (sync) / cancellation (async) is not turned into an APIError, and the
    # response is still closed on the way out.
    interrupt: BaseException = KeyboardInterrupt() if kind == "sync" else asyncio.CancelledError()
    chunks = [wire.sse_embedding(0, [1.0]).encode(), interrupt]
    seen: list[int] = []

    def call_sync(client: Any) -> None:
        for item in client.embeddings.create(inputs=["a", "b"], stream=True):
            seen.append(item.index)

    async def call_async(client: Any) -> None:
        async for item in await client.embeddings.create(inputs=["a", "b"], stream=True):
            seen.append(item.index)

    if kind == "sync":
        transport: Any = _SyncStray(chunks=chunks)
        client: Any = aligneai.AligneAI(
            api_key="k", base_url="http://127.0.0.1:9/v1", transport=transport
        )
        with pytest.raises(KeyboardInterrupt):
            call_sync(client)
    else:
        transport = _AsyncStray(chunks=chunks)

        async def main() -> None:
            client = aligneai.AsyncAligneAI(
                api_key="k", base_url="http://127.0.0.1:9/v1", transport=transport
            )
            await call_async(client)

        with pytest.raises(asyncio.CancelledError):
            asyncio.run(main())

    assert seen == [0]
    assert transport.responses[0].closed == 1


def test_an_async_stream_cancelled_mid_read_discards_its_connection(gated):
    # The consumer is cancelled while it waits for an item the server holds back.
    async def main() -> int:
        async with aligneai.AsyncAligneAI(
            api_key="k", base_url=gated.base_url, max_retries=0
        ) as client:
            stream = await client.embeddings.create(inputs=["x"] * 3, stream=True)

            async def consume() -> None:
                async for _item in stream:
                    pass

            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(consume(), 0.2)
            assert stream._response is None  # released on the way out
            gated.release_all()
            response = await client.embeddings.create(inputs=["y"])
            return len(response.data)

    assert asyncio.run(main()) == 1
    gc.collect()
    ports = [port for _, port in gated.log]
    assert [kind for kind, _ in gated.log] == ["stream", "plain"]
    assert ports[1] != ports[0]
