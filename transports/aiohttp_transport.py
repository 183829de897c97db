"""The default async transport, on aiohttp (the ``aligneai[aiohttp]`` extra).

The ``ClientSession`` is created lazily inside the running event loop and closed *in that loop*:
a keeper async generator registered with the loop closes it when ``asyncio.run()`` finishes
(``loop.shutdown_asyncgens()``), or when the client is garbage-collected while its loop still
runs. So a client created at module level works across consecutive ``asyncio.run()`` calls
without "Event loop is closed" or "Unclosed client session" warnings, and nothing is ever
scheduled on a foreign loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import socket
import ssl
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

try:
    import aiohttp
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError('The async client needs aiohttp: pip install "aligneai[aiohttp]"') from exc

from aligneai.core.failures import ConnectError, ConnectTimeout, ReadError, ReadTimeout
from aligneai.core.request import Request

from ._net import ProxyRouter, check_max_connections, keepalive_options, shared_ssl_context
from .connection_limits import DEFAULT_ASYNC_MAX_CONNECTIONS

__all__ = ["AiohttpResponse", "AiohttpTransport"]

_CHUNK_SIZE = 256 * 1024

# aiohttp warns (ResourceWarning, an error under ``-W error``) when a bytes body is larger than
# this, and advises a file-like object, which it writes in 64 KiB steps that let the event loop
# run between them. Read from aiohttp, so that a change of its threshold is followed.
_LARGEST_RAW_BODY: int = getattr(aiohttp.payload, "TOO_LARGE_BYTES_BODY", 2**20)


def _body_data(body: bytes | None) -> bytes | io.BytesIO | None:
    """The ``data`` argument for ``body``: bytes as they are, a large body in a fresh BytesIO.

    A new BytesIO for every attempt: aiohttp reads it to the end (and closes it) when it sends.
    """
    if body is None or len(body) <= _LARGEST_RAW_BODY:
        return body
    return io.BytesIO(body)


@functools.lru_cache(maxsize=64)
def _client_timeout(
    total: float | None, connect: float, read: float | None
) -> aiohttp.ClientTimeout:
    # ClientTimeout is frozen: one per distinct limit serves every request.
    return aiohttp.ClientTimeout(total=total, sock_connect=connect, sock_read=read)


def _translate(exc: BaseException) -> ConnectError | ReadError:
    """Map an aiohttp failure to the core's connect (not sent) or read (maybe sent) kind."""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ConnectError(detail)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return ConnectTimeout(detail)
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return ReadTimeout(detail)
    return ReadError(detail)


class AiohttpResponse:
    """An aiohttp response adapted to `AsyncResponse`."""

    __slots__ = ("_closed", "_response")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self._closed = False

    @property
    def status_code(self) -> int:
        """The HTTP status."""
        return self._response.status

    @property
    def headers(self) -> Mapping[str, str]:
        """The response headers."""
        return self._response.headers

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """Yield the decoded body as it arrives; failures become `ReadError`/`ReadTimeout`."""
        if self._closed:
            raise ReadError("the response was closed before its body was read")
        try:
            async for chunk in self._response.content.iter_chunked(_CHUNK_SIZE):
                yield chunk
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise _translate(exc) from exc

    async def aclose(self) -> None:
        """Release the connection to the pool if the body was read, else discard it.

        Idempotent. A connection left in the middle of a body is closed, never reused.
        """
        if self._closed:
            return
        self._closed = True
        response = self._response
        if response.content.is_eof():
            response.release()
        else:
            response.close()


# Closing tasks started by finalizers: referenced until done, so they are never collected mid-way.
_closing: set[asyncio.Task[None]] = set()


def _keepalive_socket(addr_info: Any) -> socket.socket:
    family, type_, proto = addr_info[0], addr_info[1], addr_info[2]
    sock = socket.socket(family=family, type=type_, proto=proto)
    for level, option, value in keepalive_options():
        sock.setsockopt(level, option, value)
    return sock


def _close_in_own_loop(loop: asyncio.AbstractEventLoop, keeper: AsyncGenerator[None, None]) -> None:
    """Close a collected transport's session in the loop it belongs to, if that still runs.

    Runs from ``weakref.finalize``, which keeps the keeper (and so the session) alive until
    now: the session is closed properly instead of being collected with a warning. If the
    loop is closed, ``loop.shutdown_asyncgens()`` already closed the keeper.
    """
    if loop.is_closed():
        return

    def start() -> None:
        task = loop.create_task(keeper.aclose())
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    with contextlib.suppress(RuntimeError):  # the loop may have closed in the meantime
        loop.call_soon_threadsafe(start)


