"""What a transport raises when a request fails below HTTP, and how that becomes an `APIError`.

A transport (ours or a user's) raises `ConnectError` when the request certainly never reached
the server (DNS failure, connection refused, TLS handshake failure, connect timeout) and
`ReadError` when it may have (the connection broke or timed out after sending began). The
retry logic treats them apart: only the second can have had an effect on the server.
"""

from __future__ import annotations

from .errors import APIConnectionError, APITimeoutError
from .request import Request

__all__ = [
    "ConnectError",
    "ConnectTimeout",
    "ReadError",
    "ReadTimeout",
    "TransportError",
    "to_api_error",
]


class TransportError(Exception):
    """Base of the failures a transport reports; never shown to users as is."""


class ConnectError(TransportError):
    """The connection could not be made: the request was not sent."""


class ConnectTimeout(ConnectError):
    """The connect timeout expired: the request was not sent."""


class ReadError(TransportError):
    """The connection failed after the request started: the server may have received it."""


class ReadTimeout(ReadError):
    """The read timeout (or the attempt's share of the total deadline) expired."""


def to_api_error(failure: TransportError, request: Request | None = None) -> APIConnectionError:
    """The user-facing error for a transport failure (`APITimeoutError` for timeouts)."""
    detail = str(failure) or type(failure).__name__
    if isinstance(failure, (ConnectTimeout, ReadTimeout)):
        return APITimeoutError(f"Request timed out: {detail}", request=request)
    return APIConnectionError(f"Connection error: {detail}", request=request)
