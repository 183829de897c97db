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
import contextvars
import functools
import inspect
import io
import socket
import ssl
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

try:
    import aiohttp
    from aiohttp.client_proto import ResponseHandler
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError('The async client needs aiohttp: pip install "aligneai[aiohttp]"') from exc

from aligneai.core.failures import ConnectError, ConnectTimeout, ReadError, ReadTimeout
from aligneai.core.request import Request

from ._net import ProxyRouter, check_max_connections, keepalive_options, shared_ssl_context
from .connection_limits import DEFAULT_ASYNC_MAX_CONNECTIONS

__all__ = ["AiohttpResponse", "AiohttpTransport"]

_CHUNK_SIZE = 256 * 1024
_has_field = dict.__contains__

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


# The headers of the request being sent by the current task (see `_Request`). A context
# variable, so that concurrent tasks sharing a session never see each other's headers.
_pending_headers: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "aligneai_pending_headers", default=None
)


class _Request(aiohttp.ClientRequest):
    """aiohttp's request, taking our headers in one C-level step.

    Handed to ``session.request()``, a mapping of headers is converted to a multidict and
    merged one header at a time in Python, twice (the session's merge with its default
    headers, then the request's own copy): about 2 k instructions per header, and every call
    sends 13 of them. Our session has no default headers, so the transport passes none and
    hands the attempt's headers over through `_pending_headers`; they are added after
    ``Host`` with one ``extend``. The result is the multidict aiohttp would build (Host
    first, then the headers in their order); a ``Host`` header of the caller's takes
    aiohttp's own path, which lets it replace the computed one.

    Only ``update_headers`` is overridden, not ``__init__``: aiohttp calls the constructor
    with some 25 keywords, and an override taking them as ``**kwargs`` cost about 100 string
    comparisons per request (CPython matches a keyword that is not a named parameter by
    value, against every parameter, before it goes into ``**kwargs``).
    """

    def update_headers(self, headers: Any) -> None:
        """Set ``Host``, then the transport's headers in one step (aiohttp's way otherwise)."""
        pending = _pending_headers.get()
        if pending is None or headers:  # not sent by our transport, or headers of aiohttp's
            super().update_headers(headers)
            return
        if _has_field(pending, "host"):  # the caller's own Host: aiohttp's way replaces it
            super().update_headers(pending)
            return
        # The Host header alone, as aiohttp computes it (named, not through super(): this
        # runs on every request).
        _update_headers(self, None)
        self.headers.extend(pending)


_update_headers = aiohttp.ClientRequest.update_headers


# The methods of aiohttp's protocol that `_LazyReadTimeoutHandler` overrides (the same from
# aiohttp 3.12 to 3.14); if a release changes them, aiohttp's own timer is used instead.
_HANDLER_HOOKS = ("_reschedule_timeout", "_drop_timeout", "_on_read_timeout", "start_timeout")


class _LazyReadTimeoutHandler(ResponseHandler):
    """aiohttp's connection protocol with a lazily re-armed read (``sock_read``) timer.

    The read timeout limits each wait for data: aiohttp enforces it by cancelling its timer
    and scheduling a new one at the start of a response and on every read, and cancels it at
    the end: two timers created and two cancelled per small call (``call_later`` and
    ``cancel`` are pure Python in asyncio), where the timeout almost never fires. This
    protocol keeps one timer per connection instead and only moves a deadline: starting a
    wait or receiving data sets ``deadline = now + read``, the end of a response clears it.
    When the timer fires it compares: no wait in progress, it stops; data arrived since it
    was armed, it re-arms at the new deadline; else the wait really timed out and aiohttp's
    handler raises (`ReadTimeout` for the caller). The same semantics as aiohttp's, for a
    clock read per event instead of timer churn.
    """

    _read_deadline: float | None = None

    def _reschedule_timeout(self) -> None:
        timeout = self._read_timeout
        if not timeout:
            self._read_deadline = None
            return
        loop = self._loop
        deadline = loop.time() + timeout
        self._read_deadline = deadline
        handle = self._read_timeout_handle
        # A timer due after the new deadline (a shorter limit than the last response's) is
        # replaced; an earlier one re-arms itself when it fires.
        if handle is None or handle.when() > deadline:
            if handle is not None:
                handle.cancel()
            self._read_timeout_handle = loop.call_at(deadline, self._on_read_timeout)

    def _drop_timeout(self) -> None:
        # No wait in progress: the timer stays armed (the next response on this connection
        # is likely to need it) and stops by itself when it fires.
        self._read_deadline = None

    def connection_lost(self, exc: BaseException | None) -> None:
        """Stop the timer for good: a closed connection has no use for it.

        Left armed, it would keep this protocol alive until it fires.
        """
        super().connection_lost(exc)
        handle = self._read_timeout_handle
        if handle is not None:
            handle.cancel()
            self._read_timeout_handle = None

    def _on_read_timeout(self) -> None:
        self._read_timeout_handle = None
        deadline = self._read_deadline
        if deadline is None:
            return
        if self._loop.time() < deadline:
            self._read_timeout_handle = self._loop.call_at(deadline, self._on_read_timeout)
            return
        self._read_deadline = None
        super()._on_read_timeout()


