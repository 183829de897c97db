"""`Urllib3Transport` against real sockets: failure mapping, no redirects, TLS trust, proxies
and keepalive. Every server runs on 127.0.0.1."""

from __future__ import annotations

import socket
import ssl
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import attrs
import pytest
import trustme
from pytest_httpserver import HTTPServer

from aligneai import AligneAI, APIConnectionError
from aligneai.core.failures import ConnectError, ConnectTimeout, ReadError, ReadTimeout
from aligneai.core.options import Timeout
from aligneai.core.request import Request
from aligneai.transports.base import SyncResponse, SyncTransport
from aligneai.transports.urllib3_transport import Urllib3Transport

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def _no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def get(url: str, *, read: float | None = 2.0, connect: float = 2.0) -> Request:
    return Request("GET", url, {"Accept": "application/json"}, timeout=Timeout(connect, read))


def read_all(response: SyncResponse) -> bytes:
    try:
        return b"".join(response.iter_bytes())
    finally:
        response.close()


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


class _KeepAliveAnswer(_Answer):
    protocol_version = "HTTP/1.1"  # the connection stays open after the answer


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


def test_it_is_a_sync_transport() -> None:
    transport = Urllib3Transport()
    assert isinstance(transport, SyncTransport)
    transport.close()


def test_connection_refused_is_a_connect_error() -> None:
    transport = Urllib3Transport()
    with pytest.raises(ConnectError) as caught:
        transport.send(get(f"http://127.0.0.1:{free_port()}/v1/models"))
    assert not isinstance(caught.value, ConnectTimeout)
    transport.close()


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="needs Linux's SYN drop on a full backlog"
)
def test_a_connect_that_never_completes_is_a_connect_timeout() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)  # never accepted: one pending connection fills the queue
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=1)
    transport = Urllib3Transport()
    try:
        with pytest.raises(ConnectTimeout):
            transport.send(get(f"http://127.0.0.1:{port}/", connect=0.2))
    finally:
        transport.close()
        filler.close()
        listener.close()


def test_a_server_that_never_answers_is_a_read_timeout(silent_server: RawServer) -> None:
    transport = Urllib3Transport()
    with pytest.raises(ReadTimeout):
        transport.send(get(f"http://127.0.0.1:{silent_server.port}/v1/models", read=0.2))
    transport.close()


def test_a_body_cut_short_is_a_read_error_while_iterating(truncating_server: RawServer) -> None:
    transport = Urllib3Transport()
    response = transport.send(get(f"http://127.0.0.1:{truncating_server.port}/v1/models"))
    assert response.status_code == 200
    with pytest.raises(ReadError) as caught:
        read_all(response)
    assert not isinstance(caught.value, ReadTimeout)
    transport.close()


def test_redirects_are_not_followed(server: HTTPServer, silent_server: RawServer) -> None:
    elsewhere = f"http://localhost:{silent_server.port}/stolen"
    server.expect_request("/v1/models").respond_with_data(
        "", status=302, headers={"Location": elsewhere}
    )
    transport = Urllib3Transport()
    response = transport.send(get(server.url_for("/v1/models")))
    try:
        assert response.status_code == 302
        assert response.headers["Location"] == elsewhere
    finally:
        response.close()
        transport.close()
    assert silent_server.accepted == []  # nothing went to the other host


# -- TLS -------------------------------------------------------------------------------------------


