"""Client configuration as immutable values: timeouts and client options.

Everything the environment can supply (``ALIGNEAI_API_KEY``, ``ALIGNEAI_BASE_URL``) is read from a
mapping passed in by the caller, so this module stays pure and both clients resolve settings the
same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Union
from urllib.parse import urlsplit

import attrs

from .errors import InvalidArgumentTypeError, InvalidArgumentValueError, MissingAPIKeyError

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_READ_TIMEOUT",
    "ClientOptions",
    "Timeout",
    "TimeoutLike",
    "resolve_options",
    "validate_base_url",
]

DEFAULT_BASE_URL = "https://api.aligne.ai/v1"
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 2
# Large enough for 2048 inputs x 3072 dimensions as float JSON (~130 MB), small enough that a
# misbehaving server cannot make the client exhaust memory.
DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024 * 1024


def _seconds(value: object, argument: str, *, allow_none: bool) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        expected = "a number of seconds or None" if allow_none else "a number of seconds"
        raise InvalidArgumentTypeError(argument, f"expected {expected}, got {type(value).__name__}")
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidArgumentValueError(
            argument, f"must be a positive finite number, got {value!r}"
        )
    return seconds


def _connect_seconds(value: object) -> float:
    seconds = _seconds(value, "timeout.connect", allow_none=False)
    assert seconds is not None  # allow_none=False guarantees it
    return seconds


def _read_seconds(value: object) -> float | None:
    return _seconds(value, "timeout.read", allow_none=True)


def _total_seconds(value: object) -> float | None:
    return _seconds(value, "timeout.total", allow_none=True)


@attrs.frozen
class Timeout:
    """How long to wait, in seconds.

    Attributes:
        connect: the limit for opening a connection (TCP and TLS). Always finite, so a call can
            never hang forever on connect. Default 5 s.
        read: the limit for each wait for data from the server; None waits without a limit.
            Default 60 s.
        total: an optional deadline for the whole call, across every attempt and retry sleep;
            None (the default) means no overall deadline.

    A number given where a timeout is expected sets ``read`` to it and ``connect`` to the
    smaller of it and 5 s; ``None`` keeps the 5 s connect limit and waits without a read limit.
    """

    connect: float = attrs.field(default=DEFAULT_CONNECT_TIMEOUT, converter=_connect_seconds)
    read: float | None = attrs.field(default=DEFAULT_READ_TIMEOUT, converter=_read_seconds)
    total: float | None = attrs.field(default=None, converter=_total_seconds)

    @classmethod
    def coerce(cls, value: TimeoutLike, *, argument: str = "timeout") -> Timeout:
        """Turn a number, None or a `Timeout` into a `Timeout`, naming `argument` on bad input."""
        if isinstance(value, Timeout):
            return value
        if value is None:
            return cls(read=None)
        seconds = _seconds(value, argument, allow_none=False)
        assert seconds is not None
        return cls(connect=min(seconds, DEFAULT_CONNECT_TIMEOUT), read=seconds)

    def within(self, remaining: float | None) -> Timeout:
        """This timeout for one attempt that must end within ``remaining`` seconds (if any)."""
        if remaining is None:
            return self
        remaining = max(remaining, 1e-3)
        return Timeout(
            connect=min(self.connect, remaining),
            read=remaining if self.read is None else min(self.read, remaining),
            total=remaining,
        )


TimeoutLike = Union[Timeout, float, int, None]


def validate_base_url(value: object, argument: str = "base_url") -> str:
    """Check that `value` is an absolute http(s) URL and return it without a trailing slash."""
    if not isinstance(value, str):
        raise InvalidArgumentTypeError(argument, f"expected a str, got {type(value).__name__}")
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError for a malformed port
    except ValueError as exc:
        raise InvalidArgumentValueError(argument, f"malformed URL {value!r} ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgumentValueError(
            argument, f"expected an absolute http:// or https:// URL, got {value!r}"
        )
    if parts.username is not None or parts.password is not None:
        # Credentials in the URL would leak into logs and error messages.
        raise InvalidArgumentValueError(argument, "must not contain a user name or password")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise InvalidArgumentValueError(argument, "must not contain control characters")
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise InvalidArgumentValueError(argument, "must not contain a query or fragment")
    del port
    return value.rstrip("/")


def _validate_api_key(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidArgumentTypeError("api_key", f"expected a str, got {type(value).__name__}")
    if not value.strip():
        raise InvalidArgumentValueError("api_key", "must not be empty")
    if any(c in value for c in "\r\n\0"):
        raise InvalidArgumentValueError("api_key", "must not contain line breaks or NUL")
    return value


def _validate_max_retries(value: object, argument: str = "max_retries") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentTypeError(argument, f"expected an int, got {type(value).__name__}")
    if value < 0:
        raise InvalidArgumentValueError(argument, f"must be 0 or more, got {value}")
    return value


def validate_headers(value: object, argument: str) -> dict[str, str]:
    """Check a user-supplied header mapping: str names and values, no line breaks."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidArgumentTypeError(argument, f"expected a mapping, got {type(value).__name__}")
    headers: dict[str, str] = {}
    for name, val in value.items():
        if not isinstance(name, str) or not isinstance(val, str):
            raise InvalidArgumentTypeError(argument, "header names and values must be str")
        if any(c in name + val for c in "\r\n\0") or not name or ":" in name:
            raise InvalidArgumentValueError(argument, f"invalid header {name!r}")
        headers[name] = val
    return headers


