"""`AiohttpTransport`'s per-call fast paths (issue #16) keep the transport's behaviour.

- The read timeout is one lazily re-armed timer per connection (`_LazyReadTimeoutHandler`):
  it still fires on a stall before the head and in the middle of a body, it still limits each
  wait for data (not the whole body), and a shorter limit on a reused connection applies.
- The headers go straight into aiohttp's request multidict (`_Request`): every header is sent
  as given, after Host, concurrent requests each send their own, a caller's Host still wins.
- A body that arrived with its head is taken without iteration (`read_arrived_body`), and
  the connection goes back to the pool.

Every server runs on 127.0.0.1 in a daemon thread; the only real waits are read timeouts of
0.2-1 s, with margins that a loaded machine cannot eat.
"""

from __future__ import annotations

import asyncio
import socket
import socketserver
import threading
import time
from collections.abc import Awaitable, Iterator
from typing import Any, Callable

import pytest

from aligneai.core.failures import ReadTimeout
from aligneai.core.options import Timeout
from aligneai.core.request import Request
from aligneai.transports import aiohttp_transport
from aligneai.transports.aiohttp_transport import AiohttpResponse, AiohttpTransport

pytestmark = pytest.mark.filterwarnings("error")

# Real time allowed on top of a read timeout on a loaded machine.
SLACK = 3.0


