"""A complete custom `SyncTransport` on the standard library's ``http.client``, used for real.

`StdlibTransport` below is meant to be copied: it implements the whole transport contract
(``aligneai.transports.base``) in about a hundred lines:

- one request per `send`, nothing else: no retries and no redirects (the client decides);
- the body is read on demand through `iter_bytes`, and `close` returns the connection to a
  small keep-alive pool only when the body was read completely;
- failures are reported as the core's four kinds, which the client's retry logic relies on:
  `ConnectError` / `ConnectTimeout` when the request certainly never left (refused, DNS, TLS,
  connect timeout), `ReadError` / `ReadTimeout` when it may have reached the server;
- safe to share between threads (the pool is guarded by a lock).
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import sys
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Union
from urllib.parse import urlsplit

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request as WsgiRequest
from werkzeug import Response as WsgiResponse

from aligneai import (
    AligneAI,
    APIConnectionError,
    APITimeoutError,
    AsyncAligneAI,
    BadRequestError,
    InvalidArgumentTypeError,
)
from aligneai.core.options import Timeout
from aligneai.transports.base import (
    ConnectError,
    ConnectTimeout,
    ReadError,
    ReadTimeout,
    Request,
    SyncTransport,
)

if TYPE_CHECKING:  # for annotations only: the fixtures come from conftest.py
    from conftest import RawServer


# ------------------------------------------------------------------------------------------------
# The example transport
# ------------------------------------------------------------------------------------------------

Connection = Union[http.client.HTTPConnection, http.client.HTTPSConnection]
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class StdlibResponse:
    """A `SyncResponse` over one ``http.client.HTTPResponse``."""

    def __init__(
        self, transport: StdlibTransport, key: tuple[str, str, int], conn: Connection
    ) -> None:
        self._transport = transport
        self._key = key
        self._conn: Connection | None = conn
        self._response = conn.getresponse()

    @property
    def status_code(self) -> int:
        return self._response.status

    @property
    def headers(self) -> Mapping[str, str]:
        merged: dict[str, str] = {}
        for name, value in self._response.getheaders():
            merged[name] = f"{merged[name]}, {value}" if name in merged else value
        return merged

    def iter_bytes(self) -> Iterator[bytes]:
        try:
            while chunk := self._response.read(64 * 1024):
                yield chunk
        except socket.timeout as exc:  # TimeoutError on Python 3.10+
            raise ReadTimeout(f"the server stopped sending: {exc}") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise ReadError(f"the connection failed while reading: {exc!r}") from exc
        # http.client's read(amt) returns b"" when the server closes early, without an error:
        # a body shorter than its Content-Length must not pass for a complete one.
        if self._response.length:
            raise ReadError(f"the connection closed {self._response.length} bytes early")

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return  # already closed
        if self._response.isclosed() and not self._response.will_close:
            self._transport._put_back(self._key, conn)  # fully read: reuse it
        else:
            self._response.close()
            conn.close()  # unread body or "Connection: close": drop it


class StdlibTransport:
    """A `SyncTransport` on ``http.client`` with a small keep-alive pool per host."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None, max_idle: int = 10) -> None:
        self._ssl_context = ssl_context or ssl.create_default_context()
        self._max_idle = max_idle
        self._idle: dict[tuple[str, str, int], list[Connection]] = {}
        self._lock = threading.Lock()

    def send(self, request: Request) -> StdlibResponse:
        parts = urlsplit(request.url)
        scheme, host = parts.scheme, parts.hostname or ""
        key = (scheme, host, parts.port or (443 if scheme == "https" else 80))
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        timeout = request.timeout
        read_timeout = timeout.read
        if timeout.total is not None:  # the time left before the call's deadline
            read_timeout = min(read_timeout or timeout.total, timeout.total)

        conn = self._take(key)
        reused = conn is not None
        if conn is None:
            conn = self._connect(key, timeout.connect)
        while True:
            try:
                return self._exchange(key, conn, request, target, read_timeout)
            except _STALE as exc:
                conn.close()
                if not reused:
                    raise ReadError(f"the server closed the connection: {exc!r}") from exc
                # A kept-alive connection the server had closed meanwhile: one fresh try.
                reused = False
                conn = self._connect(key, timeout.connect)
            except socket.timeout as exc:  # TimeoutError on Python 3.10+
                conn.close()
                raise ReadTimeout(f"no response within {read_timeout} s: {exc}") from exc
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise ReadError(f"the connection failed: {exc!r}") from exc

    def _connect(self, key: tuple[str, str, int], connect_timeout: float) -> Connection:
        scheme, host, port = key
        conn: Connection
        if scheme == "https":
            conn = http.client.HTTPSConnection(
                host, port, timeout=connect_timeout, context=self._ssl_context
            )
        else:
            conn = http.client.HTTPConnection(host, port, timeout=connect_timeout)
        try:
            conn.connect()  # TCP (and TLS): nothing of the request has been sent yet
        except socket.timeout as exc:
            conn.close()
            raise ConnectTimeout(f"connecting to {host}:{port} timed out") from exc
        except OSError as exc:  # refused, unreachable, DNS (gaierror), TLS (SSLError)
            conn.close()
            raise ConnectError(f"cannot connect to {host}:{port}: {exc}") from exc
        return conn

    def _exchange(
        self,
        key: tuple[str, str, int],
        conn: Connection,
        request: Request,
        target: str,
        read_timeout: float | None,
    ) -> StdlibResponse:
        assert conn.sock is not None
        conn.sock.settimeout(read_timeout)  # None: wait as long as the server needs
        conn.request(request.method, target, body=request.body, headers=dict(request.headers))
        return StdlibResponse(self, key, conn)

    def _take(self, key: tuple[str, str, int]) -> Connection | None:
        with self._lock:
            idle = self._idle.get(key)
            return idle.pop() if idle else None

    def _put_back(self, key: tuple[str, str, int], conn: Connection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self._max_idle:
                idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()


# ------------------------------------------------------------------------------------------------
# Tests
# ------------------------------------------------------------------------------------------------

KEY = "sk-test-custom"


def embeddings_handler(request: WsgiRequest) -> WsgiResponse:
    inputs = json.loads(request.get_data())["inputs"]
    body = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": [float(len(text)), 0.5]}
            for i, text in enumerate(inputs)
        ],
        "model": "test-embedder",
        "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)},
    }
    return WsgiResponse(json.dumps(body), status=200, content_type="application/json")