def _validate_default_headers(value: object) -> dict[str, str]:
    return validate_headers(value, "default_headers")


def _validate_max_response_bytes(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentTypeError(
            "max_response_bytes", f"expected an int, got {type(value).__name__}"
        )
    if value <= 0:
        raise InvalidArgumentValueError("max_response_bytes", f"must be positive, got {value}")
    return value


def _redacted_key(api_key: str) -> str:
    return "'***'" if api_key else "''"


@attrs.frozen(repr=False)
class ClientOptions:
    """The validated settings of one client. Its repr never shows the API key."""

    api_key: str = attrs.field(converter=_validate_api_key)
    base_url: str = attrs.field(default=DEFAULT_BASE_URL, converter=validate_base_url)
    timeout: Timeout = attrs.field(factory=Timeout)
    max_retries: int = attrs.field(default=DEFAULT_MAX_RETRIES, converter=_validate_max_retries)
    default_headers: Mapping[str, str] = attrs.field(
        factory=dict, converter=_validate_default_headers
    )
    max_response_bytes: int = attrs.field(
        default=DEFAULT_MAX_RESPONSE_BYTES, converter=_validate_max_response_bytes
    )

    def __repr__(self) -> str:
        return (
            f"ClientOptions(api_key={_redacted_key(self.api_key)}, base_url={self.base_url!r}, "
            f"timeout={self.timeout!r}, max_retries={self.max_retries!r}, "
            f"max_response_bytes={self.max_response_bytes!r})"
        )

    def replace(self, **changes: Any) -> ClientOptions:
        """A copy with some settings changed (validated like the originals)."""
        return attrs.evolve(self, **changes)


def resolve_options(
    *,
    api_key: str | None,
    base_url: str | None,
    timeout: TimeoutLike,
    max_retries: int,
    default_headers: Mapping[str, str] | None,
    max_response_bytes: int,
    environ: Mapping[str, str],
) -> ClientOptions:
    """Build `ClientOptions` from constructor arguments, falling back to ``environ``.

    ``api_key`` falls back to ``ALIGNEAI_API_KEY``; ``base_url`` to ``ALIGNEAI_BASE_URL``, then
    the default. Raises `MissingAPIKeyError` (naming ``ALIGNEAI_API_KEY``) when there is no key.
    """
    if api_key is None:
        api_key = environ.get("ALIGNEAI_API_KEY") or None
        if api_key is None:
            raise MissingAPIKeyError(
                "No API key: pass api_key=... or set the ALIGNEAI_API_KEY environment variable."
            )
    if base_url is None:
        base_url = environ.get("ALIGNEAI_BASE_URL") or DEFAULT_BASE_URL
    return ClientOptions(
        api_key=api_key,
        base_url=base_url,
        timeout=Timeout.coerce(timeout),
        max_retries=max_retries,
        default_headers=default_headers,
        max_response_bytes=max_response_bytes,
    )
