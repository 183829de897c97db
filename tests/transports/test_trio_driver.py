"""Driving the sans-IO core from trio, with no asyncio anywhere.

The core (``aligneai.core``) does no I/O: `request_flow` is a generator that *yields* what to
do (`Send` a request, `ReadBody`, `Sleep` before a retry) and is *sent* the outcome. Retries,
backoff, deadlines and errors are all decided inside it, so a new async library needs only
a small loop that performs those three actions. This file is that loop for trio, with a
tiny HTTP/1.1 client on ``trio.open_tcp_stream``, and it is used against a real server.

    call = prepare_call(options, headers, create_embeddings(inputs=[...]), CallOptions(), ...)
    result = await run_flow(request_flow(call, clock=trio.current_time, ...))
    response = parse_model(result.head, result.body, CreateEmbeddingResponse, result.request)
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Generator
from typing import Any
from urllib.parse import urlsplit

import pytest
import sniffio
import trio
from pytest_httpserver import HTTPServer
from werkzeug import Request as WsgiRequest
from werkzeug import Response as WsgiResponse

# One import: the core's front door holds everything a driver on another event loop needs.
from aligneai.core import (
    Action,
    BodyBuffer,
    CallOptions,
    ConnectError,
    ConnectTimeout,
    CreateEmbeddingResponse,
    FlowResult,
    PreparedCall,
    ReadBody,
    ReadError,
    ReadTimeout,
    Request,
    ResponseHead,
    Send,
    Sleep,
    Timeout,
    base_headers,
    create_embeddings,
    current_platform,
    parse_model,
    prepare_call,
    request_flow,
    resolve_options,
)

# ------------------------------------------------------------------------------------------------
# A minimal HTTP/1.1 exchange on trio: one connection per request ("Connection: close"),
# bodies framed by Content-Length or by the end of the connection (no chunked encoding).
# ------------------------------------------------------------------------------------------------


class TrioResponse:
    """An open response: its head has been read, its body not yet."""

    def __init__(self, stream: trio.SocketStream, head: ResponseHead, start: bytes) -> None:
        self.stream = stream
        self.head = head
        self.start = start  # body bytes that arrived together with the head

    async def read_body(self, max_bytes: int, read_timeout: float | None) -> bytes:
        buffer = BodyBuffer(max_bytes)  # raises ResponseTooLargeError past max_bytes
        buffer.feed(self.start)
        expected = self.head.headers.get("content-length")
        received = len(self.start)
        while expected is None or received < int(expected):
            chunk = await receive(self.stream, read_timeout)
            if not chunk:
                if expected is not None:
                    raise ReadError(f"connection closed after {received} of {expected} bytes")
                break  # no Content-Length: the body ends with the connection
            buffer.feed(chunk)
            received += len(chunk)
        return buffer.getvalue()

    async def aclose(self) -> None:
        await self.stream.aclose()


async def receive(stream: trio.SocketStream, read_timeout: float | None) -> bytes:
    try:
        with trio.fail_after(read_timeout if read_timeout is not None else float("inf")):
            return await stream.receive_some(65536)
    except trio.TooSlowError:
        raise ReadTimeout(f"no data within {read_timeout} s") from None
    except (OSError, trio.BrokenResourceError) as exc:
        raise ReadError(f"connection failed: {exc!r}") from exc


async def send_request(request: Request) -> TrioResponse:
    """Connect, send ``request`` and read the response head."""
    url = urlsplit(request.url)
    if url.scheme != "http":
        raise ConnectError("this example speaks plain http only")  # trio.SSLStream would do
    try:
        with trio.fail_after(request.timeout.connect):
            stream = await trio.open_tcp_stream(url.hostname or "", url.port or 80)
    except trio.TooSlowError:
        raise ConnectTimeout(f"connecting to {url.netloc} timed out") from None
    except OSError as exc:
        raise ConnectError(f"cannot connect to {url.netloc}: {exc}") from exc

    try:  # from here on the server may see the request: failures are ReadErrors
        target = url.path + (f"?{url.query}" if url.query else "")
        body = request.body or b""
        lines = [f"{request.method} {target} HTTP/1.1", f"Host: {url.netloc}"]
        lines += [f"{name}: {value}" for name, value in request.headers.items()]
        lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
        try:
            await stream.send_all("\r\n".join(lines).encode("latin-1") + body)
        except (OSError, trio.BrokenResourceError) as exc:
            raise ReadError(f"connection failed while sending: {exc!r}") from exc

        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await receive(stream, request.timeout.read)
            if not chunk:
                raise ReadError("connection closed before the response head")
            data += chunk
        head, _, start = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers = [tuple(part.strip() for part in line.split(":", 1)) for line in header_lines]
        return TrioResponse(stream, ResponseHead(status, headers), start)
    except BaseException:
        await stream.aclose()
        raise


# ------------------------------------------------------------------------------------------------
# The driver: perform what the flow asks until it returns its result (or raises an APIError).
# ------------------------------------------------------------------------------------------------


async def run_flow(
    flow: Generator[Action, Any, FlowResult], seen: list[Action] | None = None
) -> FlowResult:
    response: TrioResponse | None = None
    request: Request | None = None
    try:
        action = next(flow)
        while True:
            if seen is not None:
                seen.append(action)
            try:
                if isinstance(action, Send):
                    request = action.request
                    response = await send_request(request)
                    outcome: object = response.head
                elif isinstance(action, ReadBody):
                    assert response is not None and request is not None
                    try:
                        outcome = await response.read_body(action.max_bytes, request.timeout.read)
                    finally:
                        await response.aclose()
                        response = None
                elif isinstance(action, Sleep):
                    await trio.sleep(action.seconds)
                    outcome = None
            except (ConnectError, ReadError) as failure:  # the flow decides whether to retry
                outcome = failure
            try:
                action = flow.send(outcome)
            except StopIteration as stop:
                result: FlowResult = stop.value
                return result
    finally:
        if response is not None:
            await response.aclose()


def prepare(base_url: str, inputs: list[str]) -> PreparedCall:
    options = resolve_options(
        api_key="sk-test-trio",
        base_url=base_url,
        timeout=Timeout(connect=5, read=10),
        max_retries=2,
        default_headers=None,
        max_response_bytes=1024 * 1024,
        environ={},
    )
    return prepare_call(
        options,
        base_headers(options, current_platform()),
        create_embeddings(inputs=inputs, encoding_format="float"),
        CallOptions(),
        idempotency_key=f"trio-{uuid.uuid4()}",
    )


async def embed(base_url: str, inputs: list[str], seen: list[Action]) -> CreateEmbeddingResponse:
    call = prepare(base_url, inputs)
    flow = request_flow(call, clock=trio.current_time, wall_clock=time.time, random=random.random)
    result = await run_flow(flow, seen)
    assert result.body is not None
    return parse_model(result.head, result.body, CreateEmbeddingResponse, result.request)


# ------------------------------------------------------------------------------------------------
# Tests
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def server(server: HTTPServer) -> HTTPServer:
    """The shared pytest-httpserver (conftest.py), answering embeddings requests."""
    server.expect_request("/v1/embeddings", method="POST").respond_with_handler(embeddings)
    return server


def embeddings(request: WsgiRequest) -> WsgiResponse:
    inputs = json.loads(request.get_data())["inputs"]
    body = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": [float(len(text)), -1.0]}
            for i, text in enumerate(inputs)
        ],
        "model": "test-embedder",
        "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)},
    }
    return WsgiResponse(json.dumps(body), status=200, content_type="application/json")


def run_in_trio(base_url: str, inputs: list[str]) -> tuple[CreateEmbeddingResponse, list[Action]]:
    seen: list[Action] = []

    async def main() -> CreateEmbeddingResponse:
        assert sniffio.current_async_library() == "trio"
        with pytest.raises(RuntimeError):
            asyncio.get_running_loop()  # there is no asyncio event loop at all
        response = await embed(base_url, inputs, seen)
        assert sniffio.current_async_library() == "trio"
        return response

    return trio.run(main), seen


def test_a_call_driven_by_trio(server: HTTPServer) -> None:
    response, seen = run_in_trio(server.url_for("/v1"), ["hello", "from trio"])
    assert isinstance(response, CreateEmbeddingResponse)
    assert [item.embedding for item in response.data] == [[5.0, -1.0], [9.0, -1.0]]
    assert response.usage.total_tokens == 2
    assert [type(action) for action in seen] == [Send, ReadBody]
    sent = server.log[0][0]
    assert sent.headers["Authorization"] == "Bearer sk-test-trio"
    assert json.loads(sent.get_data())["inputs"] == ["hello", "from trio"]


def test_a_503_is_retried_after_a_trio_sleep(server: HTTPServer) -> None:
    server.clear()
    server.expect_oneshot_request("/v1/embeddings", method="POST").respond_with_json(
        {"error": {"message": "overloaded"}}, status=503, headers={"retry-after-ms": "10"}
    )
    server.expect_request("/v1/embeddings", method="POST").respond_with_handler(embeddings)
    response, seen = run_in_trio(server.url_for("/v1"), ["again"])
    assert response.data[0].embedding == [5.0, -1.0]
    assert [type(action) for action in seen] == [Send, ReadBody, Sleep, Send, ReadBody]
    assert seen[2] == Sleep(0.01)  # the server's retry-after-ms, honoured
    attempts = [request.headers for request, _ in server.log]
    assert [h["X-AligneAI-Retry-Count"] for h in attempts] == ["0", "1"]
    assert attempts[0]["Idempotency-Key"] == attempts[1]["Idempotency-Key"]