async def _keep_session(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    # Suspended at `yield` for the session's lifetime; the loop's async-generator hooks run the
    # `finally` in the session's own loop at shutdown or when this generator is collected.
    try:
        yield
    finally:
        await session.close()


class AiohttpTransport:
    """An `AsyncTransport` on an aiohttp ``ClientSession``.

    Args:
        max_connections: the most connections open at once (aiohttp's connector ``limit``).
        proxy: send every request through this proxy URL (the same name as `Urllib3Transport`'s).
        trust_env: when no ``proxy`` is given, use ``HTTPS_PROXY`` / ``HTTP_PROXY`` /
            ``NO_PROXY`` from the environment (read now, when the transport is created).
        ssl_context: the TLS context; by default the standard library's verifying context
            (which honours ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``).
        ca_certs: a CA bundle file added to the default context.
        connector_kwargs: extra keyword arguments for ``aiohttp.TCPConnector``.
    """

    def __init__(
        self,
        *,
        max_connections: int = DEFAULT_ASYNC_MAX_CONNECTIONS,
        proxy: str | None = None,
        trust_env: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        ca_certs: str | None = None,
        connector_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self._max_connections = check_max_connections(max_connections)
        self._proxies = ProxyRouter(proxy, trust_env=trust_env)
        self._ssl_context = ssl_context or shared_ssl_context(ca_certs)
        self._connector_kwargs = dict(connector_kwargs or {})
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._keeper: AsyncGenerator[None, None] | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Sessions and TLS contexts don't pickle; a copy uses the default TLS context.
        return {
            "max_connections": self._max_connections,
            "proxies": self._proxies,
            "connector_kwargs": self._connector_kwargs,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            max_connections=state["max_connections"],
            trust_env=False,
            connector_kwargs=state["connector_kwargs"],
        )
        self._proxies = state["proxies"]

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The session of the current loop, if one was created (for inspection in tests)."""
        return self._session

    async def _get_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._session
        if session is not None and self._loop is loop and not session.closed:
            return session
        # First use, or a new loop (e.g. a second asyncio.run()): the old session belonged to
        # a loop that has shut down (its keeper closed it there), so start a new one here.
        connector_kwargs: dict[str, Any] = {
            "limit": self._max_connections,
            "ssl": self._ssl_context,
        }
        # Our socket factory turns TCP keepalive on (aiohttp sets it on server sockets only).
        connector_kwargs["socket_factory"] = _keepalive_socket
        connector_kwargs.update(self._connector_kwargs)
        connector = aiohttp.TCPConnector(**connector_kwargs)
        session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=True,
            trust_env=False,  # proxies are resolved here; never let netrc replace our auth
        )
        keeper = _keep_session(session)
        await keeper.__anext__()
        if self._finalizer is not None:
            self._finalizer.detach()
        # If this transport is collected (its client dropped without close()), close the
        # session in its own loop rather than let aiohttp warn about it.
        self._finalizer = weakref.finalize(self, _close_in_own_loop, loop, keeper)
        self._loop, self._session, self._keeper = loop, session, keeper
        return session

    async def send(self, request: Request) -> AiohttpResponse:
        """Send ``request``; return when the response head has arrived."""
        session = self._session
        if session is None or self._loop is not asyncio.get_running_loop() or session.closed:
            session = await self._get_session()  # one coroutine less on every other call
        timeout = request.timeout
        try:
            response = await session.request(
                request.method,
                request.url,
                data=_body_data(request.body),
                # build_request() made this dict for this attempt; aiohttp copies it anyway.
                headers=request.headers,
                allow_redirects=False,
                proxy=self._proxies.proxy_for(request.url),
                timeout=_client_timeout(timeout.total, timeout.connect, timeout.read),
            )
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise _translate(exc) from exc
        return AiohttpResponse(response)

    async def aclose(self) -> None:
        """Close the session (must be awaited in the loop that used it)."""
        keeper, self._keeper = self._keeper, None
        session, self._session = self._session, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        loop, self._loop = self._loop, None
        if loop is not asyncio.get_running_loop():
            # Another loop's session: its keeper closes it there (or did, at that loop's
            # shutdown); touching it from here would schedule work on a foreign loop.
            return
        if keeper is not None:
            await keeper.aclose()
        elif session is not None:
            await session.close()
