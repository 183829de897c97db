"""Fault injection for the local AligneAI server: what can go wrong with one request.

Each fault is a small frozen value of its own class, all subclasses of `Fault` (as h11's
events are): ``StatusFault(503)``, ``DropMidBody()``, ``SseErrorEvent(503, after_items=1)``...;
`NoFault` answers normally. The server dispatches on the class. The older spelling
``Fault.status(503)``, ``Fault.none()``, ... is kept: those are factories on `Fault` that build
the same values.

The server takes the fault for each request from a `FaultSchedule`: a FIFO script first
(``LocalServer.enqueue``), then a seeded random rate (``LocalServer.set_fault_rate``).

Faults that answer on their own (`StatusFault`, `HtmlFault`, `MalformedJson`, `TruncatedJson`,
`ContractViolation`) do so whatever the request was, even a streaming one. Faults that change
how the normal answer is sent (`Delay`, `SlowBody`, `StallBody`, `DropMidBody`) apply to JSON
and event-stream answers alike, error answers included. The ``Sse*`` faults only change
event-stream answers: any other answer is sent normally (the fault is still consumed).
"""

from __future__ import annotations

import enum
import math
import random
import threading
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Optional, TypeVar, Union, get_args

import attrs

from aligneai.core.errors import InvalidArgumentTypeError, InvalidArgumentValueError
from aligneai.core.wire import RETRY_AFTER, RETRY_AFTER_MS, SHOULD_RETRY
from aligneai.testing import _api

__all__ = [
    "AnyFault",
    "ContractViolation",
    "Delay",
    "DropBeforeHeaders",
    "DropMidBody",
    "Fault",
    "FaultKind",
    "FaultSchedule",
    "HtmlFault",
    "MalformedJson",
    "NoFault",
    "SlowBody",
    "SseCutMidEvent",
    "SseDrop",
    "SseErrorEvent",
    "SseShuffle",
    "StallBody",
    "StatusFault",
    "TruncatedJson",
    "contract_violation_payload",
]

BodyLike = Union[bytes, str, Mapping[str, Any]]
HeaderPairs = tuple[tuple[str, str], ...]


class FaultKind(str, enum.Enum):
    """The old name of each fault class (its ``kind``); kept for compatibility.

    Dispatch on the class instead (``isinstance(fault, StatusFault)``).
    """

    NONE = "none"
    STATUS = "status"
    DELAY = "delay"
    SLOW_BODY = "slow_body"
    STALL_BODY = "stall_body"
    DROP_BEFORE_HEADERS = "drop_before_headers"
    DROP_MID_BODY = "drop_mid_body"
    MALFORMED_JSON = "malformed_json"
    TRUNCATED_JSON = "truncated_json"
    CONTRACT_VIOLATION = "contract_violation"
    SSE_CUT_MID_EVENT = "sse_cut_mid_event"
    SSE_DROP = "sse_drop"
    SSE_ERROR = "sse_error"
    SSE_SHUFFLE = "sse_shuffle"


# -- argument checks (they take `object`: callers may be untyped, and bool is an int) ----------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _status_code(value: int) -> int:
    if not _is_int(value):
        raise InvalidArgumentTypeError(
            "status_code", f"expected an int from 200 to 599, got {type(value).__name__}"
        )
    assert isinstance(value, int)
    if not 200 <= value <= 599:
        raise InvalidArgumentValueError("status_code", f"must be from 200 to 599, got {value}")
    return value


def _check_seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgumentTypeError(
            name, f"expected seconds (float), got {type(value).__name__}"
        )
    if not math.isfinite(value) or value < 0:
        raise InvalidArgumentValueError(name, f"must be a finite number >= 0, got {value!r}")
    return float(value)


def _check_count(name: str, value: object, minimum: int) -> int:
    if not _is_int(value):
        raise InvalidArgumentTypeError(name, f"expected an int, got {type(value).__name__}")
    assert isinstance(value, int)
    if value < minimum:
        raise InvalidArgumentValueError(name, f"must be {minimum} or more, got {value}")
    return value


# Named converters: attrs' mypy plugin types each __init__ argument from its converter's.
# (The checks themselves take `object`: callers may be untyped, and bool is an int.)
def _seconds(value: float) -> float:
    return _check_seconds("seconds", value)


