"""``embeddings.create(stream=True)`` of both clients against hand-built SSE bodies.

The `api` fixture runs each test with `Stream` and with `AsyncStream` (driven synchronously:
``for`` runs ``__anext__``, ``with`` runs ``__aenter__``/``__aexit__``); the last tests use plain
``asyncio.run`` for ``async for`` / ``async with`` themselves.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from werkzeug.wrappers import Response

import aligneai
from aligneai import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CreateEmbeddingResponse,
    Embedding,
    InternalServerError,
    InvalidArgumentTypeError,
    RateLimitError,
    Usage,
)


def _transport_response(stream):
    """The transport's response object under a `Stream` / `AsyncStream` (or our wrapper)."""
    return getattr(stream, "raw", stream)._response


def _underlying_closed(transport_response) -> bool:
    # Urllib3Response / AiohttpResponse both keep the library's response in `_response`.
    return bool(transport_response._response.closed)


def _error_event(wire, status, message="overloaded", type="server_error", code="c1"):
    return wire.sse_event(
        "error",
        {
            "error": {"message": message, "type": type, "code": code, "param": None},
            "status": status,
        },
    )


def _gated(first: str, rest: str, gate: threading.Event, log: dict | None = None):
    """A body generator: ``first``, then ``rest`` once ``gate`` is set (or after 2 s)."""

    def body():
        yield first.encode()
        in_time = gate.wait(2.0)
        if log is not None:
            log["in_time"] = in_time
        yield rest.encode()

    return body


# -- the happy path --------------------------------------------------------------------------


def test_full_stream_in_arrival_order(api, server, wire):
    server.reply(
        "/embeddings",
        Response(
            wire.sse_body(order=[2, 0, 1], model="m-stream", tokens=6),
            content_type="text/event-stream",
            headers={"x-request-id": "req_s"},
        ),
    )

    stream = api.client.embeddings.create(inputs=["a", "b", "c"], stream=True)
    items = list(stream)

    assert [item.index for item in items] == [2, 0, 1]
    assert [item.embedding for item in items] == [wire.VECTORS[i] for i in (2, 0, 1)]
    assert all(isinstance(item, Embedding) for item in items)
    assert stream.status_code == 200
    assert stream.request_id == "req_s"
    # Headers read case-insensitively, whatever spelling the caller uses.
    assert stream.headers.get("X-Request-ID") == "req_s"
    assert stream.headers["Content-Type"].startswith("text/event-stream")
    assert stream.retries_taken == 0
    assert stream.model == "m-stream"
    assert stream.usage == Usage(prompt_tokens=6, total_tokens=6)
    assert _transport_response(stream) is None  # released at the end of the stream


def test_stream_request(api, server, wire):
    server.reply("/embeddings", wire.sse_response(wire.sse_body()))

    list(api.client.embeddings.create(inputs=["a", "b", "c"], stream=True, model="m1"))

    request = server.requests[0]
    assert json.loads(request.get_data()) == {
        "inputs": ["a", "b", "c"],
        "model": "m1",
        "encoding_format": "base64",
        "stream": True,
    }
    assert request.headers["Accept"] == "text/event-stream"
    assert request.headers["Idempotency-Key"].startswith("aligneai-")
    assert request.headers["Authorization"] == "Bearer sk-test-key-123"


def test_base64_items_decode_to_floats(api, server, wire):
    server.reply("/embeddings", wire.sse_response(wire.sse_body(fmt="base64")))

    items = list(api.client.embeddings.create(inputs=["a", "b", "c"], stream=True))

    assert [item.embedding for item in items] == wire.VECTORS


def test_get_final_response_is_ordered(api, server, wire):
    server.reply("/embeddings", wire.sse_response(wire.sse_body(order=[1, 2, 0], tokens=8)))

    stream = api.client.embeddings.create(inputs=["a", "b", "c"], stream=True)
    final = stream.get_final_response()

    assert isinstance(final, CreateEmbeddingResponse)
    assert [item.index for item in final.data] == [0, 1, 2]
    assert [item.embedding for item in final.data] == wire.VECTORS
    assert final.model == "m"
    assert final.usage == Usage(prompt_tokens=8, total_tokens=8)
    assert json.loads(json.dumps(final)) == wire.embeddings_payload(model="m", tokens=8)


