"""The default sync transport, on urllib3: pooled, TLS-verified, proxy-aware, fork-safe.

urllib3's own retries and redirects are off (the core decides about retries, and redirects are
not followed so that the Authorization header never travels to another host).
"""

from __future__ import annotations

import collections
import functools
import os
import socket
import ssl
import threading
import warnings
from collections.abc import Iterator, Mapping
from http.client import HTTPException
from typing import Any

import urllib3
from urllib3 import HTTPConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NameResolutionError,
    NewConnectionError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.exceptions import TimeoutError as Urllib3TimeoutError
from urllib3.util import SKIP_HEADER, Retry, parse_url

from aligneai.core.errors import InvalidArgumentValueError
from aligneai.core.failures import ConnectError, ConnectTimeout, ReadError, ReadTimeout
from aligneai.core.request import Request

from ._net import (
    ProxyRouter,
    check_max_connections,
    default_ssl_context,
    keepalive_options,
    shared_ssl_context,
)
from .connection_limits import DEFAULT_SYNC_MAX_CONNECTIONS

__all__ = [
    "Urllib3Response",
    "Urllib3Transport",
    "default_ssl_context",
    "keepalive_options",
    "shared_ssl_context",
]

# Large reads keep the per-chunk overhead negligible on multi-megabyte answers.
_CHUNK_SIZE = 256 * 1024

# After a stream's last event: how long, and how many bytes, to read what is left of the body
# (normally the 5-byte chunked terminator, already here) to keep the connection for reuse.
_FINISH_WAIT = 0.1
_FINISH_BYTES = 64 * 1024


def _translate(exc: BaseException) -> ConnectError | ReadError:
    """Map a urllib3/socket failure to the core's connect (not sent) or read (maybe sent) kind."""
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    detail = str(exc) or type(exc).__name__
    # NewConnectionError subclasses ConnectTimeoutError in urllib3 2: test it first.
    if isinstance(exc, (NewConnectionError, NameResolutionError, ProxyError, SSLError)):
        return ConnectError(detail)
    if isinstance(exc, ConnectTimeoutError):
        return ConnectTimeout(detail)
    if isinstance(exc, (ReadTimeoutError, Urllib3TimeoutError, socket.timeout)):
        return ReadTimeout(detail)
    return ReadError(detail)


class Urllib3Response:
    """A urllib3 response adapted to `SyncResponse`."""

    __slots__ = ("_abandoned", "_closed", "_incremental", "_response")

    def __init__(
        self,
        response: urllib3.BaseHTTPResponse,
        *,
        incremental: bool = False,
        abandoned: collections.deque[urllib3.BaseHTTPResponse] | None = None,
    ) -> None:
        self._response = response
        self._incremental = incremental
        self._abandoned = abandoned
        self._closed = False

    @property
    def status_code(self) -> int:
        """The HTTP status."""
        return self._response.status

    @property
    def headers(self) -> Mapping[str, str]:
        """The response headers."""
        return self._response.headers

    def iter_bytes(self) -> Iterator[bytes]:
        """Yield the decoded body in chunks; failures become `ReadError`/`ReadTimeout`."""
        if self._closed:
            # urllib3 would fail with an AttributeError on its released file object.
            raise ReadError("the response was closed before its body was read")
        response = self._response
        try:
            if self._incremental and not response.chunked and hasattr(response, "read1"):
                # A stream without chunked framing: hand out bytes as they arrive instead of
                # waiting for a full chunk (chunked bodies already yield per HTTP chunk).
                while data := response.read1(_CHUNK_SIZE):
                    yield data
            else:
                yield from response.stream(_CHUNK_SIZE)
        except (HTTPError, HTTPException, OSError) as exc:
            raise _translate(exc) from exc

    def close_after_end(self) -> None:
        """Close once the caller has seen the end of the content (a stream's ``done`` event).

        What remains of the body is then only its framing (the chunked terminator), which a
        server sends with the last event: read it if it is there at once, so that the
        connection goes back to the pool instead of being discarded. A server that keeps the
        body open, or keeps sending, costs at most `_FINISH_WAIT` before the connection is
        discarded as `close` does.
        """
        response = self._response
        # A body without chunks or a length ends when the server closes: no reuse either way.
        framed = response.chunked or getattr(response, "length_remaining", None) is not None
        connection = getattr(response, "connection", None)
        sock = getattr(connection, "sock", None)
        if not self._closed and not response.closed and framed and sock is not None:
            timeout = sock.gettimeout()
            try:
                sock.settimeout(_FINISH_WAIT)
                left = _FINISH_BYTES
                for chunk in response.stream(_FINISH_BYTES):
                    left -= len(chunk)
                    if left < 0:
                        break
            except Exception:  # anything but a clean end: `close` discards the connection
                pass
            finally:
                if getattr(connection, "sock", None) is sock:  # still open: as it was
                    sock.settimeout(timeout)
        self.close()

    def abandon(self) -> None:
        """Discard the connection from a finalizer (a stream dropped unclosed).

        The garbage collector may run a finalizer while the interrupted code holds the pool's
        lock, so only the socket is closed here, which takes no lock; the pool gets its slot
        back at the transport's next `send`. Idempotent, like `close`.
        """
        if self._closed:
            return
        if self._abandoned is None:
            self.close()
            return
        self._closed = True
        response = self._response
        if not response.closed:  # a body read to its end keeps its connection for reuse
            response.close()  # the socket too
        self._abandoned.append(response)  # deque.append: atomic, takes no lock

    def close(self) -> None:
        """Return the connection to the pool when the body was read fully, else discard it.

        Idempotent. A connection left in the middle of a body can never carry another request:
        its socket is closed (not drained: the rest may be long, or never come), and urllib3
        gets back only the emptied connection object, which opens a new socket when next used.
        """
        if self._closed:
            return
        self._closed = True
        response = self._response
        if not response.closed:
            response.close()  # closes the socket too
        response.release_conn()


