"""The default sync transport, on urllib3: pooled, TLS-verified, proxy-aware, fork-safe.

urllib3's own retries and redirects are off (the core decides about retries, and redirects are
not followed so that the Authorization header never travels to another host).
"""

from __future__ import annotations

import functools
import os
import socket
import ssl
import threading
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import urllib3
from urllib3.connection import HTTPConnection
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

from aligneai.core.failures import ConnectError, ConnectTimeout, ReadError, ReadTimeout
from aligneai.core.request import Request

__all__ = [
    "Urllib3Response",
    "Urllib3Transport",
    "default_ssl_context",
    "shared_ssl_context",
    "keepalive_options",
]

# Large reads keep the per-chunk overhead negligible on multi-megabyte answers.
_CHUNK_SIZE = 256 * 1024


def _proxy_bypass(host: str, proxies: Mapping[str, str]) -> bool:
    """Whether ``NO_PROXY`` (as captured in ``proxies``) exempts ``host``."""
    # The standard library's NO_PROXY matcher; typeshed does not declare it.
    bypass: Any = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    return bool(bypass(host, proxies))


def keepalive_options() -> list[tuple[int, int, int]]:
    """Socket options for TCP keepalive, so idle pooled connections notice a dead peer."""
    options = list(HTTPConnection.default_socket_options)
    options.append((socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1))
    for name, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 15), ("TCP_KEEPCNT", 4)):
        if hasattr(socket, name):
            options.append((socket.IPPROTO_TCP, getattr(socket, name), value))
    return options


def default_ssl_context(ca_certs: str | None = None) -> ssl.SSLContext:
    """Return a new verifying TLS context from the standard library.

    It honours ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` as they are now, so corporate CAs work the
    way users expect; ``ca_certs`` adds a CA bundle file.
    """
    context = ssl.create_default_context()
    if ca_certs is not None:
        context.load_verify_locations(cafile=ca_certs)
    return context


@functools.lru_cache(maxsize=16)
def _shared_ssl_context(
    cert_file_env: str | None, cert_dir_env: str | None, ca_certs: str | None
) -> ssl.SSLContext:
    # Keyed by the environment variables' values, so a change to them is honoured by clients
    # created afterwards. Loading the CA store costs tens of milliseconds: clients share it.
    del cert_file_env, cert_dir_env  # part of the cache key; OpenSSL reads the environment
    return default_ssl_context(ca_certs)


def shared_ssl_context(ca_certs: str | None = None) -> ssl.SSLContext:
    """The default TLS context for transports, shared while the certificate settings agree.

    ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` are read when this is called, i.e. when a transport
    (and so a client) is created, not once at import.
    """
    return _shared_ssl_context(
        os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"), ca_certs
    )


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

    __slots__ = ("_incremental", "_response")

    def __init__(self, response: urllib3.BaseHTTPResponse, *, incremental: bool = False) -> None:
        self._response = response
        self._incremental = incremental

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
        response = self._response
        try:
            if self._incremental and not response.chunked and hasattr(response, "read1"):
                # A stream without chunked framing: hand out bytes as they arrive instead of
                # waiting for a full chunk (chunked bodies already yield per HTTP chunk).
                while data := response.read1(_CHUNK_SIZE):
                    yield data
            else:
                yield from response.stream(_CHUNK_SIZE)
        except (HTTPError, OSError) as exc:
            raise _translate(exc) from exc

    def close(self) -> None:
        """Return the connection to the pool when the body was read fully, else drop it."""
        response = self._response
        if response.closed:
            response.release_conn()
        else:
            # Unread body: the connection cannot be reused, close it rather than drain it.
            response.close()
            response.release_conn()


class Urllib3Transport:
    """A `SyncTransport` on one urllib3 pool per process.

    Args:
        max_connections: connections kept per host (the pool's size).
        proxy_url: send every request through this proxy.
        trust_env: when no ``proxy_url`` is given, use ``HTTPS_PROXY`` / ``HTTP_PROXY`` /
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
        max_connections: int = 10,
        proxy_url: str | None = None,
        trust_env: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        ca_certs: str | None = None,
        pool_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(max_connections, bool) or not isinstance(max_connections, int):
            raise TypeError("max_connections: expected an int")
        if max_connections < 1:
            raise ValueError(f"max_connections: must be at least 1, got {max_connections}")
        self._max_connections = max_connections
        self._proxy_url = proxy_url
        self._env_proxies = urllib.request.getproxies_environment() if trust_env else {}
        self._ssl_context = ssl_context or shared_ssl_context(ca_certs)
        self._pool_kwargs = dict(pool_kwargs or {})
        self._lock = threading.Lock()
        self._pools: dict[str | None, urllib3.PoolManager] = {}
        self._pid = os.getpid()

    def __getstate__(self) -> dict[str, Any]:
        # Pools, locks and TLS contexts don't pickle; a copy starts with the default context.
        return {
            "max_connections": self._max_connections,
            "proxy_url": self._proxy_url,
            "env_proxies": self._env_proxies,
            "pool_kwargs": self._pool_kwargs,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            max_connections=state["max_connections"],
            proxy_url=state["proxy_url"],
            trust_env=False,
            pool_kwargs=state["pool_kwargs"],
        )
        self._env_proxies = state["env_proxies"]

    def _proxy_for(self, url: str) -> str | None:
        if self._proxy_url is not None:
            return self._proxy_url
        if not self._env_proxies:
            return None
        parts = urlsplit(url)
        host = parts.hostname or ""
        if _proxy_bypass(host, self._env_proxies):
            return None
        return self._env_proxies.get(parts.scheme) or self._env_proxies.get("all")

    def _forget_parent_pools(self) -> None:
        # After os.fork() the child must never use (or close) the parent's sockets, and the
        # lock may have been held by a parent thread at fork time: start afresh.
        self._lock = threading.Lock()
        self._pools = {}
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

    def send(self, request: Request) -> Urllib3Response:
        """Send ``request``; return when the response head has arrived."""
        timeout = request.timeout
        pool = self._pool(self._proxy_for(request.url))
        try:
            response = pool.urlopen(
                request.method,
                request.url,
                body=request.body,
                headers=dict(request.headers),
                retries=False,
                redirect=False,
                preload_content=False,
                decode_content=True,
                timeout=urllib3.Timeout(
                    connect=timeout.connect, read=timeout.read, total=timeout.total
                ),
            )
        except (HTTPError, OSError) as exc:
            raise _translate(exc) from exc
        return Urllib3Response(response, incremental=request.stream)

    def close(self) -> None:
        """Close every pooled connection (only this process's own)."""
        if self._pid != os.getpid():
            self._forget_parent_pools()
            return
        with self._lock:
            pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.clear()