def test_get_final_response_after_iterating_raises(api, server, wire):
    server.reply("/embeddings", wire.sse_response(wire.sse_body()))

    stream = api.client.embeddings.create(inputs=["a", "b", "c"], stream=True)
    next(iter(stream))

    with pytest.raises(APIError) as info:
        stream.get_final_response()
    stream.close()

    assert type(info.value) is APIError  # a usage error: no subclass (status, connection) fits
    assert "before iterating" in str(info.value)


def test_model_and_usage_are_set_after_done(api, server, wire):
    gate = threading.Event()
    first = wire.sse_embedding(0, wire.VECTORS[0])
    rest = wire.sse_embedding(1, wire.VECTORS[1]) + wire.sse_done(tokens=3)
    body = _gated(first, rest, gate)
    server.reply("/embeddings", lambda _request: wire.sse_response(body()))

    stream = api.client.embeddings.create(inputs=["a", "b"], stream=True)
    iterator = iter(stream)
    assert next(iterator).index == 0

    assert stream.model is None
    assert stream.usage is None
    gate.set()
    assert [item.index for item in iterator] == [1]
    assert stream.model == "m"
    assert stream.usage == Usage(prompt_tokens=3, total_tokens=3)


def test_events_after_done_are_ignored(api, server, wire):
    body = wire.sse_body() + wire.sse_embedding(7, [9.0]) + _error_event(wire, 500)
    server.reply("/embeddings", wire.sse_response(body))

    items = list(api.client.embeddings.create(inputs=["a", "b", "c"], stream=True))

    assert [item.index for item in items] == [0, 1, 2]


def test_unknown_events_comments_and_crlf_are_handled(api, server, wire):
    body = (
        ": keep-alive\n\n"
        + wire.sse_event("ping", {"t": 1})
        + wire.sse_embedding(0, wire.VECTORS[0])
        + "data: an event without a type is a 'message'\n\n"
        + wire.sse_event("progress", "not even json")
        + "id: 5\nretry: 1000\n\n"
        + wire.sse_embedding(1, wire.VECTORS[1]).replace("\n", "\r\n")
        + wire.sse_done()
    )
    server.reply("/embeddings", wire.sse_response(body))

    items = list(api.client.embeddings.create(inputs=["a", "b"], stream=True))

    assert [item.index for item in items] == [0, 1]
    assert [item.embedding for item in items] == wire.VECTORS[:2]


def test_events_split_across_tiny_chunks(api, server, wire):
    body = wire.sse_body(order=[1, 0, 2], fmt="base64").encode()

    def chunks():
        for start in range(0, len(body), 7):
            yield body[start : start + 7]

    server.reply("/embeddings", lambda _request: wire.sse_response(chunks()))

    stream = api.client.embeddings.create(inputs=["a", "b", "c"], stream=True)
    items = list(stream)

    assert [item.index for item in items] == [1, 0, 2]
    assert [item.embedding for item in items] == [wire.VECTORS[i] for i in (1, 0, 2)]
    assert stream.model == "m"


# -- leaving a stream early ------------------------------------------------------------------


def test_break_after_the_first_item_then_the_client_still_works(api, server, wire):
    server.reply("/embeddings", wire.sse_response(wire.sse_body()))
    server.reply("/models", wire.json_response({"object": "list", "data": []}))

    stream = api.client.embeddings.create(inputs=["a", "b", "c"], stream=True)
    for item in stream:
        assert item.index == 0
        break

    assert api.client.models.list().data == []
    again = list(api.client.embeddings.create(inputs=["a", "b", "c"], stream=True))
    assert [item.index for item in again] == [0, 1, 2]
    stream.close()
    stream.close()  # idempotent
    assert server.count == 3


def test_with_closes_the_response(api, server, wire):
    gate = threading.Event()
    body = _gated(wire.sse_embedding(0, wire.VECTORS[0]), wire.sse_body(), gate)
    server.reply("/embeddings", lambda _request: wire.sse_response(body()))

    stream = api.client.embeddings.create(inputs=["a", "b", "c"], stream=True)
    transport_response = _transport_response(stream)
    try:
        with stream as entered:
            assert entered is stream
            assert next(iter(stream)).index == 0
            assert not _underlying_closed(transport_response)  # the body is not over yet

        assert _transport_response(stream) is None
        assert _underlying_closed(transport_response)
    finally:
        gate.set()


def test_with_closes_the_response_on_an_exception(api, server, wire):
    server.reply("/embeddings", wire.sse_response(wire.sse_body()))

    stream = api.client.embeddings.create(inputs=["a", "b", "c"], stream=True)
    transport_response = _transport_response(stream)
    with pytest.raises(KeyError), stream:
        raise KeyError("user code failed")

    assert _underlying_closed(transport_response)