def request_to(url: str, *, read: float = 10.0) -> Request:
    return Request(
        "GET", url, {"Accept": "application/json"}, timeout=Timeout(connect=5, read=read)
    )


def test_it_is_a_sync_transport() -> None:
    transport = StdlibTransport()
    assert isinstance(transport, SyncTransport)
    transport.close()


def test_success(server: HTTPServer) -> None:
    server.expect_request("/v1/embeddings", method="POST").respond_with_handler(embeddings_handler)

    class CountingTransport(StdlibTransport):
        closes = 0

        def close(self) -> None:
            self.closes += 1
            super().close()

    transport = CountingTransport()
    with AligneAI(api_key=KEY, base_url=server.url_for("/v1"), transport=transport) as client:
        response = client.embeddings.create(inputs=["one", "three"], encoding_format="float")
        assert [item.embedding for item in response.data] == [[3.0, 0.5], [5.0, 0.5]]
        again = client.embeddings.create(inputs=["seven"], encoding_format="float")
        assert again.data[0].embedding == [5.0, 0.5]
    sent = server.log[0][0]
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    assert json.loads(sent.get_data())["inputs"] == ["one", "three"]
    assert transport.closes == 0  # a transport the user passed in is theirs to close
    transport.close()


def test_429_then_200_is_retried(server: HTTPServer) -> None:
    server.expect_oneshot_request("/v1/embeddings", method="POST").respond_with_json(
        {"error": {"message": "slow down", "type": "rate_limit"}},
        status=429,
        headers={"retry-after-ms": "1"},
    )
    server.expect_request("/v1/embeddings", method="POST").respond_with_handler(embeddings_handler)
    sleeps: list[float] = []
    client = AligneAI(
        api_key=KEY,
        base_url=server.url_for("/v1"),
        transport=StdlibTransport(),
        _sleep=sleeps.append,
    )
    raw = client.embeddings.with_raw_response.create(inputs=["retried"])
    assert raw.status_code == 200
    assert raw.retries_taken == 1
    assert raw.parse().data[0].embedding == [7.0, 0.5]
    assert sleeps == [0.001]
    attempts = [request.headers for request, _ in server.log]
    assert [h["X-AligneAI-Retry-Count"] for h in attempts] == ["0", "1"]
    assert attempts[0]["Idempotency-Key"] == attempts[1]["Idempotency-Key"]