def _chunk_delay(value: float) -> float:
    return _check_seconds("chunk_delay", value)


def _chunks(value: int) -> int:
    return _check_count("chunks", value, 1)


def _after_items(value: int) -> int:
    return _check_count("after_items", value, 0)


def _seed(value: int) -> int:
    if not _is_int(value):
        raise InvalidArgumentTypeError("seed", f"expected an int, got {type(value).__name__}")
    assert isinstance(value, int)
    return value


def _header_pairs(headers: Mapping[str, str] | Iterable[tuple[str, str]] | None) -> HeaderPairs:
    if headers is None:
        return ()
    items = headers.items() if isinstance(headers, Mapping) else headers
    pairs = []
    for pair in items:
        name, value = pair
        if not isinstance(name, str) or not isinstance(value, str):
            raise InvalidArgumentTypeError(
                "headers", f"names and values must be str, got {name!r}: {value!r}"
            )
        pairs.append((name, value))
    return tuple(pairs)


def _format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _retry_headers(
    retry_after: float | str | None, retry_after_ms: float | None, should_retry: bool | None
) -> HeaderPairs:
    pairs = []
    if retry_after is not None:
        value = retry_after if isinstance(retry_after, str) else _format_number(retry_after)
        pairs.append((RETRY_AFTER, value))
    if retry_after_ms is not None:
        pairs.append((RETRY_AFTER_MS, _format_number(retry_after_ms)))
    if should_retry is not None:
        pairs.append((SHOULD_RETRY, "true" if should_retry else "false"))
    return tuple(pairs)


def _encode_body(body: BodyLike) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, Mapping):
        return _api.encode_json(dict(body))
    raise InvalidArgumentTypeError(
        "body", f"expected bytes, str or a JSON object (dict), got {type(body).__name__}"
    )


def _short_bytes(value: bytes) -> str:
    return repr(value[:40] + b"...") if len(value) > 40 else repr(value)


def _default_error_body(fault: StatusFault) -> bytes:
    return _api.encode_json(_api.default_error_payload(fault.status_code))


_F = TypeVar("_F", bound="Fault")


# -- the faults --------------------------------------------------------------------------------


