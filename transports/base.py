"""The public transport interface: implement it to plug another HTTP stack into AligneAI.

A transport does plain HTTP and nothing else: no retries, no redirects, no parsing. It sends one
`Request` and returns a response whose body is read on demand. When it fails below HTTP it
raises the core's `ConnectError` (the request was certainly not sent) or `ReadError` (it may
have been), or their timeout variants; the client decides what happens next. Any other
exception from a transport becomes `APIConnectionError` (with the original as ``__cause__``).

A sync response may also offer ``close_after_end()`` (keep the connection for reuse once a
stream's last event was read) and ``abandon()`` (a lock-free close, safe in a finalizer); streams
use them when present, and work without them.

Example, a transport on the standard library (see ``tests/transports/test_custom_transport.py``)::

    class StdlibTransport:
        def send(self, request: Request) -> SyncResponse: ...
        def close(self) -> None: ...

    client = AligneAI(transport=StdlibTransport())
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Protocol, runtime_checkable

from aligneai.core.failures import (
    ConnectError,
    ConnectTimeout,
    ReadError,
    ReadTimeout,
    TransportError,
)
from aligneai.core.request import Request

__all__ = [
    "AsyncResponse",
    "AsyncTransport",
    "ConnectError",
    "ConnectTimeout",
    "ReadError",
    "ReadTimeout",
    "Request",
    "SyncResponse",
    "SyncTransport",
    "TransportError",
]


@runtime_checkable
class SyncResponse(Protocol):
    """A response whose head has arrived; the body is read with `iter_bytes`."""

    @property
    def status_code(self) -> int:
        """The HTTP status."""
        ...

    @property
    def headers(self) -> Mapping[str, str]:
        """The response headers (any case; the core lower-cases the names)."""
        ...

    def iter_bytes(self) -> Iterator[bytes]:
        """Yield the body (decoded from any Content-Encoding) in chunks of any size.

        Raise `ReadError` / `ReadTimeout` if the connection fails or stalls mid-body.
        """
        ...

    def close(self) -> None:
        """Release the connection (back to the pool if the body was read fully). Idempotent."""
        ...


@runtime_checkable
class SyncTransport(Protocol):
    """Sends requests synchronously. Must be safe to call from several threads at once."""

    def send(self, request: Request) -> SyncResponse:
        """Send ``request`` (honouring ``request.timeout``) and return once the head arrived."""
        ...

    def close(self) -> None:
        """Close every pooled connection. Idempotent."""
        ...


@runtime_checkable
class AsyncResponse(Protocol):
    """The asynchronous counterpart of `SyncResponse`."""

    @property
    def status_code(self) -> int:
        """The HTTP status."""
        ...

    @property
    def headers(self) -> Mapping[str, str]:
        """The response headers."""
        ...

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """Yield the body in chunks; raise `ReadError` / `ReadTimeout` on failure."""
        ...

    async def aclose(self) -> None:
        """Release the connection. Idempotent."""
        ...


@runtime_checkable
class AsyncTransport(Protocol):
    """Sends requests from an event loop."""

    async def send(self, request: Request) -> AsyncResponse:
        """Send ``request`` and return once the head arrived."""
        ...

    async def aclose(self) -> None:
        """Close every pooled connection. Idempotent."""
        ...