# A Retry that never retries (the core decides), made once instead of on every call.
_NO_RETRIES = Retry(total=False, redirect=False)


@functools.lru_cache(maxsize=256)
def _split_url(url: str) -> tuple[str, str, int | None, str]:
    parts = parse_url(url)
    return parts.scheme or "http", parts.host or "", parts.port, parts.request_uri


@functools.lru_cache(maxsize=64)
def _urllib3_timeout(connect: float, read: float | None, total: float | None) -> urllib3.Timeout:
    # Shared safely: urllib3 clones a Timeout before starting its clock.
    return urllib3.Timeout(connect=connect, read=read, total=total)


class Urllib3Transport:
    """A `SyncTransport` on one urllib3 pool per process.

    Args:
        max_connections: connections kept open per host (urllib3's pool ``maxsize``; more
            may open at once under load, the extra ones are closed after use).
        proxy: send every request through this proxy URL (the same name as
            `AiohttpTransport`'s). ``proxy_url``, its first name, still works but warns
            (`DeprecationWarning`).
        trust_env: when no ``proxy`` is given, use ``HTTPS_PROXY`` / ``HTTP_PROXY`` /
            ``NO_PROXY`` from the environment (read now, when the transport is created).
        ssl_context: the TLS context; by default the standard library's verifying context.
        ca_certs: a CA bundle file added to the default context (ignored with ``ssl_context``).
        pool_kwargs: extra keyword arguments for ``urllib3.PoolManager``.

    Safe to share between threads. After ``os.fork()`` the child builds a fresh pool on first
    use instead of sharing the parent's sockets.
    """

    def __init__(
        self,
        *,
        max_connections: int = DEFAULT_SYNC_MAX_CONNECTIONS,
        proxy: str | None = None,
        trust_env: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        ca_certs: str | None = None,
        pool_kwargs: Mapping[str, Any] | None = None,
        proxy_url: str | None = None,
    ) -> None:
        if proxy_url is not None:
            if proxy is not None:
                raise InvalidArgumentValueError(
                    "proxy_url", "is the old name of proxy: pass only proxy"
                )
            warnings.warn(
                "Urllib3Transport(proxy_url=...) is deprecated: use proxy=..., the name "
                "AiohttpTransport uses too",
                DeprecationWarning,
                stacklevel=2,
            )
            proxy = proxy_url
        self._max_connections = check_max_connections(max_connections)
        self._proxies = ProxyRouter(proxy, trust_env=trust_env)
        self._ssl_context = ssl_context or shared_ssl_context(ca_certs)
        self._pool_kwargs = dict(pool_kwargs or {})
        self._lock = threading.Lock()
        self._pools: dict[str | None, urllib3.PoolManager] = {}
        self._host_pools: dict[tuple[str, str, int | None], HTTPConnectionPool] = {}
        # Responses discarded by finalizers, whose connections go back to the pool at the next
        # send (see `Urllib3Response.abandon`).
        self._abandoned: collections.deque[urllib3.BaseHTTPResponse] = collections.deque()
        self._pid = os.getpid()

    def __getstate__(self) -> dict[str, Any]:
        # Pools, locks and TLS contexts don't pickle; a copy uses the default TLS context.
        return {
            "max_connections": self._max_connections,
            "proxies": self._proxies,
            "pool_kwargs": self._pool_kwargs,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            max_connections=state["max_connections"],
            trust_env=False,
            pool_kwargs=state["pool_kwargs"],
        )
        self._proxies = state["proxies"]

    def _forget_parent_pools(self) -> None:
        # After os.fork() the child must never use (or close) the parent's sockets, and the
        # lock may have been held by a parent thread at fork time: start afresh.
        self._lock = threading.Lock()
        self._pools = {}
        self._host_pools = {}
        self._abandoned = collections.deque()
        self._pid = os.getpid()

    def _pool(self, proxy: str | None) -> urllib3.PoolManager:
        if self._pid != os.getpid():
            self._forget_parent_pools()
        pool = self._pools.get(proxy)
        if pool is not None:
            return pool
        with self._lock:
            pool = self._pools.get(proxy)
            if pool is None:
                kwargs: dict[str, Any] = {
                    "maxsize": self._max_connections,
                    "block": False,
                    "retries": False,
                    "ssl_context": self._ssl_context,
                    "socket_options": keepalive_options(),
                }
                kwargs.update(self._pool_kwargs)
                if proxy is None:
                    pool = urllib3.PoolManager(**kwargs)
                else:
                    pool = urllib3.ProxyManager(proxy, **kwargs)
                self._pools[proxy] = pool
            return pool

    def _host_pool(self, url: str) -> tuple[HTTPConnectionPool, str]:
        """The connection pool for ``url``'s origin, and the request target to send."""
        scheme, host, port, target = _split_url(url)
        key = (scheme, host, port)
        pool = self._host_pools.get(key)
        if pool is None or pool.pool is None:  # new origin, or a pool the manager closed
            pool = self._pool(None).connection_from_host(host, port, scheme)
            self._host_pools[key] = pool
        return pool, target

    def send(self, request: Request) -> Urllib3Response:
        """Send ``request``; return when the response head has arrived."""
        if self._pid != os.getpid():
            self._forget_parent_pools()
        if self._abandoned:
            self._release_abandoned()
        timeout = request.timeout
        headers: Mapping[str, str] = request.headers
        if "user-agent" not in headers:
            # Removed by the caller (a None header value): urllib3 would send its own, which
            # names urllib3's version; SKIP_HEADER tells it to send none.
            headers = {**headers, "user-agent": SKIP_HEADER}
        options: dict[str, Any] = {
            "body": request.body,
            # build_request() made this mapping for this attempt alone; urllib3 only reads it.
            "headers": headers,
            "retries": _NO_RETRIES,
            "redirect": False,
            "preload_content": False,
            "decode_content": True,
            "timeout": _urllib3_timeout(timeout.connect, timeout.read, timeout.total),
        }
        proxy = self._proxies.proxy_for(request.url)
        try:
            if proxy is None:
                # Straight to the origin's pool: PoolManager.urlopen would parse the URL and
                # look the pool up again on every call, a measurable share of a small call.
                pool, target = self._host_pool(request.url)
                response = pool.urlopen(request.method, target, assert_same_host=False, **options)
            else:
                response = self._pool(proxy).urlopen(request.method, request.url, **options)
        except (HTTPError, HTTPException, OSError) as exc:
            raise _translate(exc) from exc
        return Urllib3Response(response, incremental=request.stream, abandoned=self._abandoned)

    def _release_abandoned(self) -> None:
        abandoned = self._abandoned
        while abandoned:
            try:
                response = abandoned.popleft()
            except IndexError:  # another thread took the last one
                return
            response.release_conn()  # a closed connection: urllib3 reconnects it when reused

    def close(self) -> None:
        """Close every pooled connection (only this process's own)."""
        if self._pid != os.getpid():
            self._forget_parent_pools()
            return
        with self._lock:
            pools, self._pools = self._pools, {}
            self._host_pools = {}
        self._release_abandoned()
        for pool in pools.values():
            pool.clear()
