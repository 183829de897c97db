"""Client configuration as immutable values: timeouts and client options.

Everything the environment can supply (``ALIGNEAI_API_KEY``, ``ALIGNEAI_BASE_URL``) is read from a
mapping passed in by the caller, so this module stays pure and both clients resolve settings the
same way.
"""

from __future__ import annotations

import ipaddress
import math
import numbers
import operator
import re
from collections.abc import Mapping
from typing import Any, ClassVar, Optional, Union
from urllib.parse import urlsplit

import attrs

from .errors import InvalidArgumentTypeError, InvalidArgumentValueError, MissingAPIKeyError
from .sentinels import NOT_GIVEN, NotGiven
from .wire import IDEMPOTENCY_KEY, RETRY_COUNT

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_READ_TIMEOUT",
    "MAX_TIMEOUT",
    "ClientOptions",
    "HeaderOverrides",
    "Timeout",
    "TimeoutLike",
    "is_bool",
    "resolve_options",
    "validate_base_url",
    "validate_count",
    "validate_header_overrides",
    "validate_headers",
    "validate_max_retries",
    "validate_timeout",
]

DEFAULT_BASE_URL = "https://api.aligne.ai/v1"
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 2
# Large enough for 2048 inputs x 3072 dimensions as float JSON (~130 MB), small enough that a
# misbehaving server cannot make the client exhaust memory.
DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024 * 1024
# Sockets and locks overflow a little above 9.2e9 s (int64 nanoseconds): a longer timeout
# would fail inside the transport, so it is refused here. None is the way to wait without limit.
MAX_TIMEOUT = 1e9

