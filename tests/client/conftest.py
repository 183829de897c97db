"""Fixtures of the client tests: a loopback HTTP server and both clients behind one sync API.

`server` is a threaded pytest-httpserver bound to 127.0.0.1 (shared by the session, reset for
each test) wrapped in `Server`, which adds the wire-format builders the tests need.

`api` is parametrised over ``["sync", "async"]``: it yields a `Harness` whose clients have the
same synchronous API either way. For the async kind every coroutine runs on a private event
loop (the `AsyncAligneAI` is created inside it and closed in it at teardown), and an
`AsyncStream` is wrapped so that ``for``/``with`` drive ``async for``/``async with``. Both kinds
get an injected ``_sleep`` that records the delays instead of sleeping.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import socket
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import SimpleNamespace
from typing import Any, Callable

import pytest
from pytest_httpserver import HTTPServer
from werkzeug.wrappers import Request, Response

import aligneai
from aligneai._async_client import AsyncAligneAI
from aligneai._streaming import AsyncStream
from aligneai.resources.embeddings import AsyncEmbeddings, AsyncEmbeddingsWithRawResponse
from aligneai.resources.models import AsyncModels, AsyncModelsWithRawResponse

API_KEY = "sk-test-key-123"

# Vectors whose values are exact in float32, so base64 and float answers compare equal.
VECTORS = [[0.5, -1.25, 3.0], [0.125, 2.0, -0.75], [1.0, 0.0, -2.5]]


# -- wire-format builders --------------------------------------------------------------------


def b64_vector(vector: Sequence[float]) -> str:
    """The wire's base64 form of a vector: little-endian float32."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def embedding_item(index: int, vector: Sequence[float], fmt: str = "float") -> dict[str, Any]:
    value: Any = list(vector) if fmt == "float" else b64_vector(vector)
    return {"object": "embedding", "index": index, "embedding": value}


def embeddings_payload(
    vectors: Sequence[Sequence[float]] = VECTORS,
    *,
    fmt: str = "float",
    order: Iterable[int] | None = None,
    model: str = "aligne-embed-1",
    tokens: int = 7,
) -> dict[str, Any]:
    indexes = list(range(len(vectors))) if order is None else list(order)
    return {
        "object": "list",
        "data": [embedding_item(i, vectors[i], fmt) for i in indexes],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def error_payload(
    message: str = "something went wrong",
    type: str = "invalid_request_error",
    code: str | None = "bad_thing",
    param: str | None = "inputs",
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "code": code, "param": param}}


def model_payload(model_id: str = "aligne-embed-1", dimensions: int = 3) -> dict[str, Any]:
    return {
        "id": model_id,
        "object": "model",
        "created": 1700000000,
        "owned_by": "aligneai",
        "dimensions": dimensions,
    }


def sse_event(event: str, data: Any) -> str:
    text = data if isinstance(data, str) else json.dumps(data)
    return f"event: {event}\ndata: {text}\n\n"


def sse_embedding(index: int, vector: Sequence[float], fmt: str = "float") -> str:
    return sse_event("embedding", embedding_item(index, vector, fmt))


def sse_done(model: str = "m", tokens: int = 5) -> str:
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return sse_event("done", {"object": "list", "model": model, "usage": usage})


def sse_body(
    vectors: Sequence[Sequence[float]] = VECTORS,
    *,
    order: Iterable[int] | None = None,
    fmt: str = "float",
    done: bool = True,
    model: str = "m",
    tokens: int = 5,
) -> str:
    indexes = list(range(len(vectors))) if order is None else list(order)
    body = "".join(sse_embedding(i, vectors[i], fmt) for i in indexes)
    return body + (sse_done(model, tokens) if done else "")


def json_response(
    payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        json.dumps(payload), status=status, headers=dict(headers or {}), mimetype="application/json"
    )


def sse_response(body: str | bytes | Iterable[bytes], status: int = 200) -> Response:
    return Response(body, status=status, content_type="text/event-stream")


