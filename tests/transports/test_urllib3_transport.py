"""`Urllib3Transport` against real sockets: failure mapping, no redirects, TLS trust, proxies
and keepalive. Every server runs on 127.0.0.1."""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import attrs
import pytest
from pytest_httpserver import HTTPServer

from aligneai import AligneAI, APIConnectionError, InvalidArgumentValueError
from aligneai.core.failures import ConnectError, ConnectTimeout, ReadError, ReadTimeout
from aligneai.core.options import Timeout
from aligneai.core.request import Request
from aligneai.transports.base import SyncResponse, SyncTransport
from aligneai.transports.urllib3_transport import Urllib3Transport

if TYPE_CHECKING:  # for annotations only: the fixtures come from conftest.py
    from conftest import RawServer


def get(url: str, *, read: float | None = 2.0, connect: float = 2.0) -> Request:
    return Request("GET", url, {"Accept": "application/json"}, timeout=Timeout(connect, read))


def read_all(response: SyncResponse) -> bytes:
    try:
        return b"".join(response.iter_bytes())
    finally:
        response.close()


# -- failures --------------------------------------------------------------------------------------


def test_it_is_a_sync_transport() -> None:
    transport = Urllib3Transport()
    assert isinstance(transport, SyncTransport)
    transport.close()


def test_connection_refused_is_a_connect_error(free_port: int) -> None:
    transport = Urllib3Transport()
    with pytest.raises(ConnectError) as caught:
        transport.send(get(f"http://127.0.0.1:{free_port}/v1/models"))
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


def test_proxy_routes_through_the_proxy(
    forward_proxy: tuple[str, list[str]], free_port: int
) -> None:
    proxy, seen = forward_proxy
    target = f"http://localhost:{free_port}/v1/models"  # refused if it were reached directly
    transport = Urllib3Transport(proxy=proxy)
    assert read_all(transport.send(get(target))) == b"via-proxy"
    transport.close()
    assert seen == [f"GET {target} HTTP/1.1"]


def test_proxy_url_still_works_and_warns(
    forward_proxy: tuple[str, list[str]], free_port: int
) -> None:
    proxy, seen = forward_proxy
    target = f"http://localhost:{free_port}/v1/models"
    with pytest.warns(DeprecationWarning, match=r"proxy_url=.*deprecated.*proxy="):
        transport = Urllib3Transport(proxy_url=proxy)
    assert read_all(transport.send(get(target))) == b"via-proxy"
    transport.close()
    assert seen == [f"GET {target} HTTP/1.1"]


def test_proxy_and_proxy_url_together_are_refused(forward_proxy: tuple[str, list[str]]) -> None:
    proxy, _ = forward_proxy
    with pytest.raises(InvalidArgumentValueError) as caught:
        Urllib3Transport(proxy=proxy, proxy_url=proxy)
    assert caught.value.argument == "proxy_url"


def test_the_sync_client_sizes_its_default_pool(server: HTTPServer) -> None:
    """``AligneAI(max_connections=n)``: the default transport keeps n connections per host."""
    server.expect_request("/v1/models").respond_with_json({"object": "list", "data": []})
    client = AligneAI(api_key="sk-test", base_url=server.url_for("/v1"), max_connections=3)
    try:
        client.models.list()
        pool = next(iter(client._transport._host_pools.values()))  # type: ignore[attr-defined]
        assert pool.pool.maxsize == 3
    finally:
        client.close()
    with pytest.raises(InvalidArgumentValueError) as caught:
        AligneAI(api_key="sk-test", max_connections=0)
    assert caught.value.argument == "max_connections"
    default = AligneAI(api_key="sk-test", base_url=server.url_for("/v1"))
    try:
        default.models.list()
        pool = next(iter(default._transport._host_pools.values()))  # type: ignore[attr-defined]
        assert pool.pool.maxsize == 10  # urllib3's pool size, as before the argument existed
    finally:
        default.close()


def test_environment_proxy_and_no_proxy_bypass(
    forward_proxy: tuple[str, list[str]],
    server: HTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    free_port: int,
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

    proxied = f"http://localhost:{free_port}/v1/models"
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


def test_connections_have_tcp_keepalive(keepalive_server: str) -> None:
    transport = Urllib3Transport()
    response = transport.send(get(keepalive_server))
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
def ports_server(
    http_server: Callable[[type[BaseHTTPRequestHandler]], Any],
) -> Iterator[tuple[str, Any]]:
    httpd = http_server(_PortsAnswer)
    httpd.gate = threading.Event()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd
    finally:
        httpd.gate.set()  # before the server stops: its handler may be waiting on it


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
