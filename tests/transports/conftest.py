"""Servers and settings the transport tests share (urllib3, aiohttp, the custom and trio ones).

Every server runs on 127.0.0.1, in a daemon thread, and is stopped by its fixture.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
import trustme
from pytest_httpserver import HTTPServer

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def _no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy from the machine's environment: a test that wants one sets it."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


# -- raw TCP servers -------------------------------------------------------------------------------


class RawServer:
    """A TCP server on 127.0.0.1 whose connections are handled by ``serve(conn)``."""

    def __init__(self, serve: Optional[Callable[[socket.socket], None]] = None) -> None:  # noqa: UP045
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


def send_half_and_hold(conn: socket.socket) -> None:
    read_request_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345")  # the rest never comes


def _raw_server(serve: Optional[Callable[[socket.socket], None]]) -> Iterator[RawServer]:  # noqa: UP045
    server = RawServer(serve)
    yield server
    server.close()


@pytest.fixture
def silent_server() -> Iterator[RawServer]:
    """Accepts connections and never answers."""
    yield from _raw_server(None)


@pytest.fixture
def truncating_server() -> Iterator[RawServer]:
    """Answers 200 with ``Content-Length: 1000``, sends 28 bytes of it and closes."""
    yield from _raw_server(send_half_a_body)


@pytest.fixture
def holding_server() -> Iterator[RawServer]:
    """Answers 200 with half of a 10-byte body and keeps the connection open, in use."""
    yield from _raw_server(send_half_and_hold)


@pytest.fixture
def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on (a connection to it is refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- HTTP servers ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def _httpserver() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def server(_httpserver: HTTPServer) -> Iterator[HTTPServer]:
    """A pytest-httpserver (one per test module), cleared before and after each test."""
    _httpserver.clear()
    yield _httpserver
    _httpserver.clear()


class AnswerHandler(BaseHTTPRequestHandler):
    """Answers every GET with `body`; records the request lines it saw in ``server.seen``."""

    body = b"direct"

    def do_GET(self) -> None:
        self.server.seen.append(self.requestline)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ProxyAnswer(AnswerHandler):
    body = b"via-proxy"


def _start_http_server(
    handler: type[BaseHTTPRequestHandler],
    context: Optional[ssl.SSLContext] = None,  # noqa: UP045
) -> tuple[ThreadingHTTPServer, threading.Thread]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    httpd.seen = []  # type: ignore[attr-defined]
    if context is not None:
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    return httpd, thread


def _stop_http_server(httpd: ThreadingHTTPServer, thread: threading.Thread) -> None:
    httpd.shutdown()
    httpd.server_close()
    thread.join(2)


@pytest.fixture
def http_server() -> Iterator[Callable[[type[BaseHTTPRequestHandler]], ThreadingHTTPServer]]:
    """Start a ``ThreadingHTTPServer`` with a handler class; every one stops after the test."""
    started: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
        started.append(_start_http_server(handler))
        return started[-1][0]

    yield start
    for httpd, thread in started:
        _stop_http_server(httpd, thread)


class _KeepAliveAnswer(AnswerHandler):
    protocol_version = "HTTP/1.1"  # the connection stays open after the answer


@pytest.fixture
def keepalive_server() -> Iterator[str]:
    """An HTTP/1.1 server that keeps connections open; yields its ``/v1/models`` URL."""
    httpd, thread = _start_http_server(_KeepAliveAnswer)
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1/models"
    _stop_http_server(httpd, thread)


@pytest.fixture
def forward_proxy() -> Iterator[tuple[str, list[str]]]:
    """A forward proxy that records the absolute-form request line and answers itself."""
    httpd, thread = _start_http_server(_ProxyAnswer)
    yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd.seen  # type: ignore[attr-defined]
    _stop_http_server(httpd, thread)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on 127.0.0.1 with a certificate from a private CA; yields (url, CA file)."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    ca_file = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    httpd, thread = _start_http_server(AnswerHandler, context)
    yield f"https://127.0.0.1:{httpd.server_address[1]}/secure", ca_file
    _stop_http_server(httpd, thread)