# -- the server ------------------------------------------------------------------------------


class Server:
    """The loopback server of one test, with helpers to script its answers."""

    def __init__(self, httpserver: HTTPServer) -> None:
        self.httpserver = httpserver
        self.base_url = f"http://127.0.0.1:{httpserver.port}/v1"

    @property
    def requests(self) -> list[Request]:
        """Every request the server answered so far, in order."""
        return [request for request, _ in self.httpserver.log]

    @property
    def count(self) -> int:
        return len(self.httpserver.log)

    def reply(self, path: str, response: Response | Callable[[Request], Response]) -> None:
        """Answer every request to ``/v1<path>`` with ``response`` (or ``response(request)``)."""
        handler = response if callable(response) and not isinstance(response, Response) else None
        if handler is None:
            fixed = response
            assert isinstance(fixed, Response)

            def handler(_request: Request) -> Response:
                # A fresh copy each time: a Response object's body iterator is consumed once.
                return Response(
                    fixed.get_data(), status=fixed.status_code, headers=list(fixed.headers)
                )

        self.httpserver.expect_request("/v1" + path).respond_with_handler(handler)

    def sequence(self, path: str, responses: Sequence[Response]) -> None:
        """Answer the requests to ``/v1<path>`` with ``responses`` in turn (the last repeats)."""
        bodies = [(r.get_data(), r.status_code, list(r.headers)) for r in responses]
        calls = {"n": 0}

        def handler(_request: Request) -> Response:
            body, status, headers = bodies[min(calls["n"], len(bodies) - 1)]
            calls["n"] += 1
            return Response(body, status=status, headers=headers)

        self.httpserver.expect_request("/v1" + path).respond_with_handler(handler)

    def reply_embeddings(self, **kwargs: Any) -> None:
        """Answer ``/v1/embeddings`` with `embeddings_payload(**kwargs)`.

        Without ``vectors`` (and ``order``), the answer has one item per input of each request
        (`VECTORS`, cycled), as the API contract requires.
        """
        if "vectors" in kwargs or "order" in kwargs:
            self.reply("/embeddings", json_response(embeddings_payload(**kwargs)))
            return

        def handler(request: Request) -> Response:
            inputs = json.loads(request.get_data()).get("inputs")
            count = len(inputs) if isinstance(inputs, list) else 1
            vectors = [VECTORS[i % len(VECTORS)] for i in range(count)]
            return json_response(embeddings_payload(vectors, **kwargs))

        self.reply("/embeddings", handler)

    def json_bodies(self) -> list[Any]:
        return [json.loads(request.get_data()) for request in self.requests]


@pytest.fixture(scope="session")
def _httpserver() -> Iterator[HTTPServer]:
    # Threaded, so that a handler that sleeps (the read-timeout test) blocks no other request.
    httpserver = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    httpserver.start()
    yield httpserver
    httpserver.clear()
    httpserver.stop()


@pytest.fixture
def server(_httpserver: HTTPServer) -> Iterator[Server]:
    _httpserver.clear()
    yield Server(_httpserver)
    _httpserver.clear()


