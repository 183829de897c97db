"""`AiohttpTransport` against real sockets: failure mapping, no redirects, TLS trust, proxies
and keepalive. Every server runs on 127.0.0.1; each test runs its own ``asyncio.run()``."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import sys
import threading
from collections.abc import Awaitable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import pytest
import trustme
from pytest_httpserver import HTTPServer
from werkzeug.wrappers import Response as WsgiResponse

from aligneai import AsyncAligneAI
from aligneai.core.failures import ConnectError, ConnectTimeout, ReadError, ReadTimeout
from aligneai.core.options import Timeout
from aligneai.core.request import Request
from aligneai.transports.aiohttp_transport import AiohttpTransport
from aligneai.transports.base import AsyncResponse, AsyncTransport

pytestmark = pytest.mark.filterwarnings("error")

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def _no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def get(url: str, *, read: float | None = 2.0, connect: float = 2.0) -> Request:
    return Request("GET", url, {"Accept": "application/json"}, timeout=Timeout(connect, read))


async def read_all(response: AsyncResponse) -> bytes:
    try:
        return b"".join([chunk async for chunk in response.aiter_bytes()])
    finally:
        await response.aclose()


def run(use: Callable[[AiohttpTransport], Awaitable[Any]], **transport_kwargs: Any) -> Any:
    """Create an `AiohttpTransport` inside a fresh event loop, use it, always close it."""

    async def main() -> Any:
        transport = AiohttpTransport(**transport_kwargs)
        try:
            return await use(transport)
        finally:
            await transport.aclose()

    return asyncio.run(main())


# -- small servers ---------------------------------------------------------------------------------


class RawServer:
    """A TCP server on 127.0.0.1 whose connections are handled by ``serve(conn)``."""

    def __init__(self, serve: Any = None) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.02)
        self.port: int = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._serve = serve
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            self.accepted.append(conn)
            if self._serve is not None:
                self._serve(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.listener.close()
        for conn in self.accepted:
            conn.close()


def read_request_head(conn: socket.socket) -> bytes:
    conn.settimeout(2)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def send_half_a_body(conn: socket.socket) -> None:
    read_request_head(conn)
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        b'{"object": "list", "data": ['
    )
    conn.close()


@pytest.fixture
def silent_server() -> Iterator[RawServer]:
    server = RawServer()  # accepts, never answers
    yield server
    server.close()


@pytest.fixture
def truncating_server() -> Iterator[RawServer]:
    server = RawServer(send_half_a_body)
    yield server
    server.close()


@pytest.fixture(scope="module")
def _httpserver() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def server(_httpserver: HTTPServer) -> Iterator[HTTPServer]:
    _httpserver.clear()
    yield _httpserver
    _httpserver.clear()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Answer(BaseHTTPRequestHandler):
    """Answers every request with its own name; records the request lines it saw."""

    body = b"direct"

    def do_GET(self) -> None:
        self.server.seen.append(self.requestline)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ProxyAnswer(_Answer):
    body = b"via-proxy"


def start_http_server(
    handler: type[BaseHTTPRequestHandler], context: ssl.SSLContext | None = None
) -> tuple[ThreadingHTTPServer, threading.Thread]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    httpd.seen = []  # type: ignore[attr-defined]
    if context is not None:
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    return httpd, thread


def stop_http_server(httpd: ThreadingHTTPServer, thread: threading.Thread) -> None:
    httpd.shutdown()
    httpd.server_close()
    thread.join(2)


@pytest.fixture
def forward_proxy() -> Iterator[tuple[str, list[str]]]:
    """A forward proxy that records the absolute-form request line and answers itself."""
    httpd, thread = start_http_server(_ProxyAnswer)
    yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd.seen  # type: ignore[attr-defined]
    stop_http_server(httpd, thread)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on 127.0.0.1 with a certificate from a private CA; yields (url, CA file)."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    ca_file = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    httpd, thread = start_http_server(_Answer, context)
    yield f"https://127.0.0.1:{httpd.server_address[1]}/secure", ca_file
    stop_http_server(httpd, thread)


# -- failures --------------------------------------------------------------------------------------


def test_it_is_an_async_transport() -> None:
    assert isinstance(AiohttpTransport(), AsyncTransport)


def test_connection_refused_is_a_connect_error() -> None:
    async def use(transport: AiohttpTransport) -> None:
        with pytest.raises(ConnectError) as caught:
            await transport.send(get(f"http://127.0.0.1:{free_port()}/v1/models"))
        assert not isinstance(caught.value, ConnectTimeout)

    run(use)


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="needs Linux's SYN drop on a full backlog"
)
def test_a_connect_that_never_completes_is_a_connect_timeout() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)  # never accepted: one pending connection fills the queue
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=1)

    async def use(transport: AiohttpTransport) -> None:
        with pytest.raises(ConnectTimeout):
            await transport.send(get(f"http://127.0.0.1:{port}/", connect=0.2))

    try:
        run(use)
    finally:
        filler.close()
        listener.close()


def test_a_server_that_never_answers_is_a_read_timeout(silent_server: RawServer) -> None:
    async def use(transport: AiohttpTransport) -> None:
        with pytest.raises(ReadTimeout):
            await transport.send(get(f"http://127.0.0.1:{silent_server.port}/v1", read=0.2))

    run(use)


def test_a_body_cut_short_is_a_read_error_while_iterating(truncating_server: RawServer) -> None:
    async def use(transport: AiohttpTransport) -> None:
        response = await transport.send(get(f"http://127.0.0.1:{truncating_server.port}/v1"))
        assert response.status_code == 200
        with pytest.raises(ReadError) as caught:
            await read_all(response)
        assert not isinstance(caught.value, ReadTimeout)

    run(use)


def test_redirects_are_not_followed(server: HTTPServer, silent_server: RawServer) -> None:
    elsewhere = f"http://localhost:{silent_server.port}/stolen"
    server.expect_request("/v1/models").respond_with_data(
        "", status=302, headers={"Location": elsewhere}
    )

    async def use(transport: AiohttpTransport) -> None:
        response = await transport.send(get(server.url_for("/v1/models")))
        try:
            assert response.status_code == 302
            assert response.headers["Location"] == elsewhere
        finally:
            await response.aclose()

    run(use)
    assert silent_server.accepted == []  # nothing went to the other host


# -- TLS -------------------------------------------------------------------------------------------


def test_tls_default_trust_refuses_a_private_ca(
    tls_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    url, _ = tls_server

    async def use(transport: AiohttpTransport) -> None:
        with pytest.raises(ConnectError) as caught:
            await transport.send(get(url, connect=5, read=5))
        assert not isinstance(caught.value, ConnectTimeout)
        assert "certificate" in str(caught.value).lower()

    run(use)


def test_tls_ca_certs_accepts_the_private_ca(tls_server: tuple[str, Path]) -> None:
    url, ca_file = tls_server

    async def use(transport: AiohttpTransport) -> bytes:
        return await read_all(await transport.send(get(url)))

    assert run(use, ca_certs=str(ca_file)) == b"direct"


def test_tls_ssl_cert_file_accepts_the_private_ca(
    tls_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, ca_file = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # read when the transport is created

    async def use(transport: AiohttpTransport) -> bytes:
        return await read_all(await transport.send(get(url)))

    assert run(use) == b"direct"


# -- proxies ---------------------------------------------------------------------------------------


def test_proxy_routes_through_the_proxy(forward_proxy: tuple[str, list[str]]) -> None:
    proxy, seen = forward_proxy
    target = f"http://localhost:{free_port()}/v1/models"  # refused if it were reached directly

    async def use(transport: AiohttpTransport) -> bytes:
        return await read_all(await transport.send(get(target)))

    assert run(use, proxy=proxy) == b"via-proxy"
    assert seen == [f"GET {target} HTTP/1.1"]


def test_environment_proxy_and_no_proxy_bypass(
    forward_proxy: tuple[str, list[str]], server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy, seen = forward_proxy
    server.expect_request("/v1/models").respond_with_data("direct")
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    bypassed = server.url_for("/v1/models")
    assert bypassed.startswith("http://127.0.0.1:")
    proxied = f"http://localhost:{free_port()}/v1/models"

    async def use(transport: AiohttpTransport) -> None:  # created after the variables are set
        assert await read_all(await transport.send(get(bypassed))) == b"direct"
        assert seen == []
        assert await read_all(await transport.send(get(proxied))) == b"via-proxy"
        assert seen == [f"GET {proxied} HTTP/1.1"]

    run(use)


def test_trust_env_false_ignores_the_environment_proxy(
    forward_proxy: tuple[str, list[str]], server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy, seen = forward_proxy
    server.expect_request("/v1/models").respond_with_data("direct")
    monkeypatch.setenv("HTTP_PROXY", proxy)

    async def use(transport: AiohttpTransport) -> bytes:
        return await read_all(await transport.send(get(server.url_for("/v1/models"))))

    assert run(use, trust_env=False) == b"direct"
    assert seen == []


# -- keepalive -------------------------------------------------------------------------------------


def send_half_and_hold(conn: socket.socket) -> None:
    read_request_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345")  # the rest never comes


def test_connections_have_tcp_keepalive() -> None:
    server = RawServer(send_half_and_hold)  # keeps the connection in use while it is inspected
    url = f"http://127.0.0.1:{server.port}/v1/models"

    async def use(transport: AiohttpTransport) -> None:
        response = await transport.send(get(url))
        try:
            connection = response._response.connection  # type: ignore[attr-defined]
            sock = connection.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
            if hasattr(socket, "TCP_KEEPIDLE"):
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 60
        finally:
            await response.aclose()

    try:
        run(use)
    finally:
        server.close()


# -- large request bodies --------------------------------------------------------------------------


def post(url: str, body: bytes) -> Request:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    return Request("POST", url, headers, body, timeout=Timeout(2.0, 10.0))


@pytest.mark.parametrize(
    "size",
    [2**20, 2**20 + 1, 3 * 2**20 + 7],
    ids=["1MiB", "1MiB+1", "3MiB+7"],
)
def test_a_large_body_is_sent_whole_without_a_warning(server: HTTPServer, size: int) -> None:
    # aiohttp warns (ResourceWarning) about raw bytes over 1 MiB; under `-W error`, as here,
    # that warning used to fail the call before anything was sent.
    body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    received: list[tuple[bytes, str | None, str | None]] = []

    def handler(request: Any) -> Any:
        received.append(
            (request.get_data(), request.headers.get("Content-Length"), request.content_type)
        )
        return WsgiResponse(b"{}", content_type="application/json")

    server.expect_request("/v1/embeddings", method="POST").respond_with_handler(handler)

    async def use(transport: AiohttpTransport) -> int:
        response = await transport.send(post(server.url_for("/v1/embeddings"), body))
        await read_all(response)
        return response.status_code

    assert run(use) == 200
    assert len(received) == 1
    data, length, content_type = received[0]
    assert data == body
    assert length == str(size)
    assert content_type == "application/json"


def test_a_large_body_goes_out_again_on_a_retry(server: HTTPServer) -> None:
    # 2048 texts of 600 characters (the issue's case): over 1 MiB of JSON. The first answer is a
    # 503, so the body is sent a second time and must arrive whole again.
    inputs = [f"{i:04d}" + "a" * 596 for i in range(2048)]
    bodies: list[bytes] = []

    def handler(request: Any) -> Any:
        bodies.append(request.get_data())
        if len(bodies) == 1:
            return WsgiResponse(
                b'{"error": {"message": "busy"}}',
                status=503,
                headers={"retry-after-ms": "1"},
                content_type="application/json",
            )
        data = [{"object": "embedding", "index": i, "embedding": [1.0]} for i in range(2048)]
        payload = {
            "object": "list",
            "data": data,
            "model": "m",
            "usage": {"prompt_tokens": 1, "total_tokens": 1},
        }
        return WsgiResponse(json.dumps(payload), content_type="application/json")

    server.expect_request("/v1/embeddings", method="POST").respond_with_handler(handler)

    async def main() -> int:
        async with AsyncAligneAI(api_key="k", base_url=server.url_for("/v1")) as client:
            response = await client.embeddings.create(inputs=inputs)
            return len(response.data)

    assert asyncio.run(main()) == 2048
    assert len(bodies) == 2
    assert bodies[0] == bodies[1]
    assert len(bodies[0]) > 2**20
    assert json.loads(bodies[0])["inputs"] == inputs