def test_close_without_reading(api, server, wire):
    server.reply("/embeddings", wire.sse_response(wire.sse_body()))

    stream = api.client.embeddings.create(inputs=["a", "b", "c"], stream=True)
    transport_response = _transport_response(stream)
    stream.close()

    assert _underlying_closed(transport_response)


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [(400, BadRequestError), (429, RateLimitError), (500, InternalServerError)],
)
def test_error_event_mid_stream(api, server, wire, status, cls):
    body = wire.sse_embedding(0, wire.VECTORS[0]) + _error_event(wire, status, "went wrong")
    server.reply(
        "/embeddings",
        Response(body, content_type="text/event-stream", headers={"x-request-id": "req_e"}),
    )

    stream = api.client.embeddings.create(inputs=["a", "b"], stream=True)
    with pytest.raises(APIStatusError) as info:
        for _ in stream:
            pass

    assert type(info.value) is cls
    assert info.value.status_code == status
    assert info.value.message == "went wrong"
    assert info.value.code == "c1"
    assert info.value.request_id == "req_e"
    assert server.count == 1  # a stream that started is never retried
    assert _transport_response(stream) is None


def test_error_event_without_a_status(api, server, wire):
    body = wire.sse_event("error", {"error": {"message": "mystery"}})
    server.reply("/embeddings", wire.sse_response(body))

    stream = api.client.embeddings.create(inputs="a", stream=True)
    with pytest.raises(APIError) as info:
        list(stream)

    assert type(info.value) is APIError  # no status to choose an APIStatusError subclass by
    assert info.value.message == "mystery"


def test_error_event_from_get_final_response(api, server, wire):
    body = wire.sse_embedding(0, wire.VECTORS[0]) + _error_event(wire, 503, "busy")
    server.reply("/embeddings", wire.sse_response(body))

    stream = api.client.embeddings.create(inputs=["a", "b"], stream=True)
    with pytest.raises(InternalServerError) as info:
        stream.get_final_response()

    assert info.value.message == "busy"


@pytest.mark.parametrize(
    ("tail", "where"),
    [
        ('event: embedding\ndata: {"object": "embedding", "ind', "in the middle of an event"),
        ("event: embedding\n", "in the middle of an event"),
        ("", "between events"),
    ],
    ids=["mid-line", "mid-event", "between-events"],
)
def test_truncated_stream_raises_api_connection_error(api, server, wire, tail, where):
    body = wire.sse_body(done=False) + tail
    server.reply("/embeddings", wire.sse_response(body))

    stream = api.client.embeddings.create(inputs=["a", "b", "c"], stream=True)
    received = []
    with pytest.raises(APIConnectionError) as info:
        for item in stream:
            received.append(item.index)

    assert where in str(info.value)
    assert received == [0, 1, 2]
    assert server.count == 1


def test_connection_dropped_mid_stream(api, server, wire):
    def broken():
        yield wire.sse_embedding(0, wire.VECTORS[0]).encode()
        yield b'event: embedding\ndata: {"object": "emb'
        raise ConnectionResetError("the server went away")  # werkzeug drops the connection

    server.reply("/embeddings", lambda _request: wire.sse_response(broken()))

    stream = api.client.embeddings.create(inputs=["a", "b"], stream=True)
    received = []
    with pytest.raises(APIConnectionError):
        for item in stream:
            received.append(item.index)

    assert received == [0]
    assert server.count == 1
    assert _transport_response(stream) is None


def test_truncated_stream_from_get_final_response(api, server, wire):
    server.reply("/embeddings", wire.sse_response(wire.sse_body(done=False)))

    stream = api.client.embeddings.create(inputs=["a", "b", "c"], stream=True)
    with pytest.raises(APIConnectionError):
        stream.get_final_response()


def test_empty_stream_raises_api_connection_error(api, server, wire):
    server.reply("/embeddings", wire.sse_response(""))

    stream = api.client.embeddings.create(inputs="a", stream=True)
    with pytest.raises(APIConnectionError):
        list(stream)


