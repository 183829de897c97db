"""The `Request` value object and the pure functions that build one per attempt."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional
from urllib.parse import urlencode

import attrs

from ._json import dumps
from ._version import __version__
from .headers import redact
from .options import ClientOptions, Timeout

__all__ = [
    "PlatformInfo",
    "Request",
    "base_headers",
    "build_request",
    "canonicalize_headers",
    "join_url",
    "merge_headers",
    "pop_header",
    "redact_headers",
    "set_header",
]


def set_header(headers: dict[str, str], name: str, value: str) -> None:
    """Set ``name`` in ``headers``, replacing any spelling of it (header names ignore case)."""
    lowered = name.lower()
    for key in [k for k in headers if k.lower() == lowered and k != name]:
        del headers[key]
    headers[name] = value


def merge_headers(headers: dict[str, str], extra: Mapping[str, str]) -> None:
    """Apply ``extra`` over ``headers``: a later value replaces an earlier one whatever its case."""
    for name, value in extra.items():
        set_header(headers, name, value)


def pop_header(headers: dict[str, str], name: str) -> str | None:
    """Remove every spelling of ``name``; return the last value found, if any."""
    lowered = name.lower()
    value = None
    for key in [k for k in headers if k.lower() == lowered]:
        value = headers.pop(key)
    return value


# Headers the client sets per attempt: kept in one spelling so that they can be assigned
# directly on the hot path instead of searched for case-insensitively.
_CANONICAL = {
    name.lower(): name
    for name in ("Accept", "Content-Type", "Idempotency-Key", "X-AligneAI-Retry-Count")
}


def canonicalize_headers(headers: dict[str, str]) -> None:
    """Respell the client's per-attempt headers canonically (e.g. ``accept`` -> ``Accept``)."""
    for key in [k for k in headers if k.lower() in _CANONICAL and k not in _CANONICAL.values()]:
        headers[_CANONICAL[key.lower()]] = headers.pop(key)


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``headers`` with credentials replaced by ``***``, for logs, reprs and errors."""
    return redact(headers)


@attrs.frozen(repr=False)
class Request:
    """One HTTP request, ready for a transport to send.

    Attributes:
        method: ``GET`` or ``POST``.
        url: the absolute URL, query included.
        headers: the headers to send (treat as read-only).
        body: the encoded body, or None.
        timeout: the limits for this attempt; ``timeout.total``, when set, is the time left
            before the call's overall deadline, and the whole attempt must end within it.
        stream: True when the caller will read the body incrementally (Server-Sent Events).
    """

    method: str
    url: str
    headers: Mapping[str, str]
    body: Optional[bytes] = None  # noqa: UP045 - attrs evaluates annotations on 3.9
    timeout: Timeout = attrs.field(factory=Timeout)
    stream: bool = False

    def __repr__(self) -> str:
        # Never show the Authorization header: reprs end up in logs and tracebacks.
        return f"<Request {self.method} {self.url} headers={redact_headers(self.headers)!r}>"

    def __reduce__(self) -> tuple[Any, ...]:
        # Requests travel inside exceptions (to other processes, into error trackers): a
        # pickled copy carries no credentials. It is for inspection, not for re-sending.
        return (
            Request,
            (
                self.method,
                self.url,
                redact_headers(self.headers),
                self.body,
                self.timeout,
                self.stream,
            ),
        )


@attrs.frozen
class PlatformInfo:
    """Facts about the running interpreter, sent as ``X-AligneAI-*`` headers.

    The caller collects them (see ``aligneai.core.platform.current_platform``) so that this
    module reads nothing from the environment itself.
    """

    os: str
    arch: str
    runtime: str
    runtime_version: str


def base_headers(options: ClientOptions, platform: PlatformInfo) -> dict[str, str]:
    """The headers every request of a client carries, computed once per client."""
    headers = {
        "Accept": "application/json",
        "Content-Type": "application/json",
        "User-Agent": f"aligneai-python/{__version__}",
        "X-AligneAI-Lang": "python",
        "X-AligneAI-Package-Version": __version__,
        "X-AligneAI-OS": platform.os,
        "X-AligneAI-Arch": platform.arch,
        "X-AligneAI-Runtime": platform.runtime,
        "X-AligneAI-Runtime-Version": platform.runtime_version,
    }
    headers["Authorization"] = f"Bearer {options.api_key}"
    # The caller's explicit headers win, including Authorization (e.g. for a gateway); a None
    # value removes the field, the library's own included.
    for name, value in options.default_headers.items():
        if value is None:
            pop_header(headers, name)
        else:
            set_header(headers, name, value)
    canonicalize_headers(headers)
    return headers


def join_url(base_url: str, path: str, query: Mapping[str, Any] | None = None) -> str:
    """Join ``path`` to ``base_url`` keeping the base URL's own path (``/v1`` stays)."""
    url = base_url.rstrip("/") + "/" + path.lstrip("/")
    items = [(k, _query_value(v)) for k, v in (query or {}).items() if v is not None]
    if items:
        url += "?" + urlencode(items, doseq=True)
    return url


def _query_value(value: Any) -> Any:
    # Booleans as JSON spells them (not "True"), in a list of repeated parameters too.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return [_query_value(item) for item in value]
    return value


def encode_json_body(body: Mapping[str, Any]) -> bytes:
    """Encode a JSON request body compactly (UTF-8, no ASCII escaping)."""
    return dumps(body)


def build_request(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | None,
    timeout: Timeout,
    retry_count: int,
    idempotency_key: str | None,
    stream: bool = False,
) -> Request:
    """Build the request for one attempt of a call.

    ``headers`` are the call's headers (client headers plus any extra ones); this adds
    ``X-AligneAI-Retry-Count`` and, when given, the ``Idempotency-Key`` that stays the same
    on every retry of one call.
    """
    # `headers` went through canonicalize_headers(), so plain assignment cannot duplicate.
    attempt_headers = dict(headers)
    attempt_headers["X-AligneAI-Retry-Count"] = str(retry_count)
    if idempotency_key is not None:
        attempt_headers["Idempotency-Key"] = idempotency_key
    if stream:
        attempt_headers["Accept"] = "text/event-stream"
    if body is None:
        attempt_headers.pop("Content-Type", None)
    return Request(
        method=method,
        url=url,
        headers=attempt_headers,
        body=body,
        timeout=timeout,
        stream=stream,
    )