def test_tls_default_trust_refuses_a_private_ca(
    tls_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    url, _ = tls_server
    transport = Urllib3Transport()
    with pytest.raises(ConnectError) as caught:
        transport.send(get(url, connect=5, read=5))
    assert not isinstance(caught.value, ConnectTimeout)
    assert "certificate" in str(caught.value).lower()
    transport.close()


def test_tls_ca_certs_accepts_the_private_ca(tls_server: tuple[str, Path]) -> None:
    url, ca_file = tls_server
    transport = Urllib3Transport(ca_certs=str(ca_file))
    assert read_all(transport.send(get(url))) == b"direct"
    transport.close()


def test_tls_ssl_cert_file_accepts_the_private_ca(
    tls_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, ca_file = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # read when the transport is created
    transport = Urllib3Transport()
    assert read_all(transport.send(get(url))) == b"direct"
    transport.close()


# -- proxies ---------------------------------------------------------------------------------------


def test_proxy_url_routes_through_the_proxy(forward_proxy: tuple[str, list[str]]) -> None:
    proxy, seen = forward_proxy
    target = f"http://localhost:{free_port()}/v1/models"  # refused if it were reached directly
    transport = Urllib3Transport(proxy_url=proxy)
    assert read_all(transport.send(get(target))) == b"via-proxy"
    transport.close()
    assert seen == [f"GET {target} HTTP/1.1"]


def test_environment_proxy_and_no_proxy_bypass(
    forward_proxy: tuple[str, list[str]], server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy, seen = forward_proxy
    server.expect_request("/v1/models").respond_with_data("direct")
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    transport = Urllib3Transport()  # the environment is read now

    bypassed = server.url_for("/v1/models")
    assert bypassed.startswith("http://127.0.0.1:")
    assert read_all(transport.send(get(bypassed))) == b"direct"
    assert seen == []

    proxied = f"http://localhost:{free_port()}/v1/models"
    assert read_all(transport.send(get(proxied))) == b"via-proxy"
    assert seen == [f"GET {proxied} HTTP/1.1"]
    transport.close()


def test_trust_env_false_ignores_the_environment_proxy(
    forward_proxy: tuple[str, list[str]], server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy, seen = forward_proxy
    server.expect_request("/v1/models").respond_with_data("direct")
    monkeypatch.setenv("HTTP_PROXY", proxy)
    transport = Urllib3Transport(trust_env=False)
    assert read_all(transport.send(get(server.url_for("/v1/models")))) == b"direct"
    assert seen == []
    transport.close()


# -- keepalive -------------------------------------------------------------------------------------


def test_connections_have_tcp_keepalive() -> None:
    httpd, thread = start_http_server(_KeepAliveAnswer)
    transport = Urllib3Transport()
    response = transport.send(get(f"http://127.0.0.1:{httpd.server_address[1]}/v1/models"))
    try:
        sock = response._response.connection.sock  # type: ignore[attr-defined]
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
        if hasattr(socket, "TCP_KEEPIDLE"):
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 60
        if hasattr(socket, "TCP_KEEPINTVL"):
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 15
        if hasattr(socket, "TCP_KEEPCNT"):
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 4
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        read_all(response)
        transport.close()
        stop_http_server(httpd, thread)


# -- connection reuse and release ------------------------------------------------------------------


class _PortsAnswer(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive: ``/small`` whole, ``/big`` chunked with all but its first chunk held
    back until ``server.gate`` is set. Records ``(path, client port)`` of every request."""

    protocol_version = "HTTP/1.1"
    timeout = 10.0  # bounds an idle keep-alive connection's thread

    def do_GET(self) -> None:
        self.server.seen.append((self.path, self.client_address[1]))  # type: ignore[attr-defined]
        if self.path != "/big":
            body = b'{"object": "list", "data": []}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            self.wfile.write(b"5\r\nfirst\r\n")
            self.wfile.flush()
            self.server.gate.wait(5.0)  # type: ignore[attr-defined]
            for _ in range(10):
                self.wfile.write(b"4\r\nmore\r\n")
            self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client discarded the connection
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def ports_server() -> Iterator[tuple[str, Any]]:
    httpd, thread = start_http_server(_PortsAnswer)
    httpd.gate = threading.Event()  # type: ignore[attr-defined]
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd
    finally:
        httpd.gate.set()  # type: ignore[attr-defined]
        stop_http_server(httpd, thread)


def test_a_half_read_response_is_discarded_a_whole_one_reused(
    ports_server: tuple[str, Any],
) -> None:
    url, httpd = ports_server
    transport = Urllib3Transport()
    try:
        assert read_all(transport.send(get(url + "/small"))) == b'{"object": "list", "data": []}'
        read_all(transport.send(get(url + "/small")))
        big = transport.send(attrs.evolve(get(url + "/big"), stream=True))
        assert next(iter(big.iter_bytes())) == b"first"
        big.close()
        big.close()  # idempotent
        httpd.gate.set()
        read_all(transport.send(get(url + "/small")))
        with pytest.raises(ReadError, match="closed"):
            list(big.iter_bytes())
    finally:
        transport.close()

    paths = [path for path, _ in httpd.seen]
    ports = [port for _, port in httpd.seen]
    assert paths == ["/small", "/small", "/big", "/small"]
    assert ports[0] == ports[1] == ports[2]  # a connection read to the end is reused
    assert ports[3] != ports[2]  # the half-read one is not


def test_a_pooled_connection_whose_socket_died_is_replaced(
    ports_server: tuple[str, Any],
) -> None:
    # The state a garbage-collected half-read stream used to leave in the pool: a connection
    # whose socket object was finalised (fd -1) but not detached. urllib3 then raises a raw
    # ValueError when it checks the connection; the client retries on a fresh one.
    url, _ = ports_server
    sleeps: list[float] = []
    client = AligneAI(api_key="k", base_url=url + "/v1", max_retries=1, _sleep=sleeps.append)
    transport: Any = client._transport
    try:
        client.models.list()
        pool = next(iter(transport._host_pools.values()))
        (connection,) = [c for c in pool.pool.queue if c is not None]
        connection.sock.close()  # the socket dies, the connection still points at it

        assert client.models.list().data == []
        assert len(sleeps) == 1  # one retry, after the stray failure

        (connection,) = [c for c in pool.pool.queue if c is not None]
        connection.sock.close()
        with pytest.raises(APIConnectionError) as info:
            client.with_options(max_retries=0).models.list()
        assert type(info.value) is APIConnectionError
        assert "ValueError" in str(info.value)
    finally:
        client.close()


def test_abandon_closes_the_socket_at_once_and_the_pool_reclaims_the_slot_later(
    ports_server: tuple[str, Any],
) -> None:
    # What a stream's finalizer calls: no pool lock may be taken there, so the slot comes back
    # at the next send.
    url, httpd = ports_server
    transport = Urllib3Transport(max_connections=1)
    try:
        big = transport.send(attrs.evolve(get(url + "/big"), stream=True))
        reader = iter(big.iter_bytes())  # kept: dropping it would close the connection itself
        assert next(reader) == b"first"
        connection = big._response.connection  # type: ignore[attr-defined]
        assert connection.sock is not None
        big.abandon()  # type: ignore[attr-defined]
        assert connection.sock is None  # closed at once
        assert len(transport._abandoned) == 1
        pool = next(iter(transport._host_pools.values()))
        assert pool.pool.qsize() == 0  # the slot is still out
        big.abandon()  # type: ignore[attr-defined]
        big.close()  # both idempotent
        httpd.gate.set()

        read_all(transport.send(get(url + "/small")))

        assert not transport._abandoned
        assert pool.pool.qsize() == 1  # max_connections=1: the one slot is back
    finally:
        transport.close()
    ports = [port for _, port in httpd.seen]
    assert ports[1] != ports[0]
