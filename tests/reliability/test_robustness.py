"""Property tests: whatever the server (or the network) does, a call ends in a typed result or
an `aligneai.APIError`, within its attempt and time budgets.

Both clients are driven, each property running once per client kind (``sync``: `AligneAI` and
its `Stream`; ``async``: `AsyncAligneAI` and its `AsyncStream`), through the same property body.
The transport is `ScriptedTransport` (a fake `SyncTransport`) or `AsyncScriptedTransport` (its
`AsyncTransport` twin), which play a generated script of answers (any status, any headers,
garbage ``retry-after`` included, any body bytes cut into any chunks, or a `ConnectError` /
`ReadError` / timeout at send or mid-body), so that hundreds of calls run in a second. The
total-timeout property is checked at the core level, driving `request_flow` with a fake clock.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any, Union

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aligneai import (
    AligneAI,
    APIError,
    APIStatusError,
    AsyncAligneAI,
    CreateEmbeddingResponse,
    Embedding,
)
from aligneai.core.flow import PreparedCall, ReadBody, Send, Sleep, request_flow
from aligneai.core.options import Timeout
from aligneai.core.response import ResponseHead
from aligneai.testing import strategies as ast
from aligneai.transports.base import (
    ConnectError,
    ConnectTimeout,
    ReadError,
    ReadTimeout,
    Request,
    TransportError,
)

BASE_URL = "https://api.example.test/v1"
# The example count comes from the profile (tests/conftest.py: 50 in dev, 100 in CI), per client.
PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
KINDS = pytest.mark.parametrize("kind", ["sync", "async"])

# -- the fake transport ----------------------------------------------------------------------

FAILURES: tuple[type[TransportError], ...] = (ConnectError, ConnectTimeout, ReadError, ReadTimeout)


class Answer:
    """One scripted response: status, headers, body chunks, and maybe a failure after them."""

    def __init__(
        self,
        status: int,
        headers: Mapping[str, str],
        chunks: list[bytes],
        fail_after: type[TransportError] | None = None,
    ) -> None:
        self.status = status
        self.headers = dict(headers)
        self.chunks = chunks
        self.fail_after = fail_after

    def __repr__(self) -> str:
        fail = f", then {self.fail_after.__name__}" if self.fail_after else ""
        return f"Answer({self.status}, {self.headers!r}, {self.chunks!r}{fail})"


Step = Union[Answer, type[TransportError]]


class FakeResponse:
    """A `SyncResponse` that yields the scripted chunks."""

    def __init__(self, answer: Answer) -> None:
        self._answer = answer
        self.closed = False

    @property
    def status_code(self) -> int:
        return self._answer.status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._answer.headers

    def iter_bytes(self) -> Iterator[bytes]:
        yield from self._answer.chunks
        if self._answer.fail_after is not None:
            raise self._answer.fail_after("the connection broke mid-body")

    def close(self) -> None:
        self.closed = True


class ScriptedTransport:
    """A `SyncTransport` that plays ``script`` (its last step repeats) and records the sends."""

    def __init__(self, script: list[Step]) -> None:
        self.script = script
        self.sent: list[Request] = []
        self.responses: list[FakeResponse] = []

    def send(self, request: Request) -> FakeResponse:
        step = self.script[min(len(self.sent), len(self.script) - 1)]
        self.sent.append(request)
        if isinstance(step, Answer):
            response = FakeResponse(step)
            self.responses.append(response)
            return response
        raise step("scripted failure")

    def close(self) -> None:
        pass


class FakeAsyncResponse:
    """An `AsyncResponse` that yields the scripted chunks."""

    def __init__(self, answer: Answer) -> None:
        self._answer = answer
        self.closed = False

    @property
    def status_code(self) -> int:
        return self._answer.status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._answer.headers

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        for chunk in self._answer.chunks:
            await asyncio.sleep(0)  # a real transport yields to the loop between chunks
            yield chunk
        if self._answer.fail_after is not None:
            raise self._answer.fail_after("the connection broke mid-body")

    async def aclose(self) -> None:
        self.closed = True


class AsyncScriptedTransport:
    """An `AsyncTransport` that plays ``script`` as `ScriptedTransport` does."""

    def __init__(self, script: list[Step]) -> None:
        self.script = script
        self.sent: list[Request] = []
        self.responses: list[FakeAsyncResponse] = []

    async def send(self, request: Request) -> FakeAsyncResponse:
        step = self.script[min(len(self.sent), len(self.script) - 1)]
        self.sent.append(request)
        await asyncio.sleep(0)
        if isinstance(step, Answer):
            response = FakeAsyncResponse(step)
            self.responses.append(response)
            return response
        raise step("scripted failure")

    async def aclose(self) -> None:
        pass


# -- strategies --------------------------------------------------------------------------------

latin1_text = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=30)
numbers = st.one_of(
    st.integers(-10, 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "1e309", "0", "0.001", "60", "61", "1_0", " 2 "]),
)
http_dates = st.integers(-(2**31), 2**34).map(lambda t: formatdate(t, usegmt=True))
header_values = st.one_of(
    latin1_text,
    numbers,
    http_dates,
    st.sampled_from(["Mon, 99 Foo 2024 99:99:99 GMT", "true", "false", "TRUE", "²", "١٢"]),
)
header_names = st.sampled_from(
    [
        "retry-after",
        "Retry-After",
        "retry-after-ms",
        "x-should-retry",
        "content-length",
        "Content-Type",
        "x-request-id",
        "location",
    ]
)
content_types = st.sampled_from(
    ["application/json", "text/event-stream", "text/html", "application/json; charset=utf-8"]
)
headers_strategy = st.builds(
    lambda ctype, extra: {"content-type": ctype, **extra},
    content_types,
    st.dictionaries(header_names, header_values, max_size=4),
)
statuses = st.one_of(
    st.sampled_from([200, 200, 201, 204, 400, 401, 404, 408, 409, 422, 429, 500, 502, 503]),
    st.integers(100, 599),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["valid", "valid", "truncated", "error", "json", "bytes"]))
    if kind in ("valid", "truncated"):
        fmt = draw(st.sampled_from(["float", "base64"]))
        payload = draw(
            ast.create_embedding_payloads(
                fmt, n=st.integers(1, 3), dimensions=st.integers(1, 4), shuffled=True
            )
        )
        body = json.dumps(payload).encode()
        if kind == "truncated":
            body = body[: draw(st.integers(0, len(body) - 1))]
        return body
    if kind == "error":
        status = draw(st.sampled_from([400, 429, 500, 503]))
        return json.dumps(draw(ast.error_payloads(status))).encode()
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    return draw(st.binary(max_size=64))


@st.composite
def chunked(draw: st.DrawFn, body: bytes) -> list[bytes]:
    """``body`` cut at arbitrary places (empty chunks included)."""
    cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=5)))
    edges = [0, *cuts, len(body)]
    return [body[a:b] for a, b in zip(edges, edges[1:])]


@st.composite
def answers(draw: st.DrawFn, body_strategy: st.SearchStrategy[bytes]) -> Answer:
    body = draw(body_strategy)
    fail_after = draw(st.none() | st.sampled_from([ReadError, ReadTimeout]))
    return Answer(draw(statuses), draw(headers_strategy), draw(chunked(body)), fail_after)


def scripts(body_strategy: st.SearchStrategy[bytes]) -> st.SearchStrategy[list[Step]]:
    step: st.SearchStrategy[Step] = st.one_of(
        answers(body_strategy), answers(body_strategy), st.sampled_from(FAILURES)
    )
    return st.lists(step, min_size=1, max_size=5)


@dataclass
class Outcome:
    """What one call did, whichever client made it."""

    result: Any = None
    error: APIError | None = None
    items: list[Any] = field(default_factory=list)
    stream_model: Any = None
    stream_usage: Any = None
    sleeps: list[float] = field(default_factory=list)
    sent: int = 0
    responses: list[Any] = field(default_factory=list)


def _options(max_retries: int, max_bytes: int) -> dict[str, Any]:
    return {
        "api_key": "sk-robustness",
        "base_url": BASE_URL,
        "max_retries": max_retries,
        "max_response_bytes": max_bytes,
    }


def call(kind: str, script: list[Step], *, max_retries: int, max_bytes: int) -> Outcome:
    """``embeddings.create(inputs=["a", "b"])`` with the ``kind`` client over ``script``."""
    seen = Outcome()
    if kind == "sync":
        transport = ScriptedTransport(script)
        client = AligneAI(
            transport=transport, _sleep=seen.sleeps.append, **_options(max_retries, max_bytes)
        )
        try:
            seen.result = client.embeddings.create(inputs=["a", "b"])
        except APIError as exc:
            seen.error = exc
        seen.sent, seen.responses = len(transport.sent), transport.responses
        return seen

    async def run() -> None:
        async def record(seconds: float) -> None:
            seen.sleeps.append(seconds)

        transport = AsyncScriptedTransport(script)
        client = AsyncAligneAI(
            transport=transport, _sleep=record, **_options(max_retries, max_bytes)
        )
        try:
            seen.result = await client.embeddings.create(inputs=["a", "b"])
        except APIError as exc:
            seen.error = exc
        seen.sent, seen.responses = len(transport.sent), transport.responses

    asyncio.run(run())
    return seen


def stream_call(kind: str, script: list[Step], *, max_retries: int) -> Outcome:
    """A ``stream=True`` call read to its end (no explicit close) with the ``kind`` client."""
    seen = Outcome()
    if kind == "sync":
        transport = ScriptedTransport(script)
        client = AligneAI(
            transport=transport, _sleep=seen.sleeps.append, **_options(max_retries, 1 << 20)
        )
        stream = None
        try:
            stream = client.embeddings.create(inputs=["a", "b"], stream=True)
            for item in stream:
                seen.items.append(item)
        except APIError as exc:
            seen.error = exc
        if stream is not None:
            seen.stream_model, seen.stream_usage = stream.model, stream.usage
        seen.sent, seen.responses = len(transport.sent), transport.responses
        return seen

    async def run() -> None:
        async def record(seconds: float) -> None:
            seen.sleeps.append(seconds)

        transport = AsyncScriptedTransport(script)
        client = AsyncAligneAI(transport=transport, _sleep=record, **_options(max_retries, 1 << 20))
        stream = None
        try:
            stream = await client.embeddings.create(inputs=["a", "b"], stream=True)
            async for item in stream:
                seen.items.append(item)
        except APIError as exc:
            seen.error = exc
        if stream is not None:
            seen.stream_model, seen.stream_usage = stream.model, stream.usage
        seen.sent, seen.responses = len(transport.sent), transport.responses

    asyncio.run(run())
    return seen


def _check_sleeps(sleeps: list[float], attempts: int) -> None:
    assert len(sleeps) == attempts - 1
    for seconds in sleeps:
        assert math.isfinite(seconds) and 0 <= seconds <= 60, sleeps


def _check_embedding(item: Any) -> None:
    assert isinstance(item, Embedding)
    assert isinstance(item.index, int) and item.index >= 0
    assert isinstance(item.embedding, list)
    assert all(isinstance(value, float) for value in item.embedding)


# -- plain calls -------------------------------------------------------------------------------


def _last_step(script: list[Step], attempts: int) -> Step:
    return script[min(attempts, len(script)) - 1]


@KINDS
@PROPERTY
@given(
    script=scripts(bodies()),
    max_retries=st.integers(0, 3),
    max_bytes=st.sampled_from([40, 1 << 20]),
)
def test_plain_call_ends_in_a_typed_result_or_an_api_error(
    kind: str, script: list[Step], max_retries: int, max_bytes: int
) -> None:
    seen = call(kind, script, max_retries=max_retries, max_bytes=max_bytes)
    attempts = seen.sent
    assert 1 <= attempts <= max_retries + 1
    last = _last_step(script, attempts)
    if seen.error is None:
        result = seen.result
        assert isinstance(result, CreateEmbeddingResponse)
        # A result only ever comes from a whole 2xx answer whose body is a list of embeddings.
        assert isinstance(last, Answer) and 200 <= last.status < 300, last
        assert last.fail_after is None, last
        body = json.loads(b"".join(last.chunks))
        assert len(result.data) == len(body["data"])
        for item in result.data:
            _check_embedding(item)
        indexes = [item.index for item in result.data]
        assert indexes == sorted(indexes), "data is ordered by index"
        json.dumps(result)  # the wire JSON, as documented
    elif isinstance(seen.error, APIStatusError):
        # A status error carries the status of the answer that ended the call.
        assert isinstance(last, Answer) and seen.error.status_code == last.status, last
    _check_sleeps(seen.sleeps, attempts)
    assert all(response.closed for response in seen.responses), "a connection leaked"


VALID_BODY = json.dumps(
    {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": [0.5, 1.5]},
            {"object": "embedding", "index": 1, "embedding": [1.0, -1.0]},
        ],
        "model": "m",
        "usage": {"prompt_tokens": 2, "total_tokens": 2},
    }
).encode()
GARBAGE_VALUES = [
    "\u00b2",  # superscript two: str.isdigit() says yes, int() says no
    "\u0661\u0662",  # Arabic-Indic "12": int() accepts it
    "1e3",
    "-1",
    "nan",
    "inf",
    "1e309",
    "\x00",
    "",
    "Mon, 99 Foo 2024 99:99:99 GMT",
    "Fri, 31 Dec 9999 23:59:59 -2359",
]


@KINDS
@pytest.mark.parametrize("status", [200, 503])
@pytest.mark.parametrize(
    "name", ["content-length", "retry-after", "retry-after-ms", "x-should-retry"]
)
@pytest.mark.parametrize("value", GARBAGE_VALUES, ids=ascii)
def test_garbage_header_value(kind: str, status: int, name: str, value: str) -> None:
    """A header the server garbled gives a result or an `APIError`, never another exception."""
    answer = Answer(status, {"content-type": "application/json", name: value}, [VALID_BODY])
    seen = call(kind, [answer], max_retries=2, max_bytes=1 << 20)
    if seen.error is not None:
        assert status != 200 or name == "content-length"
    else:
        assert status == 200
        assert [item.embedding for item in seen.result.data] == [[0.5, 1.5], [1.0, -1.0]]
    assert 1 <= seen.sent <= 3
    assert all(response.closed for response in seen.responses)


# -- streaming calls ---------------------------------------------------------------------------

SSE_PIECES = st.sampled_from(
    [
        b"event: embedding\n",
        b"event: done\n",
        b"event: error\n",
        b"event: other\n",
        b"event:embedding\r\n",
        b"data: ",
        b"data:",
        b"\n",
        b"\r\n",
        b"\r",
        b": keep-alive\n",
        b"id: 1\n",
        b"id: \x00\n",
        b"retry: 10\n",
        b"retry: x\n",
        b"\xef\xbb\xbf",
        b"\xff\xfe",
        b"data: {}\n",
        b"data: [1, 2\n",
        b'data: {"object": "embedding", "index": 0, "embedding": [0.5, 1.5]}\n',
        b'data: {"object": "embedding", "index": -1, "embedding": "AAAA"}\n',
        b'data: {"object": "list", "model": "m", "usage": {"prompt_tokens": 1, '
        b'"total_tokens": 1}}\n',
        b'data: {"error": {"message": "boom"}, "status": 503}\n',
        b'data: {"error": {"message": "boom"}, "status": 99999}\n',
        b'data: {"error": "x", "status": true}\n',
    ]
)


@st.composite
def sse_bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["valid", "cut", "pieces", "bytes"]))
    if kind in ("valid", "cut"):
        stream = draw(
            ast.sse_streams(
                n=st.integers(1, 3), dimensions=st.integers(1, 3), error=draw(st.booleans())
            )
        )
        body = stream.body
        if kind == "cut":
            body = body[: draw(st.integers(0, len(body)))]
        return body
    if kind == "pieces":
        return b"".join(draw(st.lists(SSE_PIECES | st.binary(max_size=8), max_size=30)))
    return draw(st.binary(max_size=64))


@KINDS
@PROPERTY
@given(script=scripts(sse_bodies()), max_retries=st.integers(0, 3))
def test_stream_ends_in_typed_items_or_an_api_error(
    kind: str, script: list[Step], max_retries: int
) -> None:
    seen = stream_call(kind, script, max_retries=max_retries)
    if seen.error is None:
        # Never a silent short result: a stream that ended without error got its `done`.
        assert seen.stream_model is not None and seen.stream_usage is not None
        last = _last_step(script, seen.sent)
        # (a failure after the `done` event is never read: the stream ended there)
        assert isinstance(last, Answer) and 200 <= last.status < 300, last
    for item in seen.items:
        _check_embedding(item)
    attempts = seen.sent
    assert 1 <= attempts <= max_retries + 1
    _check_sleeps(seen.sleeps, attempts)
    # The stream releases its connection when it ends or fails, without an explicit close.
    assert all(response.closed for response in seen.responses), "a connection leaked"


# -- the total timeout, at the core level ------------------------------------------------------

# `Timeout.within` never gives an attempt less than 1 ms (a zero timeout means "no limit" to
# some HTTP stacks), so an attempt started just before the deadline may end up to 1 ms after it.
WITHIN_FLOOR = 1e-3


@st.composite
def heads(draw: st.DrawFn) -> ResponseHead:
    return ResponseHead(draw(statuses), draw(st.dictionaries(header_names, header_values)))


@PROPERTY
@given(
    total=st.floats(0.01, 30.0),
    read=st.none() | st.floats(0.01, 10.0),
    max_retries=st.integers(0, 6),
    stream=st.booleans(),
    jitter=st.floats(0.0, 0.999),
    data=st.data(),
)
def test_total_timeout_is_never_exceeded(
    total: float,
    read: float | None,
    max_retries: int,
    stream: bool,
    jitter: float,
    data: st.DataObject,
) -> None:
    """The fake clock advances by each Sleep and by a random time per Send and ReadBody.

    The fake transport honours ``request.timeout`` as a real one does: an attempt that would
    outlast ``timeout.total`` (the time left before the deadline) ends with `ReadTimeout` when
    that time is up.
    """
    now = 0.0
    call = PreparedCall(
        method="POST",
        url=BASE_URL + "/embeddings",
        headers={},
        body=b"{}",
        stream=stream,
        timeout=Timeout(read=read, total=total),
        max_retries=max_retries,
        max_response_bytes=1 << 20,
        idempotency_key="key",
    )
    flow = request_flow(
        call, clock=lambda: now, wall_clock=lambda: 1.7e9 + now, random=lambda: jitter
    )
    attempts = 0
    attempt_end = 0.0
    try:
        action = next(flow)
        while True:
            outcome: Any
            if isinstance(action, Send):
                attempts += 1
                limit = action.request.timeout.total
                assert limit is not None and limit > 0
                attempt_end = now + limit
                took = data.draw(st.floats(0.0, 2 * total), label="send time")
                if now + took >= attempt_end:
                    now, outcome = attempt_end, ReadTimeout("the attempt's time is up")
                else:
                    now += took
                    outcome = data.draw(heads() | st.sampled_from(FAILURES).map(lambda e: e("x")))
            elif isinstance(action, ReadBody):
                took = data.draw(st.floats(0.0, 2 * total), label="read time")
                if now + took >= attempt_end:
                    now, outcome = attempt_end, ReadTimeout("the attempt's time is up")
                else:
                    now += took
                    outcome = b"{}"
            else:
                assert isinstance(action, Sleep)
                assert action.seconds >= 0
                now += action.seconds
                outcome = None
            assert now <= total + WITHIN_FLOOR, f"{now} s spent, total timeout {total} s"
            action = flow.send(outcome)
    except StopIteration:
        pass
    except APIError:
        pass
    assert now <= total + WITHIN_FLOOR
    assert attempts <= max_retries + 1
