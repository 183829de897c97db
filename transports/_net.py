"""Network settings both transports share: TLS contexts, TCP keepalive, proxies, pool limits."""

from __future__ import annotations

import functools
import os
import socket
import ssl
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from aligneai.core.errors import InvalidArgumentTypeError, InvalidArgumentValueError

__all__ = [
    "ProxyRouter",
    "check_max_connections",
    "default_ssl_context",
    "keepalive_options",
    "shared_ssl_context",
]


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


def keepalive_options() -> list[tuple[int, int, int]]:
    """Socket options for pooled connections: TCP_NODELAY, and TCP keepalive.

    Keepalive lets an idle pooled connection notice a dead peer.
    """
    options = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    options.append((socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1))
    for name, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 15), ("TCP_KEEPCNT", 4)):
        if hasattr(socket, name):
            options.append((socket.IPPROTO_TCP, getattr(socket, name), value))
    return options


def check_max_connections(value: object) -> int:
    """Validate a transport's ``max_connections`` argument."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentTypeError(
            "max_connections", f"expected an int, got {type(value).__name__}"
        )
    if value < 1:
        raise InvalidArgumentValueError("max_connections", f"must be at least 1, got {value}")
    return value


class ProxyRouter:
    """Chooses the proxy for a URL: the explicit one, else the environment's, else none.

    ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` / ``NO_PROXY`` are read once, when the
    router (and so the transport) is created. Picklable.
    """

    def __init__(self, proxy: str | None = None, *, trust_env: bool = True) -> None:
        self.proxy = proxy
        self.env: dict[str, str] = (
            urllib.request.getproxies_environment() if trust_env and proxy is None else {}
        )

    def proxy_for(self, url: str) -> str | None:
        """The proxy URL to use for ``url``, or None to connect directly."""
        if self.proxy is not None:
            return self.proxy
        if not self.env:
            return None
        parts = urlsplit(url)
        if _proxy_bypass(parts.hostname or "", self.env):
            return None
        return self.env.get(parts.scheme) or self.env.get("all")


def _proxy_bypass(host: str, proxies: Mapping[str, str]) -> bool:
    """Whether ``NO_PROXY`` (as captured in ``proxies``) exempts ``host``."""
    # The standard library's NO_PROXY matcher; typeshed does not declare it.
    bypass: Any = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    return bool(bypass(host, proxies))