def _install_lazy_read_timer(connector: aiohttp.BaseConnector, loop: Any) -> None:
    """Make ``connector`` open its connections with `_LazyReadTimeoutHandler`, if it can.

    The connector's protocol factory is private: it is replaced only when it is aiohttp's
    stock one and the protocol has the hooks the subclass overrides; otherwise nothing
    changes (aiohttp's own timer keeps the same semantics, at its cost).
    """
    factory = getattr(connector, "_factory", None)  # private-ok: no public protocol factory
    if not (isinstance(factory, functools.partial) and factory.func is ResponseHandler):
        return
    if not all(hasattr(ResponseHandler, name) for name in _HANDLER_HOOKS):
        return  # pragma: no cover - depends on the aiohttp release
    patched: Any = connector  # a private attribute, typed differently across releases
    patched._factory = functools.partial(  # private-ok: no public protocol factory
        _LazyReadTimeoutHandler, loop=loop
    )


def _request_coroutine(session: aiohttp.ClientSession) -> Any:
    """What performs a request on ``session``: its ``_request`` coroutine, if it has one.

    ``session.request(...)`` only wraps ``session._request(...)`` in a context manager, which
    awaiting unwraps again; calling the coroutine directly also passes our keywords as named
    parameters instead of through ``request``'s ``**kwargs`` (a keyword that is not a named
    parameter is matched by value against every parameter before it goes there). Without
    that private method (another aiohttp), the public ``request``.
    """
    perform = getattr(session, "_request", None)  # private-ok: request() only wraps it
    if perform is not None and inspect.iscoroutinefunction(perform):
        return perform
    return session.request  # pragma: no cover - depends on the aiohttp release


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

    def read_arrived_body(self) -> bytes | None:
        """The whole body if it has already arrived (then the connection is released), else None.

        A small answer usually comes in the same packet as its head, so by the time `send`
        returns, aiohttp holds all of it: a driver takes it here, with no await, instead of
        iterating `aiter_bytes` (an async generator over aiohttp's chunk iterator). None
        (the body still coming, a failed body, a closed response) means: use `aiter_bytes`.
        """
        if self._closed:
            return None
        content = self._response.content
        if not content.is_eof() or content.exception() is not None:
            return None
        body = content.read_nowait()
        self._closed = True
        self._response.release()
        return body

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
        self._perform: Any = None  # _request_coroutine() of the session
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
        _install_lazy_read_timer(connector, loop)
        session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=True,
            trust_env=False,  # proxies are resolved here; never let netrc replace our auth
            request_class=_Request,
        )
        keeper = _keep_session(session)
        await keeper.__anext__()
        if self._finalizer is not None:
            self._finalizer.detach()
        # If this transport is collected (its client dropped without close()), close the
        # session in its own loop rather than let aiohttp warn about it.
        self._finalizer = weakref.finalize(self, _close_in_own_loop, loop, keeper)
        self._loop, self._session, self._keeper = loop, session, keeper
        self._perform = _request_coroutine(session)
        return session

    async def send(self, request: Request) -> AiohttpResponse:
        """Send ``request``; return when the response head has arrived."""
        session = self._session
        if session is None or self._loop is not asyncio.get_running_loop() or session.closed:
            session = await self._get_session()  # one coroutine less on every other call
        timeout = request.timeout
        # The headers reach aiohttp's request directly (see `_Request`).
        headers = request.headers
        extra: dict[str, Any] = {}
        # A Headers holds lower-case names: dict's own lookup (no method call) is exact.
        if not _has_field(headers, "user-agent") or (
            request.body and not _has_field(headers, "content-type")
        ):
            # Removed by the caller (a None header value): aiohttp would send its own
            # (naming the Python and aiohttp versions; application/octet-stream for a body).
            extra["skip_auto_headers"] = ("User-Agent", "Content-Type")
        body, url, proxies = request.body, request.url, self._proxies
        token = _pending_headers.set(headers)
        try:
            response = await self._perform(
                request.method,
                url,
                data=body if body is None or len(body) <= _LARGEST_RAW_BODY else _body_data(body),
                allow_redirects=False,
                # No proxy configured (the usual case): no call to find none.
                proxy=None if not (proxies.proxy or proxies.env) else proxies.proxy_for(url),
                timeout=_client_timeout(timeout.total, timeout.connect, timeout.read),
                **extra,
            )
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise _translate(exc) from exc
        finally:
            _pending_headers.reset(token)
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
