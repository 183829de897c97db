"""`AiohttpTransport` against real sockets: failure mapping, no redirects, TLS trust, proxies
and keepalive. Every server runs on 127.0.0.1; each test runs its own ``asyncio.run()``."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pytest
from pytest_httpserver import HTTPServer
from werkzeug.wrappers import Response as WsgiResponse

from aligneai import AsyncAligneAI
from aligneai.core.failures import ConnectError, ConnectTimeout, ReadError, ReadTimeout
from aligneai.core.options import Timeout
from aligneai.core.request import Request
from aligneai.transports.aiohttp_transport import AiohttpTransport
from aligneai.transports.base import AsyncResponse, AsyncTransport

pytestmark = pytest.mark.filterwarnings("error")

if TYPE_CHECKING:  # for annotations only: the fixtures come from conftest.py
    from conftest import RawServer


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


# -- failures --------------------------------------------------------------------------------------


def test_it_is_an_async_transport() -> None:
    assert isinstance(AiohttpTransport(), AsyncTransport)


def test_connection_refused_is_a_connect_error(free_port: int) -> None:
    async def use(transport: AiohttpTransport) -> None:
        with pytest.raises(ConnectError) as caught:
            await transport.send(get(f"http://127.0.0.1:{free_port}/v1/models"))
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


def test_proxy_routes_through_the_proxy(
    forward_proxy: tuple[str, list[str]], free_port: int
) -> None:
    proxy, seen = forward_proxy
    target = f"http://localhost:{free_port}/v1/models"  # refused if it were reached directly

    async def use(transport: AiohttpTransport) -> bytes:
        return await read_all(await transport.send(get(target)))

    assert run(use, proxy=proxy) == b"via-proxy"
    assert seen == [f"GET {target} HTTP/1.1"]


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
    bypassed = server.url_for("/v1/models")
    assert bypassed.startswith("http://127.0.0.1:")
    proxied = f"http://localhost:{free_port}/v1/models"

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


def test_connections_have_tcp_keepalive(holding_server: RawServer) -> None:
    # The server keeps the connection in use while it is inspected.
    url = f"http://127.0.0.1:{holding_server.port}/v1/models"

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

    run(use)


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
    # 2048 texts of 600 characters (the case): over 1 MiB of JSON. The first answer is a
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