@attrs.frozen(repr=False)
class Fault:
    """What the local server does with one request: the base class of every fault.

    Build one of its subclasses (`NoFault`, `StatusFault`, `HtmlFault`, `Delay`, `SlowBody`,
    `StallBody`, `DropBeforeHeaders`, `DropMidBody`, `MalformedJson`, `TruncatedJson`,
    `ContractViolation`, `SseCutMidEvent`, `SseDrop`, `SseErrorEvent`, `SseShuffle`), or use
    the factories kept from the first versions (``Fault.status(503)``, ``Fault.none()``...),
    which return the same values.

    Attributes:
        headers: extra answer headers, as ``(name, value)`` pairs (a mapping is accepted);
            they replace the server's headers of the same name. Keyword-only on every fault.
    """

    headers: HeaderPairs = attrs.field(default=(), converter=_header_pairs, kw_only=True)

    def __attrs_post_init__(self) -> None:
        if type(self) is Fault:
            raise TypeError("Fault is the base class: build one of its subclasses")

    def __repr__(self) -> str:
        # What it was built with: fields left at their defaults are omitted, headers come last.
        shown = []
        fields = sorted(attrs.fields(type(self)), key=lambda field: field.name == "headers")
        for field in fields:
            value = getattr(self, field.name)
            default = field.default
            if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
                default = default.factory(self) if default.takes_self else default.factory()
            if default is not attrs.NOTHING and value == default:
                continue
            text = field.repr(value) if callable(field.repr) else repr(value)
            shown.append(f"{field.name}={text}")
        return f"{type(self).__name__}({', '.join(shown)})"

    def with_headers(
        self: _F,
        headers: Mapping[str, str] | None = None,
        *,
        retry_after: float | str | None = None,
        retry_after_ms: float | None = None,
        should_retry: bool | None = None,
    ) -> _F:
        """Return a copy that also sends these headers with whatever answer it gives.

        ``retry_after`` (seconds, or an HTTP-date string), ``retry_after_ms`` and
        ``should_retry`` set the ``retry-after``, ``retry-after-ms`` and ``x-should-retry``
        headers.
        """
        extra = _header_pairs(headers) + _retry_headers(retry_after, retry_after_ms, should_retry)
        return attrs.evolve(self, headers=self.headers + extra)

    # -- the factories of the first versions (each returns one of the classes below) ---------

    @staticmethod
    def none() -> NoFault:
        """`NoFault`: answer normally (script "fail, then succeed": ``..., Fault.none()``)."""
        return NoFault()

    @staticmethod
    def status(
        code: int,
        *,
        headers: Mapping[str, str] | None = None,
        body: BodyLike | None = None,
        content_type: str = "application/json",
        retry_after: float | str | None = None,
        retry_after_ms: float | None = None,
        should_retry: bool | None = None,
    ) -> StatusFault:
        """`StatusFault`: answer ``code`` at once, without looking at the request.

        ``retry_after`` (seconds, or an HTTP-date string), ``retry_after_ms`` and
        ``should_retry`` set the ``retry-after``, ``retry-after-ms`` and ``x-should-retry``
        headers.
        """
        extra = _header_pairs(headers) + _retry_headers(retry_after, retry_after_ms, should_retry)
        if body is None:
            return StatusFault(code, content_type=content_type, headers=extra)
        return StatusFault(code, body, content_type=content_type, headers=extra)

    @staticmethod
    def html(code: int = 502, *, headers: Mapping[str, str] | None = None) -> HtmlFault:
        """`HtmlFault`: answer ``code`` with a proxy's HTML error page."""
        return HtmlFault(code, headers=_header_pairs(headers))

    @staticmethod
    def delay(seconds: float) -> Delay:
        """`Delay`: wait ``seconds`` before sending the headers, then answer normally."""
        return Delay(seconds)

    @staticmethod
    def slow_body(chunk_delay: float, chunks: int = 4) -> SlowBody:
        """`SlowBody`: send the body in ``chunks`` pieces, each after ``chunk_delay``."""
        return SlowBody(chunk_delay, chunks)

    @staticmethod
    def stall_body(seconds: float) -> StallBody:
        """`StallBody`: send half of the body, stall ``seconds``, then send the rest."""
        return StallBody(seconds)

    @staticmethod
    def drop_before_headers() -> DropBeforeHeaders:
        """`DropBeforeHeaders`: read the request, then close without answering."""
        return DropBeforeHeaders()

    @staticmethod
    def drop_mid_body() -> DropMidBody:
        """`DropMidBody`: send the headers and half the body, then close."""
        return DropMidBody()

    @staticmethod
    def malformed_json() -> MalformedJson:
        """`MalformedJson`: answer 200 with a body that is not JSON."""
        return MalformedJson()

    @staticmethod
    def truncated_json() -> TruncatedJson:
        """`TruncatedJson`: answer 200 with the normal JSON cut in half."""
        return TruncatedJson()

    @staticmethod
    def contract_violation() -> ContractViolation:
        """`ContractViolation`: answer 200 with valid JSON that breaks the contract."""
        return ContractViolation()

    @staticmethod
    def sse_cut_mid_event(after_items: int = 1) -> SseCutMidEvent:
        """`SseCutMidEvent`: ``after_items`` events, half of the next, then a clean end."""
        return SseCutMidEvent(after_items)

    @staticmethod
    def sse_drop(after_items: int = 1) -> SseDrop:
        """`SseDrop`: ``after_items`` events, half of the next, then close the connection."""
        return SseDrop(after_items)

    @staticmethod
    def sse_error(
        status: int = 500, after_items: int = 1, message: str | None = None
    ) -> SseErrorEvent:
        """`SseErrorEvent`: ``after_items`` events, then an ``error`` event with ``status``."""
        return SseErrorEvent(status, after_items, message)

    @staticmethod
    def sse_shuffle(seed: int = 0) -> SseShuffle:
        """`SseShuffle`: the ``embedding`` events in an order shuffled by ``seed``."""
        return SseShuffle(seed)


@attrs.frozen(repr=False)
class NoFault(Fault):
    """Answer normally, with `headers` added if any.

    "Fail, then succeed" is ``enqueue(StatusFault(503), NoFault())``. A request answered
    normally is recorded with ``fault=None``.
    """

    kind: ClassVar[FaultKind] = FaultKind.NONE


