"""Guards around calls into a transport: nothing but an `APIError` reaches the caller.

Shared by the drivers (`run_sync`, `run_async`) and the streams, which read a response after
the driver has handed it over. Imports no event loop library, so the sync client stays free
of asyncio.
"""

from __future__ import annotations

from aligneai.core.errors import APIError
from aligneai.core.failures import ReadError, TransportError
from aligneai.core.request import Request, redact_headers

from .base import AsyncResponse, SyncResponse

__all__ = ["PASS_THROUGH", "aclose_quietly", "close_quietly", "stray_failure"]

# What may leave a transport call unchanged: errors already meant for the user, and warnings
# (under ``-W error`` a warning is the user's own signal; disguising it would hide it).
PASS_THROUGH = (TransportError, APIError, Warning)

_MIN_MASKED_TOKEN = 6


def stray_failure(exc: Exception, request: Request | None = None) -> ReadError:
    """The transport failure standing for ``exc``, an exception of none of the core's kinds.

    Our transports translate what their HTTP library raises, but a library can still raise
    something else (urllib3 let a ``ValueError`` out of a pooled connection whose socket had
    been finalised) and a user's transport anything at all: callers must only ever see an
    `APIError`. Whether the request went out is unknown, so it counts as a read failure. The
    original stays attached as ``__cause__``, unless its message holds a credential of the
    request (http.client quotes a rejected header value), which is then masked.
    """
    detail = f"{type(exc).__name__}: {exc}"
    masked = detail
    if request is not None:
        redacted = redact_headers(request.headers)
        for name, value in request.headers.items():
            if redacted.get(name) == value or not value.strip():
                continue
            masked = masked.replace(value, "***")
            # The bare token too, unless so short that masking it would garble the message.
            token = value.split(" ", 1)[-1].strip()
            if len(token) >= _MIN_MASKED_TOKEN:
                masked = masked.replace(token, "***")
    failure = ReadError(masked)
    if masked == detail:
        failure.__cause__ = exc
    return failure


def close_quietly(response: SyncResponse) -> None:
    """Close ``response``; a failure to close a connection being given up is not the caller's."""
    try:
        response.close()
    except Warning:
        raise
    except Exception:  # the connection is dropped either way
        pass


async def aclose_quietly(response: AsyncResponse) -> None:
    """Close ``response``; a failure to close a connection being given up is not the caller's."""
    try:
        await response.aclose()
    except Warning:
        raise
    except Exception:  # the connection is dropped either way
        pass