def test_error_status_becomes_the_status_error(server: HTTPServer) -> None:
    server.expect_request("/v1/embeddings", method="POST").respond_with_json(
        {
            "error": {
                "message": "inputs: too long",
                "type": "invalid_request_error",
                "param": "inputs",
            }
        },
        status=400,
        headers={"x-request-id": "req_42"},
    )
    client = AligneAI(api_key=KEY, base_url=server.url_for("/v1"), transport=StdlibTransport())
    with pytest.raises(BadRequestError) as caught:
        client.embeddings.create(inputs=["far too long"])
    assert caught.value.status_code == 400
    assert caught.value.request_id == "req_42"
    assert caught.value.param == "inputs"
    assert "inputs: too long" in str(caught.value)
    assert len(server.log) == 1  # 400 is not retried


def test_connection_refused_is_a_connect_error(free_port: int) -> None:
    url = f"http://127.0.0.1:{free_port}/v1"
    transport = StdlibTransport()
    with pytest.raises(ConnectError) as caught:
        transport.send(request_to(url + "/models"))
    assert not isinstance(caught.value, ConnectTimeout)

    client = AligneAI(api_key=KEY, base_url=url, transport=transport, max_retries=0)
    with pytest.raises(APIConnectionError) as error:
        client.models.list()
    assert not isinstance(error.value, APITimeoutError)
    assert isinstance(error.value.__cause__, ConnectError)


def test_a_silent_server_is_a_read_timeout(silent_server: RawServer) -> None:
    url = f"http://127.0.0.1:{silent_server.port}/v1"
    transport = StdlibTransport()
    with pytest.raises(ReadTimeout):
        transport.send(request_to(url + "/models", read=0.1))

    client = AligneAI(api_key=KEY, base_url=url, transport=transport, max_retries=0, timeout=0.1)
    with pytest.raises(APITimeoutError) as error:
        client.models.list()
    assert isinstance(error.value.__cause__, ReadTimeout)


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="needs Linux's SYN drop on a full backlog"
)
def test_a_full_listen_backlog_is_a_connect_timeout() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)  # never accepted: one pending connection fills the queue
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=1)
    try:
        request = Request(
            "GET", f"http://127.0.0.1:{port}/", {}, timeout=Timeout(connect=0.2, read=1)
        )
        with pytest.raises(ConnectTimeout):
            StdlibTransport().send(request)
    finally:
        filler.close()
        listener.close()


def test_a_wrong_object_as_transport_is_rejected_naming_it() -> None:
    class NotATransport:
        def post(self, url: str) -> None: ...

    for wrong in (NotATransport(), "urllib3", object()):
        with pytest.raises(InvalidArgumentTypeError) as caught:
            AligneAI(api_key=KEY, transport=wrong)  # type: ignore[arg-type]
        assert caught.value.argument == "transport"
        assert "transport" in str(caught.value)
        assert isinstance(caught.value, TypeError)

    # A sync transport is not an async one, and the other way round.
    with pytest.raises(InvalidArgumentTypeError) as caught:
        AsyncAligneAI(api_key=KEY, transport=StdlibTransport())  # type: ignore[arg-type]
    assert caught.value.argument == "transport"

    class AsyncOnly:
        async def send(self, request: Request) -> Any: ...
        async def aclose(self) -> None: ...

    with pytest.raises(InvalidArgumentTypeError) as caught:
        AligneAI(api_key=KEY, transport=AsyncOnly())  # type: ignore[arg-type]
    assert caught.value.argument == "transport"