class Server:
    """A threaded HTTP/1.1 server on 127.0.0.1: ``answer(head)`` returns the bytes to send
    for each request head (a list of (delay, bytes) steps), on keep-alive connections."""

    def __init__(self, answer: Callable[[bytes, int], list[tuple[float, bytes]]]) -> None:
        self.heads: list[bytes] = []
        self.connections = 0
        lock = threading.Lock()
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                conn: socket.socket = self.request
                conn.settimeout(5)
                with lock:
                    outer.connections += 1
                buffer = b""
                try:
                    while True:
                        while b"\r\n\r\n" not in buffer:
                            chunk = conn.recv(65536)
                            if not chunk:
                                return
                            buffer += chunk
                        head, buffer = buffer.split(b"\r\n\r\n", 1)
                        length = 0
                        for line in head.split(b"\r\n")[1:]:
                            name, _, value = line.partition(b":")
                            if name.strip().lower() == b"content-length":
                                length = int(value)
                        while len(buffer) < length:
                            buffer += conn.recv(65536)
                        buffer = buffer[length:]
                        with lock:
                            outer.heads.append(head)
                            number = len(outer.heads)
                        for delay, data in answer(head, number):
                            if delay:
                                time.sleep(delay)
                            conn.sendall(data)
                except OSError:
                    return

        class Threaded(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Threaded(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str = "/v1/x") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def ok(body: bytes = b'{"ok": true}') -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def serving(answer: Callable[[bytes, int], list[tuple[float, bytes]]]) -> Iterator[Server]:
    server = Server(answer)
    yield server
    server.close()


def request(
    url: str, *, read: float | None = 5.0, headers: dict[str, str] | None = None
) -> Request:
    headers = headers or {"Accept": "application/json"}
    return Request("GET", url, headers, timeout=Timeout(2.0, read))


def run(use: Callable[[AiohttpTransport], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        transport = AiohttpTransport()
        try:
            return await use(transport)
        finally:
            await transport.aclose()

    return asyncio.run(main())


async def read_all(response: Any) -> bytes:
    try:
        return b"".join([chunk async for chunk in response.aiter_bytes()])
    finally:
        await response.aclose()


# -- the read timeout --------------------------------------------------------------------------


def test_the_connections_use_the_lazy_read_timer(echo: Server) -> None:
    async def use(transport: AiohttpTransport) -> None:
        await read_all(await transport.send(request(echo.url())))
        session = transport.session
        assert session is not None
        factory = session.connector._factory  # type: ignore[union-attr]
        assert factory.func is aiohttp_transport._LazyReadTimeoutHandler

    run(use)


@pytest.fixture
def stalling_head() -> Iterator[Server]:
    """Reads the request and never answers."""
    yield from serving(lambda head, n: [(30.0, b"")])


def test_a_head_that_never_comes_is_a_read_timeout(stalling_head: Server) -> None:
    async def use(transport: AiohttpTransport) -> float:
        start = time.monotonic()
        with pytest.raises(ReadTimeout):
            await transport.send(request(stalling_head.url(), read=0.2))
        return time.monotonic() - start

    elapsed = run(use)
    assert 0.18 <= elapsed <= 0.2 + SLACK


@pytest.fixture
def stalling_body() -> Iterator[Server]:
    """Sends the head and half of the body, then nothing."""
    yield from serving(
        lambda head, n: [(0, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345"), (30.0, b"")]
    )


def test_a_body_that_stalls_is_a_read_timeout(stalling_body: Server) -> None:
    async def use(transport: AiohttpTransport) -> float:
        response = await transport.send(request(stalling_body.url(), read=0.3))
        assert response.status_code == 200
        assert isinstance(response, AiohttpResponse)
        assert response.read_arrived_body() is None  # not all there: iterate instead
        start = time.monotonic()
        with pytest.raises(ReadTimeout):
            await read_all(response)
        return time.monotonic() - start

    elapsed = run(use)
    assert 0.25 <= elapsed <= 0.3 + SLACK


@pytest.fixture
def trickling_body() -> Iterator[Server]:
    """A 12-byte body, one byte every 0.1 s: 1.2 s in all, never 1 s without data."""
    steps = [(0.0, b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n")]
    steps += [(0.1, b"%d" % (i % 10)) for i in range(12)]
    yield from serving(lambda head, n: steps)


def test_the_read_timeout_limits_each_wait_not_the_whole_body(trickling_body: Server) -> None:
    # read=1.0 against a body that takes 1.2 s but never pauses for 1 s: no timeout, as with
    # aiohttp's own per-read timer (the lazy timer re-arms at the deadline data moved).
    async def use(transport: AiohttpTransport) -> tuple[bytes, float]:
        start = time.monotonic()
        response = await transport.send(request(trickling_body.url(), read=1.0))
        return await read_all(response), time.monotonic() - start

    body, elapsed = run(use)
    assert body == b"012345678901"
    assert elapsed >= 1.0  # the body did take longer than one read timeout


@pytest.fixture
def answers_then_stalls() -> Iterator[Server]:
    """Answers the first request on a connection, then stalls on the second."""
    yield from serving(lambda head, n: [(0, ok())] if n == 1 else [(30.0, b"")])


def test_a_shorter_limit_on_a_reused_connection_applies(answers_then_stalls: Server) -> None:
    # The connection's timer was armed for 30 s by the first call: the second call's 0.2 s
    # must not wait for it.
    async def use(transport: AiohttpTransport) -> float:
        first = await transport.send(request(answers_then_stalls.url(), read=30.0))
        assert await read_all(first) == b'{"ok": true}'
        start = time.monotonic()
        with pytest.raises(ReadTimeout):
            await transport.send(request(answers_then_stalls.url(), read=0.2))
        return time.monotonic() - start

    elapsed = run(use)
    assert answers_then_stalls.connections == 1
    assert 0.18 <= elapsed <= 0.2 + SLACK


@pytest.fixture
def closing() -> Iterator[Server]:
    """Answers every request with ``Connection: close`` (one connection per request)."""
    answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    yield from serving(lambda head, n: [(0, answer)])


def test_a_closed_connection_leaves_no_timer_behind(closing: Server) -> None:
    # A timer left armed on a closed connection would keep its protocol alive for up to the
    # read timeout: with one connection per request, thousands of them.
    def armed(loop: asyncio.AbstractEventLoop) -> int:
        scheduled = loop._scheduled  # type: ignore[attr-defined]  # asyncio's timer heap
        return sum(
            1
            for handle in scheduled
            if not handle.cancelled()
            and getattr(handle._callback, "__func__", None)
            is aiohttp_transport._LazyReadTimeoutHandler._on_read_timeout
        )

    async def use(transport: AiohttpTransport) -> int:
        for _ in range(5):
            assert await read_all(await transport.send(request(closing.url(), read=60.0))) == b"ok"
        await asyncio.sleep(0.05)  # let the connections' close callbacks run
        return armed(asyncio.get_running_loop())

    assert run(use) == 0
    assert closing.connections == 5


# -- headers -----------------------------------------------------------------------------------


@pytest.fixture
def echo() -> Iterator[Server]:
    yield from serving(lambda head, n: [(0, ok())])


def header_lines(head: bytes) -> list[tuple[str, str]]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    return [(name, value.strip()) for name, _, value in (line.partition(":") for line in lines)]


def test_every_header_is_sent_as_given_after_host(echo: Server) -> None:
    sent_request = request(
        echo.url(),
        headers={
            "Accept": "application/json",
            "Authorization": "Bearer sk-test",
            "X-AligneAI-Retry-Count": "0",
            "Idempotency-Key": "aligneai-abc",
            "x-lower-case": "kept",
        },
    )
    # Names exactly as the request holds them (Request.headers spells them in lower case).
    expected = list(sent_request.headers.items())
    assert len(expected) == 5

    async def use(transport: AiohttpTransport) -> None:
        await read_all(await transport.send(sent_request))

    run(use)
    sent = header_lines(echo.heads[0])
    assert sent[0] == ("Host", f"127.0.0.1:{echo.port}")
    # Ours in their order (aiohttp adds its automatic ones, e.g. Accept-Encoding, after).
    assert sent[1 : 1 + len(expected)] == expected


def test_a_callers_host_header_wins(echo: Server) -> None:
    async def use(transport: AiohttpTransport) -> None:
        sent = request(echo.url(), headers={"Host": "api.example", "Accept": "*/*"})
        await read_all(await transport.send(sent))

    run(use)
    hosts = [value for name, value in header_lines(echo.heads[0]) if name.lower() == "host"]
    assert hosts == ["api.example"]


def test_concurrent_requests_each_send_their_own_headers(echo: Server) -> None:
    async def one(transport: AiohttpTransport, i: int) -> None:
        sent = request(echo.url(f"/v1/{i}"), headers={"X-Number": str(i)})
        await read_all(await transport.send(sent))

    async def use(transport: AiohttpTransport) -> None:
        await asyncio.gather(*[one(transport, i) for i in range(24)])

    run(use)
    assert len(echo.heads) == 24
    for head in echo.heads:
        path = head.split(b" ")[1].decode()
        numbers = [v for name, v in header_lines(head) if name.lower() == "x-number"]
        assert numbers == [path.rsplit("/", 1)[1]]


# -- the body that arrived with its head -------------------------------------------------------


def test_an_arrived_body_is_taken_whole_and_the_connection_reused(echo: Server) -> None:
    async def use(transport: AiohttpTransport) -> list[bytes | None]:
        bodies = []
        for _ in range(3):
            response = await transport.send(request(echo.url()))
            assert isinstance(response, AiohttpResponse)
            for _ in range(100):  # the body follows the head in the same write; be patient
                body = response.read_arrived_body()
                if body is not None:
                    break
                await asyncio.sleep(0.001)
            bodies.append(body)
            assert response.read_arrived_body() is None  # taken: the response is closed
            await response.aclose()  # idempotent
        return bodies

    assert run(use) == [b'{"ok": true}'] * 3
    assert echo.connections == 1