@pytest.fixture
def closed_port() -> int:
    """A loopback port that was bound and closed again: connecting to it is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


# -- one sync API over both clients ----------------------------------------------------------

_ASYNC_FACADES = (
    AsyncAligneAI,
    AsyncEmbeddings,
    AsyncEmbeddingsWithRawResponse,
    AsyncModels,
    AsyncModelsWithRawResponse,
)


class SyncStream:
    """An `AsyncStream` driven synchronously (``for`` and ``with`` run its async twins)."""

    def __init__(self, stream: AsyncStream, loop: asyncio.AbstractEventLoop) -> None:
        self.raw = stream
        self._loop = loop

    def __iter__(self) -> SyncStream:
        return self

    def __next__(self) -> Any:
        try:
            return self._loop.run_until_complete(self.raw.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    def get_final_response(self) -> Any:
        return self._loop.run_until_complete(self.raw.get_final_response())

    def close(self) -> None:
        self._loop.run_until_complete(self.raw.aclose())

    def __enter__(self) -> SyncStream:
        assert self._loop.run_until_complete(self.raw.__aenter__()) is self.raw
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._loop.run_until_complete(self.raw.__aexit__(*exc_info))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


class SyncView:
    """An async client (or one of its resources) whose methods run to completion when called."""

    def __init__(self, target: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.raw = target
        self._loop = loop

    def _wrap(self, value: Any) -> Any:
        if inspect.isawaitable(value):
            value = self._loop.run_until_complete(value)
        if isinstance(value, AsyncStream):
            return SyncStream(value, self._loop)
        if isinstance(value, _ASYNC_FACADES):
            return SyncView(value, self._loop)
        return value

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.raw, name)
        if callable(value) and not isinstance(value, _ASYNC_FACADES):
            return lambda *args, **kwargs: self._wrap(value(*args, **kwargs))
        return self._wrap(value)


_DEFAULT = object()


class Harness:
    """Makes clients of one kind (sync or async) pointed at the test server.

    Attributes:
        kind: ``"sync"`` or ``"async"``.
        sleeps: every delay the clients' injected ``_sleep`` was asked for, in order.
        client: a default client (``max_retries=2``), with the sync API either way.
    """

    def __init__(self, kind: str, server: Server) -> None:
        self.kind = kind
        self.server = server
        self.sleeps: list[float] = []
        self._clients: list[Any] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        if kind == "async":
            self.loop = asyncio.new_event_loop()
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self.make()
        return self._client

    def make(self, *, api_key: Any = _DEFAULT, base_url: Any = _DEFAULT, **kwargs: Any) -> Any:
        """A new client; pass ``api_key=None`` / ``base_url=None`` to fall back to the env."""
        kwargs["api_key"] = API_KEY if api_key is _DEFAULT else api_key
        kwargs["base_url"] = self.server.base_url if base_url is _DEFAULT else base_url
        if self.kind == "sync":

            def record(seconds: float) -> None:
                self.sleeps.append(seconds)

            client = aligneai.AligneAI(_sleep=record, **kwargs)
            self._clients.append(client)
            return client

        async def arecord(seconds: float) -> None:
            self.sleeps.append(seconds)

        async def create() -> AsyncAligneAI:
            # Created inside the loop that will run its calls.
            return AsyncAligneAI(_sleep=arecord, **kwargs)

        assert self.loop is not None
        aclient = self.loop.run_until_complete(create())
        self._clients.append(aclient)
        return SyncView(aclient, self.loop)

    def close(self) -> None:
        if self.loop is None:
            for client in self._clients:
                client.close()
            return
        try:
            for client in self._clients:
                self.loop.run_until_complete(client.close())
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()


@pytest.fixture(params=["sync", "async"])
def api(request: pytest.FixtureRequest, server: Server) -> Iterator[Harness]:
    harness = Harness(request.param, server)
    try:
        yield harness
    finally:
        harness.close()


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No ALIGNEAI_* settings in the environment."""
    for name in ("ALIGNEAI_API_KEY", "ALIGNEAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    # Transports read proxies from the environment: the tests only ever talk to loopback.
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def wire() -> SimpleNamespace:
    """The wire-format builders above (test modules cannot import conftest by name)."""
    return SimpleNamespace(
        VECTORS=VECTORS,
        API_KEY=API_KEY,
        b64_vector=b64_vector,
        embedding_item=embedding_item,
        embeddings_payload=embeddings_payload,
        error_payload=error_payload,
        model_payload=model_payload,
        sse_event=sse_event,
        sse_embedding=sse_embedding,
        sse_done=sse_done,
        sse_body=sse_body,
        json_response=json_response,
        sse_response=sse_response,
    )