@attrs.frozen(repr=False)
class StatusFault(Fault):
    """Answer ``status_code`` at once, without looking at the request (no rate limit charged).

    Attributes:
        status_code: the status, 200 to 599.
        body: the body; by default the contract's error body for ``status_code``. Bytes are
            sent as they are, a str as UTF-8, a dict as JSON.
        content_type: the ``Content-Type`` header.
    """

    kind: ClassVar[FaultKind] = FaultKind.STATUS

    status_code: int = attrs.field(converter=_status_code)
    body: bytes = attrs.field(
        default=attrs.Factory(_default_error_body, takes_self=True),
        converter=_encode_body,
        repr=_short_bytes,
    )
    content_type: str = "application/json"


@attrs.frozen(repr=False)
class HtmlFault(Fault):
    """Answer ``status_code`` (default 502) with an HTML error page, as a proxy in front would.

    The page is nginx's, sent as ``text/html``.
    """

    kind: ClassVar[FaultKind] = FaultKind.STATUS

    status_code: int = attrs.field(default=502, converter=_status_code)


@attrs.frozen(repr=False)
class Delay(Fault):
    """Wait ``seconds`` before sending the headers, then answer normally.

    The wait ends early when the server stops.
    """

    kind: ClassVar[FaultKind] = FaultKind.DELAY

    seconds: float = attrs.field(converter=_seconds)


@attrs.frozen(repr=False)
class SlowBody(Fault):
    """Answer normally, but send the body in ``chunks`` pieces, each after ``chunk_delay``.

    An event stream is sent one event at a time instead, with the wait before each.
    """

    kind: ClassVar[FaultKind] = FaultKind.SLOW_BODY

    chunk_delay: float = attrs.field(converter=_chunk_delay)
    chunks: int = attrs.field(default=4, converter=_chunks)


@attrs.frozen(repr=False)
class StallBody(Fault):
    """Send the headers and half of the body, stall ``seconds``, then send the rest.

    The stall ends early when the server stops; an event stream stalls after half its events.
    """

    kind: ClassVar[FaultKind] = FaultKind.STALL_BODY

    seconds: float = attrs.field(converter=_seconds)


@attrs.frozen(repr=False)
class DropBeforeHeaders(Fault):
    """Read the request, then close the connection without answering."""

    kind: ClassVar[FaultKind] = FaultKind.DROP_BEFORE_HEADERS


@attrs.frozen(repr=False)
class DropMidBody(Fault):
    """Send the headers (with the full ``Content-Length``) and half the body, then close."""

    kind: ClassVar[FaultKind] = FaultKind.DROP_MID_BODY


@attrs.frozen(repr=False)
class MalformedJson(Fault):
    """Answer 200 ``application/json`` with a body that starts like JSON but is not JSON."""

    kind: ClassVar[FaultKind] = FaultKind.MALFORMED_JSON


@attrs.frozen(repr=False)
class TruncatedJson(Fault):
    """Answer 200 with the normal JSON cut in half (``Content-Length`` matches the cut)."""

    kind: ClassVar[FaultKind] = FaultKind.TRUNCATED_JSON


@attrs.frozen(repr=False)
class ContractViolation(Fault):
    """Answer 200 with valid JSON that breaks the contract (items without ``embedding``)."""

    kind: ClassVar[FaultKind] = FaultKind.CONTRACT_VIOLATION


@attrs.frozen(repr=False)
class SseCutMidEvent(Fault):
    """Stream ``after_items`` events, then half of the next one, then end the body cleanly."""

    kind: ClassVar[FaultKind] = FaultKind.SSE_CUT_MID_EVENT

    after_items: int = attrs.field(default=1, converter=_after_items)


@attrs.frozen(repr=False)
class SseDrop(Fault):
    """Stream ``after_items`` events and half the next, then close without the last chunk."""

    kind: ClassVar[FaultKind] = FaultKind.SSE_DROP

    after_items: int = attrs.field(default=1, converter=_after_items)