@pytest.mark.parametrize(
    "data",
    [
        "{not json",
        json.dumps({"object": "embedding", "index": "0", "embedding": [1.0]}),
        json.dumps({"object": "embedding", "index": 0, "embedding": "not base64!"}),
        json.dumps({"object": "embedding", "index": 0}),
        json.dumps([1, 2, 3]),
    ],
    ids=["not-json", "index-as-string", "bad-base64", "no-vector", "array"],
)
def test_embedding_event_with_bad_data(api, server, wire, data):
    body = wire.sse_embedding(0, wire.VECTORS[0]) + wire.sse_event("embedding", data)
    server.reply(
        "/embeddings",
        Response(body + wire.sse_done(), content_type="text/event-stream"),
    )

    stream = api.client.embeddings.create(inputs=["a", "b"], stream=True)
    with pytest.raises(APIResponseValidationError) as info:
        list(stream)

    assert info.value.status_code == 200
    assert _transport_response(stream) is None


BAD_EVENTS = {
    "error-event": (lambda wire: _error_event(wire, 429, "slow down"), RateLimitError),
    "bad-embedding": (
        lambda wire: wire.sse_event("embedding", {"object": "embedding", "index": 1}),
        APIResponseValidationError,
    ),
}


@pytest.mark.parametrize("bad", list(BAD_EVENTS))
@pytest.mark.parametrize("chunks", ["one-chunk", "two-chunks"])
def test_items_that_arrived_before_a_failure_are_delivered(api, server, wire, bad, chunks):
    # What the caller receives must not depend on how TCP happens to split the body: the item
    # that arrived before the failing event is handed out first, then the error is raised.
    make_event, cls = BAD_EVENTS[bad]
    first, failing = wire.sse_embedding(0, wire.VECTORS[0]), make_event(wire)
    gate = threading.Event()
    if chunks == "one-chunk":
        server.reply("/embeddings", wire.sse_response(first + failing))
    else:
        body = _gated(first, failing, gate)
        server.reply("/embeddings", lambda _request: wire.sse_response(body()))

    stream = api.client.embeddings.create(inputs=["a", "b"], stream=True)
    received = []
    try:
        with pytest.raises(cls):
            for item in stream:
                received.append(item.index)
                gate.set()
    finally:
        gate.set()

    assert received == [0]


def test_done_event_with_bad_data(api, server, wire):
    body = wire.sse_embedding(0, wire.VECTORS[0]) + wire.sse_event("done", {"object": "list"})
    server.reply("/embeddings", wire.sse_response(body))

    with pytest.raises(APIResponseValidationError):
        list(api.client.embeddings.create(inputs="a", stream=True))


# -- before the stream starts ----------------------------------------------------------------


def test_retries_happen_before_the_stream_starts(api, server, wire):
    server.sequence(
        "/embeddings",
        [
            wire.json_response(wire.error_payload(), 503, {"retry-after-ms": "20"}),
            wire.sse_response(wire.sse_body()),
        ],
    )

    stream = api.client.embeddings.create(inputs=["a", "b", "c"], stream=True)
    items = list(stream)

    assert [item.index for item in items] == [0, 1, 2]
    assert stream.retries_taken == 1
    assert api.sleeps == [0.02]
    assert server.count == 2
    assert [r.headers["X-AligneAI-Retry-Count"] for r in server.requests] == ["0", "1"]
    keys = {r.headers["Idempotency-Key"] for r in server.requests}
    assert len(keys) == 1


def test_error_status_instead_of_a_stream(api, server, wire):
    server.reply(
        "/embeddings",
        wire.json_response(
            wire.error_payload("bad key", "authentication_error", "invalid_api_key", None), 401
        ),
    )

    with pytest.raises(AuthenticationError) as info:
        api.client.embeddings.create(inputs="a", stream=True)

    assert info.value.code == "invalid_api_key"
    assert server.count == 1


def test_stream_after_exhausting_retries(api, server, wire):
    server.reply("/embeddings", wire.json_response(wire.error_payload(), 502))

    with pytest.raises(InternalServerError):
        api.client.embeddings.create(inputs="a", stream=True, max_retries=1)

    assert server.count == 2


def test_bad_stream_argument(api, server):
    with pytest.raises(InvalidArgumentTypeError) as info:
        api.client.embeddings.create(inputs="a", stream="yes")

    assert type(info.value) is InvalidArgumentTypeError
    assert isinstance(info.value, TypeError)
    assert info.value.argument == "stream"
    assert server.count == 0


# -- timing ----------------------------------------------------------------------------------


# The read timeout of the two tests below. Real time is the point here: the margins hold on a
# loaded machine (the pauses are a tenth of it; the failing pause is held until the client gave up).
READ_TIMEOUT = 0.5


