"""Response heads, and turning a non-success response into the matching `APIStatusError`."""

from __future__ import annotations

from typing import Any, Callable

import attrs

from ._builders import slot_builder
from ._json import loads
from .errors import APIStatusError, status_error_class
from .headers import Headers
from .request import Request
from .wire import REQUEST_ID

__all__ = ["ResponseHead", "decode_error_body", "make_status_error"]


@attrs.frozen(weakref_slot=False)  # see slot_builder()
class ResponseHead:
    """The status line and headers of a response.

    ``headers`` is a read-only, case-insensitive `Headers` mapping (repeated fields joined by
    ``", "``), built from whatever mapping or ``(name, value)`` pairs the transport gives.
    """

    status_code: int
    headers: Headers = attrs.field(factory=Headers, converter=Headers)

    @property
    def request_id(self) -> str | None:
        """The server's ``x-request-id`` for this response, if it sent one."""
        return self.headers.get(REQUEST_ID)

    @property
    def is_success(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status_code < 300


#: ``ResponseHead(status_code, headers)`` for an int status and a `Headers` already built.
new_response_head: Callable[[int, Headers], ResponseHead] = slot_builder(ResponseHead)


def decode_error_body(body: bytes) -> object:
    """Decode an error body: JSON when it parses, else the text, else None when empty."""
    if not body.strip():
        return None
    try:
        return loads(body)
    except (ValueError, RecursionError):
        return body.decode("utf-8", errors="replace")


def _str_or_none(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _redact_own_key(message: str, request: Request) -> str:
    # A server (or a proxy) that echoes the credentials in its error text must not make them
    # appear in str(exception), logs or tracebacks.
    for name, value in request.headers.items():
        if name.lower() == "authorization":
            token = value.split(" ", 1)[-1].strip()
            if len(token) >= 4 and token in message:
                message = message.replace(token, "***")
    return message


def make_status_error(
    head: ResponseHead, body: bytes, request: Request | None = None
) -> APIStatusError:
    """Build the `APIStatusError` subclass for a non-success response, whatever its body holds.

    The contract's body is ``{"error": {"message", "type", "code", "param"}}``; anything else
    (HTML from a proxy, plain text, an empty body, JSON of another shape) still gives an error
    with a useful message and the raw body attached.
    """
    decoded = decode_error_body(body)
    message: str | None = None
    err_type = code = param = None
    error_obj: Any = decoded.get("error") if isinstance(decoded, dict) else None
    if isinstance(error_obj, dict):
        message = _str_or_none(error_obj.get("message"))
        err_type = _str_or_none(error_obj.get("type"))
        code = _str_or_none(error_obj.get("code"))
        param = _str_or_none(error_obj.get("param"))
    elif isinstance(error_obj, str):
        message = error_obj
    elif isinstance(decoded, dict) and isinstance(decoded.get("message"), str):
        message = decoded["message"]
    if not message:
        if isinstance(decoded, str):
            snippet = " ".join(decoded.split())[:200]
            message = f"HTTP {head.status_code} with a non-JSON body: {snippet}"
        elif decoded is None:
            message = f"HTTP {head.status_code} with an empty body"
        else:
            message = f"HTTP {head.status_code}"
    if request is not None:
        message = _redact_own_key(message, request)
    cls = status_error_class(head.status_code)
    return cls(
        message,
        status_code=head.status_code,
        headers=head.headers,
        body=decoded,
        type=err_type,
        code=code,
        param=param,
        request=request,
        response=head,
    )