@attrs.frozen(repr=False)
class SseErrorEvent(Fault):
    """Stream ``after_items`` events, then an ``error`` event, then end the stream.

    Attributes:
        status_code: the ``status`` the event carries (200 to 599).
        after_items: how many whole ``embedding`` events come first.
        message: the error message; None is the contract's default for the status.
    """

    kind: ClassVar[FaultKind] = FaultKind.SSE_ERROR

    status_code: int = attrs.field(default=500, converter=_status_code)
    after_items: int = attrs.field(default=1, converter=_after_items)
    message: Optional[str] = None  # noqa: UP045 - attrs may evaluate this on 3.9


@attrs.frozen(repr=False)
class SseShuffle(Fault):
    """Stream the ``embedding`` events in an order shuffled by ``seed`` (``done`` last)."""

    kind: ClassVar[FaultKind] = FaultKind.SSE_SHUFFLE

    seed: int = attrs.field(default=0, converter=_seed)


AnyFault = Union[
    NoFault,
    StatusFault,
    HtmlFault,
    Delay,
    SlowBody,
    StallBody,
    DropBeforeHeaders,
    DropMidBody,
    MalformedJson,
    TruncatedJson,
    ContractViolation,
    SseCutMidEvent,
    SseDrop,
    SseErrorEvent,
    SseShuffle,
]
"""Every fault class, for exhaustive ``isinstance`` dispatch (see the server's `_respond`)."""


def contract_violation_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Break a 200 answer's contract: drop ``embedding`` (or ``id``) from each item, or ``id``."""
    broken = dict(payload)
    data = broken.get("data")
    if isinstance(data, list):
        broken["data"] = [
            {key: value for key, value in item.items() if key not in ("embedding", "id")}
            for item in data
            if isinstance(item, dict)
        ]
        return broken
    if "id" in broken:
        del broken["id"]
        return broken
    # Not a success body at all (an error answer): claim success with an item-less shape.
    return {"object": "list", "data": [{"object": "embedding", "index": 0}]}


_FAULT_CLASSES: tuple[type[Fault], ...] = get_args(AnyFault)


def _check_fault(fault: object) -> Fault:
    # Exactly the known classes: the server has an answer for each, and only for those.
    if type(fault) not in _FAULT_CLASSES:
        raise InvalidArgumentTypeError(
            "fault",
            "expected one of the fault classes of aligneai.testing (e.g. StatusFault(503)), "
            f"got {type(fault).__name__}",
        )
    assert isinstance(fault, Fault)
    return fault


class FaultSchedule:
    """Thread-safe source of each request's fault: the FIFO script first, then the random rate."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[tuple[str | None, Fault]] = []
        self._rate_fault: Fault = NoFault()
        self._rate = 0.0
        self._rng = random.Random(0)

    def enqueue(self, faults: Iterable[Fault], path: str | None = None) -> None:
        """Script one fault for each of the next requests (to ``path`` only, if given)."""
        items = [_check_fault(fault) for fault in faults]
        if path is not None and not path.startswith("/"):
            raise InvalidArgumentValueError("path", f"must start with '/', got {path!r}")
        with self._lock:
            self._queue.extend((path, fault) for fault in items)

    def set_rate(self, fault: Fault, rate: float, *, seed: int = 0) -> None:
        """Give each unscripted request ``fault`` with probability ``rate`` (seeded: repeatable)."""
        _check_fault(fault)
        if not 0.0 <= rate <= 1.0:
            raise InvalidArgumentValueError("rate", f"must be between 0 and 1, got {rate}")
        with self._lock:
            self._rate_fault = fault
            self._rate = float(rate)
            self._rng = random.Random(seed)

    def next_for(self, path: str) -> Fault:
        """Take the fault for one request to ``path`` (`NoFault` when none is due)."""
        with self._lock:
            for position, (wanted, fault) in enumerate(self._queue):
                if wanted is None or wanted == path:
                    del self._queue[position]
                    return fault
            if self._rate > 0.0 and self._rng.random() < self._rate:
                return self._rate_fault
            return NoFault()

    def pending(self) -> int:
        """How many scripted faults are still waiting for a request."""
        with self._lock:
            return len(self._queue)

    def reset(self) -> None:
        """Forget the script and the rate."""
        with self._lock:
            self._queue.clear()
            self._rate_fault = NoFault()
            self._rate = 0.0
            self._rng = random.Random(0)