# RFC 9110 5.1: a field name is a token; 5.5: a field value, here without obsolete 8-bit text.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
# Framing and connection-management fields (RFC 9110 7.6.1, 9112 6): a wrong value makes the
# body unreadable or the pooled connection unusable, so only the transport sets them.
_TRANSPORT_HEADERS = frozenset(
    {
        "connection",
        "content-length",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e]*\Z")
_VISIBLE = re.compile(r"[\x21-\x7e]+\Z")


def is_bool(value: object) -> bool:
    """Whether ``value`` is a bool, numpy's ``bool_`` included (it is no `bool` subclass)."""
    # numpy's bool is not a bool subclass, and its __index__ is deprecated: name it explicitly.
    return isinstance(value, bool) or type(value).__name__ in ("bool_", "bool")


def _seconds(value: object, argument: str, *, allow_none: bool) -> float | None:
    if value is None and allow_none:
        return None
    if is_bool(value) or not isinstance(value, numbers.Real):
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
    if seconds > MAX_TIMEOUT:
        raise InvalidArgumentValueError(
            argument, f"must be at most {MAX_TIMEOUT:g} seconds (None: no limit), got {value!r}"
        )
    return seconds


# A field left out of Timeout(...) is NOT_GIVEN until __attrs_post_init__ fills in its default
# (and remembers that it was left out, for `Timeout.merge`).
def _connect_seconds(value: object) -> Any:
    if value is NOT_GIVEN:
        return value
    return _seconds(value, "timeout.connect", allow_none=False)


def _read_seconds(value: object) -> Any:
    if value is NOT_GIVEN:
        return value
    return _seconds(value, "timeout.read", allow_none=True)


def _total_seconds(value: object) -> Any:
    if value is NOT_GIVEN:
        return value
    return _seconds(value, "timeout.total", allow_none=True)


# Typed Any: the attrs plugin checks a default against the field's type, not the converter's.
_LEFT_OUT: Any = NOT_GIVEN
_FIELD_NAMES = ("connect", "read", "total")
_TIMEOUT_DEFAULTS = (
    ("connect", DEFAULT_CONNECT_TIMEOUT),
    ("read", DEFAULT_READ_TIMEOUT),
    ("total", None),
)


# Not slotted: the hidden state below lives in the instance __dict__, outside the attrs fields,
# so attrs.asdict/astuple, eq and hash see the three limits only, while pickle and copy keep it.
@attrs.frozen(slots=False)
class Timeout:
    """How long to wait, in seconds.

    Attributes:
        connect: the limit for opening a connection (TCP and TLS). Always finite, so a call can
            never hang forever on connect. Default 5 s.
        read: the limit for each wait for data from the server; None waits without a limit.
            Default 60 s.
        total: an optional deadline for the whole call, across every attempt and retry sleep;
            None (the default) means no overall deadline.

    Where a timeout is expected (the clients' ``timeout=``, ``with_options(timeout=...)`` and
    every call's ``timeout=``), the value given is applied over a base by `merge`: the defaults
    above in a constructor, the client's timeout in ``with_options`` and per call.

    - a number ``n`` sets ``read`` to ``n`` and caps ``connect`` at ``n``; ``total`` stays;
    - ``None`` sets ``read`` to no limit; ``connect`` and ``total`` stay;
    - a `Timeout` replaces the fields written in its constructor call and keeps the others:
      ``Timeout(read=120)`` keeps the base's connect limit and deadline,
      ``Timeout(total=None)`` removes the deadline only;
    - `NOT_GIVEN` (an argument left out) keeps the base as it is.

    A number's cap on connect does not become the base of a later number: ``AligneAI(timeout=1)
    .with_options(timeout=60)`` has the connect limit of ``AligneAI(timeout=60)`` (5 s). A field
    left out still reads as its default (``Timeout(read=1).connect == 5``), and equality
    compares the three values only.
    """

    connect: float = attrs.field(default=_LEFT_OUT, converter=_connect_seconds)
    read: Optional[float] = attrs.field(  # noqa: UP045 - attrs evaluates this on 3.9
        default=_LEFT_OUT, converter=_read_seconds
    )
    total: Optional[float] = attrs.field(  # noqa: UP045
        default=_LEFT_OUT, converter=_total_seconds
    )
    # Hidden state, set on each instance (ClassVar: attrs makes no field of it). `_given`: the
    # names of the fields written in the constructor call, what `merge` replaces.
    # `_uncapped_connect`: the connect limit before a number capped it, what the next number
    # caps instead (the class default None: `connect` itself).
    _given: ClassVar[frozenset[str]] = frozenset(_FIELD_NAMES)
    _uncapped_connect: ClassVar[Optional[float]] = None  # noqa: UP045

    def __attrs_post_init__(self) -> None:
        left_out = _LEFT_OUT  # typed Any: the fields hold it only until filled in here
        if self.connect is left_out or self.read is left_out or self.total is left_out:
            given = []
            for name, default in _TIMEOUT_DEFAULTS:
                if getattr(self, name) is NOT_GIVEN:
                    object.__setattr__(self, name, default)  # frozen: set once, while building
                else:
                    given.append(name)
            object.__setattr__(self, "_given", frozenset(given))
        # else: every field written, as the class default `_given` says.

    @classmethod
    def coerce(cls, value: TimeoutLike | NotGiven, *, argument: str = "timeout") -> Timeout:
        """A number, None or a `Timeout` applied over the defaults (see `merge`).

        Bad input raises, naming ``argument``.
        """
        return _DEFAULT_TIMEOUT.merge(value, argument=argument)

    def merge(self, value: TimeoutLike | NotGiven, *, argument: str = "timeout") -> Timeout:
        """This timeout with ``value`` applied over it, field by field (rules in the class doc).

        The result has all three fields set, so merging it in turn replaces everything.
        """
        if value is NOT_GIVEN:
            return self
        if isinstance(value, Timeout):
            given = value._given
            if len(given) == len(_TIMEOUT_DEFAULTS):
                return value
            if "connect" in given:
                connect, uncapped = value.connect, value._uncapped_connect
            else:
                connect, uncapped = self.connect, self._uncapped_connect
            merged = Timeout(
                connect=connect,
                read=value.read if "read" in given else self.read,
                total=value.total if "total" in given else self.total,
            )
        elif value is None:
            merged = Timeout(connect=self.connect, read=None, total=self.total)
            uncapped = self._uncapped_connect
        else:
            seconds = _seconds(value, argument, allow_none=False)
            assert seconds is not None  # allow_none=False guarantees it
            # The cap applies to the connect limit as last written (a constructor, a Timeout),
            # not to one an earlier number capped: numbers over numbers equal the last one.
            base = self.connect if self._uncapped_connect is None else self._uncapped_connect
            merged = Timeout(connect=min(seconds, base), read=seconds, total=self.total)
            uncapped = base
        if uncapped is not None and uncapped != merged.connect:
            object.__setattr__(merged, "_uncapped_connect", uncapped)  # frozen: while building
        return merged

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
_DEFAULT_TIMEOUT = Timeout(connect=DEFAULT_CONNECT_TIMEOUT, read=DEFAULT_READ_TIMEOUT, total=None)


def validate_timeout(value: object, argument: str = "timeout") -> Timeout | float | NotGiven | None:
    """Check a timeout override (a number, None, a `Timeout` or `NOT_GIVEN`), keeping its kind.

    A number stays a number (as a float): how it applies depends on the base it is merged onto
    (see `Timeout.merge`). Bad input raises, naming ``argument``.
    """
    if value is NOT_GIVEN or value is None or isinstance(value, Timeout):
        return value  # type: ignore[return-value]
    return _seconds(value, argument, allow_none=False)


def validate_base_url(value: object, argument: str = "base_url") -> str:
    """Check that `value` is an absolute http(s) URL and return it without a trailing slash."""
    if not isinstance(value, str):
        raise InvalidArgumentTypeError(argument, f"expected a str, got {type(value).__name__}")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise InvalidArgumentValueError(argument, "must not contain control characters")
    if any(c.isspace() for c in value):
        raise InvalidArgumentValueError(argument, f"must not contain whitespace, got {value!r}")
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
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise InvalidArgumentValueError(argument, "must not contain a query or fragment")
    if port == 0:
        raise InvalidArgumentValueError(argument, f"port 0 cannot be connected to, got {value!r}")
    problem = _host_problem(parts.hostname, bracketed="[" in parts.netloc)
    if problem is not None:
        raise InvalidArgumentValueError(argument, f"{problem}, got {value!r}")
    return value.rstrip("/")


# A DNS name: dot-separated labels of letters, digits, "-" and "_" (RFC 1123 is stricter about
# hyphens and underscores, but resolvers and container networks accept them).
_LABEL = re.compile(r"[a-z0-9_-]{1,63}\Z")


def _host_problem(host: str, *, bracketed: bool) -> str | None:
    """Why ``host`` (as urlsplit gives it: lower case, no brackets) is no host, or None."""
    if bracketed:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return f"the host {host!r} is not a valid IPv6 address"
        return None
    if not host.isascii():
        return "the host must be ASCII: write an international name in its IDNA (xn--) form"
    name = host[:-1] if host.endswith(".") else host
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        return f"the host {host!r} is not a valid host name or IP address"
    return None


def _validate_api_key(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidArgumentTypeError("api_key", f"expected a str, got {type(value).__name__}")
    if not value.strip():
        raise InvalidArgumentValueError("api_key", "must not be empty")
    # It travels in the Authorization header: visible ASCII only, so that both transports
    # send the same bytes. The message gives the position, never the key or the character.
    if not _VISIBLE.match(value):
        position = next(i for i, c in enumerate(value) if not _VISIBLE.match(c))
        raise InvalidArgumentValueError(
            "api_key",
            f"must be printable ASCII without spaces or line breaks "
            f"(character {position} is not); check for quotes or spaces copied with it",
        )
    return value


def validate_count(value: object, argument: str, *, minimum: int) -> int:
    """An int (numpy integers too, never a bool or a float) of at least ``minimum``."""
    if is_bool(value):
        raise InvalidArgumentTypeError(argument, "expected an int, got bool")
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise InvalidArgumentTypeError(
            argument, f"expected an int, got {type(value).__name__}"
        ) from None
    if number < minimum:
        raise InvalidArgumentValueError(argument, f"must be {minimum} or more, got {number}")
    return number


def validate_max_retries(value: object, argument: str = "max_retries") -> int:
    """A retry count: an int of 0 or more (numpy integers too; never a bool, a float or None)."""
    if value is None:
        # None used to mean "keep the client's setting" per call: say what to write now.
        raise InvalidArgumentTypeError(
            argument,
            "expected an int (0 disables retries), got None; to keep the client's setting, "
            "omit the argument or pass NOT_GIVEN",
        )
    return validate_count(value, argument, minimum=0)


#: A header mapping that may remove fields: a None value drops that field (any case).
HeaderOverrides = Mapping[str, Optional[str]]  # a run-time alias: no `|` on 3.9


def validate_headers(value: object, argument: str) -> dict[str, str]:
    """Check a user-supplied header mapping: token names, and values HTTP carries as they are.

    Values must be visible ASCII, spaces and tabs (RFC 9110 field values without the obsolete
    8-bit text): urllib3 would send other text as Latin-1 and aiohttp as UTF-8, or fail. Errors
    name the header, never its value (it may be a credential).
    """
    headers = validate_header_overrides(value, argument, removals=False)
    return headers  # type: ignore[return-value]  # removals=False: no None values


def validate_header_overrides(
    value: object, argument: str, *, removals: bool = True
) -> dict[str, str | None]:
    """Like `validate_headers`, but a None value (a field to remove) is allowed."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidArgumentTypeError(argument, f"expected a mapping, got {type(value).__name__}")
    headers: dict[str, str | None] = {}
    for name, val in value.items():
        if not isinstance(name, str):
            raise InvalidArgumentTypeError(
                argument, f"header names must be str, got {type(name).__name__}"
            )
        if not _TOKEN.match(name):
            raise InvalidArgumentValueError(
                argument, f"invalid header name {name!r} (letters, digits and !#$%&'*+-.^_`|~)"
            )
        lowered = name.lower()
        if lowered in _TRANSPORT_HEADERS:
            raise InvalidArgumentValueError(
                argument,
                f"{name!r} is set by the transport (message framing and the connection) "
                "and cannot be overridden",
            )
        if lowered == RETRY_COUNT:
            # Set on every attempt, over anything given here: refused rather than ignored.
            raise InvalidArgumentValueError(
                argument,
                f"{name!r} is always sent: the client sets it on every attempt (0 on the first, "
                "1 on the first retry, ...), so it can be neither set nor removed",
            )
        if val is None and removals:
            headers[name] = None
            continue
        if not isinstance(val, str):
            expected = "a str (or None to remove it)" if removals else "a str"
            raise InvalidArgumentTypeError(
                argument,
                f"the value of header {name!r} must be {expected}, got {type(val).__name__}",
            )
        if not _FIELD_VALUE.match(val):
            position = next(i for i, c in enumerate(val) if not _FIELD_VALUE.match(c))
            raise InvalidArgumentValueError(
                argument,
                f"the value of header {name!r} must be printable ASCII (character {position} "
                "is not; line breaks and non-ASCII text cannot be sent as they are)",
            )
        headers[name] = val
    return headers


def _validate_default_headers(value: object) -> dict[str, str | None]:
    # The retry count is refused by validate_header_overrides, set or removed, for any argument.
    headers = validate_header_overrides(value, "default_headers")
    for name, val in headers.items():
        if name.lower() != IDEMPOTENCY_KEY:
            continue
        if val is None:
            # A fresh key is made for each call: a client-wide "remove" would be undone.
            raise InvalidArgumentValueError(
                "default_headers",
                f"{name!r} is set on every call and cannot be removed for every call; "
                f"pass extra_headers={{{name!r}: None}} to a call instead",
            )
        # One key on every call would make a server that deduplicates by key answer each new
        # call with the first call's result: a key names one call, so it is given per call.
        raise InvalidArgumentValueError(
            "default_headers",
            f"{name!r} names one call: a fixed key on every call would make the server answer "
            f"each call with the first one's result; pass extra_headers={{{name!r}: ...}} "
            "to the call it belongs to",
        )
    return headers


def _validate_max_response_bytes(value: object) -> int:
    return validate_count(value, "max_response_bytes", minimum=1)


def _client_timeout(value: object) -> Timeout:
    return Timeout.coerce(value)  # type: ignore[arg-type]  # coerce checks the type


def _redacted_key(api_key: str) -> str:
    return "'***'" if api_key else "''"


@attrs.frozen(repr=False)
class ClientOptions:
    """The validated settings of one client. Its repr never shows the API key."""

    api_key: str = attrs.field(converter=_validate_api_key)
    base_url: str = attrs.field(default=DEFAULT_BASE_URL, converter=validate_base_url)
    # Stored with every field set, so that passing ``client.timeout`` on replaces all of them.
    timeout: Timeout = attrs.field(default=_DEFAULT_TIMEOUT, converter=_client_timeout)
    max_retries: int = attrs.field(default=DEFAULT_MAX_RETRIES, converter=validate_max_retries)
    # A None value removes that field from every request (the library's own headers too).
    default_headers: HeaderOverrides = attrs.field(
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
    api_key: str | NotGiven | None,
    base_url: str | NotGiven | None,
    timeout: TimeoutLike | NotGiven,
    max_retries: int | NotGiven,
    default_headers: HeaderOverrides | NotGiven | None,
    max_response_bytes: int | NotGiven,
    environ: Mapping[str, str],
) -> ClientOptions:
    """Build `ClientOptions` from constructor arguments, falling back to ``environ``.

    ``api_key`` falls back to ``ALIGNEAI_API_KEY``; ``base_url`` to ``ALIGNEAI_BASE_URL``, then
    the default. Raises `MissingAPIKeyError` (naming ``ALIGNEAI_API_KEY``) when there is no key.
    `NOT_GIVEN`, for any argument, means the same as leaving it out: the default.
    """
    if api_key is None or api_key is NOT_GIVEN:
        api_key = environ.get("ALIGNEAI_API_KEY") or None
        if api_key is None:
            raise MissingAPIKeyError(
                "No API key: pass api_key=... or set the ALIGNEAI_API_KEY environment variable."
            )
    if base_url is None or base_url is NOT_GIVEN:
        base_url = environ.get("ALIGNEAI_BASE_URL") or DEFAULT_BASE_URL
    return ClientOptions(
        api_key=api_key,
        base_url=base_url,
        timeout=Timeout.coerce(timeout),
        max_retries=DEFAULT_MAX_RETRIES if max_retries is NOT_GIVEN else max_retries,
        default_headers=None if default_headers is NOT_GIVEN else default_headers,
        max_response_bytes=(
            DEFAULT_MAX_RESPONSE_BYTES if max_response_bytes is NOT_GIVEN else max_response_bytes
        ),
    )
