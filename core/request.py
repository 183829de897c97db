"""The `Request` value object and the pure functions that build one per attempt."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, Callable, Optional
from urllib.parse import urlencode

import attrs

from ._builders import slot_builder
from ._json import dumps
from ._version import __version__
from .headers import Headers, redact
from .options import ClientOptions, Timeout
from .wire import EVENT_STREAM_CONTENT_TYPE, IDEMPOTENCY_KEY, RETRY_COUNT

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


def _as_headers(value: Mapping[str, str]) -> Headers:
    # A request built by hand may pass a plain dict; the core's own builders pass Headers.
    return value if type(value) is Headers else Headers(value)


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``headers`` with credentials replaced by ``***`` (see `headers.redact`)."""
    return redact(headers)


# -- deprecated plain-dict helpers: `Headers` (case-insensitive, `merged`) replaces them --------


def _deprecated(name: str) -> None:
    warnings.warn(
        f"aligneai.core.request.{name}() is deprecated: use aligneai.core.headers.Headers "
        "(lookups ignore case; Headers.merged() sets and removes fields)",
        DeprecationWarning,
        stacklevel=3,
    )


def set_header(headers: dict[str, str], name: str, value: str) -> None:
    """Deprecated: set ``name``, replacing any spelling of it. Use `Headers.merged`."""
    _deprecated("set_header")
    _set(headers, name, value)


def merge_headers(headers: dict[str, str], extra: Mapping[str, str]) -> None:
    """Deprecated: apply ``extra`` over ``headers``, whatever the case. Use `Headers.merged`."""
    _deprecated("merge_headers")
    for name, value in extra.items():
        _set(headers, name, value)


def pop_header(headers: dict[str, str], name: str) -> str | None:
    """Deprecated: remove every spelling of ``name`` and return the last value found, if any."""
    _deprecated("pop_header")
    lowered = name.lower()
    value = None
    for key in [k for k in headers if k.lower() == lowered]:
        value = headers.pop(key)
    return value


_CANONICAL = {
    name.lower(): name
    for name in ("Accept", "Content-Type", "Idempotency-Key", "X-AligneAI-Retry-Count")
}


def canonicalize_headers(headers: dict[str, str]) -> None:
    """Deprecated: respell ``accept`` and three more as ``Accept``... `Headers` ignores case."""
    _deprecated("canonicalize_headers")
    for key in [k for k in headers if k.lower() in _CANONICAL and k not in _CANONICAL.values()]:
        headers[_CANONICAL[key.lower()]] = headers.pop(key)


def _set(headers: dict[str, str], name: str, value: str) -> None:
    lowered = name.lower()
    for key in [k for k in headers if k.lower() == lowered and k != name]:
        del headers[key]
    headers[name] = value


@attrs.frozen(repr=False, weakref_slot=False)  # see slot_builder()
class Request:
    """One HTTP request, ready for a transport to send.

    Attributes:
        method: ``GET`` or ``POST``.
        url: the absolute URL, query included.
        headers: the headers to send, a read-only `Headers` (names in lower case; a plain
            mapping given here is converted).
        body: the encoded body, or None.
        timeout: the limits for this attempt; ``timeout.total``, when set, is the time left
            before the call's overall deadline, and the whole attempt must end within it.
        stream: True when the caller will read the body incrementally (Server-Sent Events).
    """

    method: str
    url: str
    headers: Headers = attrs.field(converter=_as_headers)
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


#: ``Request(method, url, headers, body, timeout, stream)`` for a `Headers` and checked values.
_new_request: Callable[[str, str, Headers, bytes | None, Timeout, bool], Request] = slot_builder(
    Request
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


def base_headers(options: ClientOptions, platform: PlatformInfo) -> Headers:
    """The headers every request of a client carries, computed once per client."""
    headers = Headers.from_lower(
        {
            "accept": "application/json",
            "content-type": "application/json",
            "user-agent": f"aligneai-python/{__version__}",
            "x-aligneai-lang": "python",
            "x-aligneai-package-version": __version__,
            "x-aligneai-os": platform.os,
            "x-aligneai-arch": platform.arch,
            "x-aligneai-runtime": platform.runtime,
            "x-aligneai-runtime-version": platform.runtime_version,
            "authorization": f"Bearer {options.api_key}",
        }
    )
    # The caller's explicit headers win, including Authorization (e.g. for a gateway); a None
    # value removes the field, the library's own included.
    return headers.merged(options.default_headers)


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

    ``headers`` are the call's headers (client headers plus any extra ones), any mapping in
    any spelling; this sets ``X-AligneAI-Retry-Count`` and, when given, the ``Idempotency-Key``
    that stays the same on every retry of one call, whatever spelling ``headers`` used.
    """
    base = headers if type(headers) is Headers else Headers(headers)
    # A Headers holds lower-case names: dict's own lookup (no method call) is exact.
    if body is None and _has_field(base, "content-type"):  # prepare_call() removed it already
        base = base.merged({"content-type": None})
    # One copy of the call's headers per attempt, plus the fields of this attempt
    # (Headers.from_lower() inlined: this runs on every attempt).
    attempt = _new_dict(Headers)
    _update(attempt, base)
    _set_field(attempt, RETRY_COUNT, str(retry_count))
    if idempotency_key is not None:
        _set_field(attempt, IDEMPOTENCY_KEY, idempotency_key)
    if stream:
        _set_field(attempt, "accept", EVENT_STREAM_CONTENT_TYPE)
    # Every value is checked or built here: set the slots directly (see `slot_builder`).
    return _new_request(method, url, attempt, body, timeout, stream)


# Headers blocks its own mutators: a Headers being built is filled with dict's, in C.
_has_field = dict.__contains__
_new_dict = dict.__new__
_update = dict.update
_set_field = dict.__setitem__