def test_slow_stream_within_the_read_timeout(api, server, wire):
    # Fourteen pauses of 0.05 s: the whole stream outlasts the read timeout (0.7 s > 0.5 s), but
    # no single wait for data comes near it (0.45 s to spare each), so it must complete: the
    # read timeout limits each read, not the whole body.
    pause, pauses = 0.05, 14
    items = [wire.sse_embedding(i, wire.VECTORS[i]) for i in range(3)]
    parts = [items[0], *[": keep-alive\n\n"] * (pauses - 4), items[1], items[2], wire.sse_done()]
    assert len(parts) == pauses and pause * pauses > READ_TIMEOUT

    def slow():
        for part in parts:
            time.sleep(pause)
            yield part.encode()

    server.reply("/embeddings", lambda _request: wire.sse_response(slow()))
    client = api.make(timeout=READ_TIMEOUT, max_retries=0)

    started = time.monotonic()
    received = list(client.embeddings.create(inputs=["a", "b", "c"], stream=True))
    elapsed = time.monotonic() - started

    assert [item.index for item in received] == [0, 1, 2]
    assert elapsed > READ_TIMEOUT  # sleeps never end early, so this holds however loaded
    assert api.sleeps == []


def test_a_pause_longer_than_the_read_timeout_fails_the_stream(api, server, wire):
    # The counterpart: the same timeout does fire on one long pause. The server holds the rest
    # back until the client has given up (bounded at 2 s), so no race decides the outcome.
    gate = threading.Event()
    body = _gated(wire.sse_embedding(0, wire.VECTORS[0]), wire.sse_body(), gate)
    server.reply("/embeddings", lambda _request: wire.sse_response(body()))
    client = api.make(timeout=READ_TIMEOUT, max_retries=0)

    received = []
    try:
        started = time.monotonic()
        with pytest.raises(APITimeoutError) as info:
            for item in client.embeddings.create(inputs=["a", "b", "c"], stream=True):
                received.append(item.index)
        elapsed = time.monotonic() - started
    finally:
        gate.set()

    assert type(info.value) is APITimeoutError
    assert received == [0]
    assert elapsed >= READ_TIMEOUT * 0.9  # not before the timeout (loop clocks are coarse)
    assert server.count == 1  # a stream that started is never retried


def test_items_are_handed_out_as_they_arrive(api, server, wire):
    # The server sends the first item, then holds the rest back until the client has it: a
    # client that buffered the body would only get it when the server gives up waiting.
    got_first, log = threading.Event(), {}
    rest = wire.sse_embedding(1, wire.VECTORS[1]) + wire.sse_done()
    body = _gated(wire.sse_embedding(0, wire.VECTORS[0]), rest, got_first, log)
    server.reply("/embeddings", lambda _request: wire.sse_response(body()))

    stream = api.client.embeddings.create(inputs=["a", "b"], stream=True)
    iterator = iter(stream)
    assert next(iterator).index == 0
    got_first.set()
    assert [item.index for item in iterator] == [1]
    assert log == {"in_time": True}


# -- the async stream itself -----------------------------------------------------------------


def test_async_for_and_async_with(server, wire):
    server.reply("/embeddings", wire.sse_response(wire.sse_body(order=[1, 0, 2])))

    async def main():
        async with aligneai.AsyncAligneAI(api_key="k", base_url=server.base_url) as client:
            stream = await client.embeddings.create(inputs=["a", "b", "c"], stream=True)
            indexes = [item.index async for item in stream]
            assert stream.model == "m"

            stream = await client.embeddings.create(inputs=["a", "b", "c"], stream=True)
            transport_response = stream._response
            async with stream:
                first = await stream.__anext__()
            closed = transport_response._response.closed

            stream = await client.embeddings.create(inputs=["a", "b", "c"], stream=True)
            final = await stream.get_final_response()
            return indexes, first.index, closed, [item.index for item in final.data]

    assert asyncio.run(main()) == ([1, 0, 2], 1, True, [0, 1, 2])


def test_async_stream_error_event(server, wire):
    body = wire.sse_embedding(0, wire.VECTORS[0]) + _error_event(wire, 429, "slow down")
    server.reply("/embeddings", wire.sse_response(body))

    async def main():
        async with aligneai.AsyncAligneAI(api_key="k", base_url=server.base_url) as client:
            stream = await client.embeddings.create(inputs=["a", "b"], stream=True)
            async for _ in stream:
                pass

    with pytest.raises(RateLimitError, match="slow down"):
        asyncio.run(main())
