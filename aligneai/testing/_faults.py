"""Fault injection for the local AligneAI server: what can go wrong with one request.

A `Fault` is an immutable value built through its constructors (``Fault.status(503)``,
``Fault.drop_mid_body()``, ...). The server takes the fault for each request from a
`FaultSchedule`: a FIFO script first (``LocalServer.enqueue``), then a seeded random rate
(``LocalServer.set_fault_rate``).

Faults that answer on their own (``status``, ``html``, ``malformed_json``, ``truncated_json``,
``contract_violation``) do so whatever the request was, even a streaming one. Faults that
change how the normal answer is sent (``delay``, ``slow_body``, ``stall_body``,
``drop_mid_body``) apply to JSON and event-stream answers alike, error answers included. The
``sse_*`` faults only change event-stream answers: any other answer is sent normally (the
fault is still consumed).
"""

from __future__ import annotations

import enum
import random
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Union

from aligneai.testing import _contract

__all__ = ["Fault", "FaultKind", "FaultSchedule", "contract_violation_payload"]

BodyLike = Union[bytes, str, Mapping[str, Any]]
_Headers = tuple[tuple[str, str], ...]


class FaultKind(str, enum.Enum):
    """What a `Fault` does; see the `Fault` constructor of the same name."""

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


_HTML_PAGE = (
    "<html>\r\n<head><title>{code} {phrase}</title></head>\r\n<body>\r\n"
    "<center><h1>{code} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


def _format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _header_pairs(
    headers: Mapping[str, str] | None,
    retry_after: float | str | None,
    retry_after_ms: float | None,
    should_retry: bool | None,
) -> _Headers:
    pairs = [(str(name), str(value)) for name, value in (headers or {}).items()]
    if retry_after is not None:
        value = retry_after if isinstance(retry_after, str) else _format_number(retry_after)
        pairs.append(("retry-after", value))
    if retry_after_ms is not None:
        pairs.append(("retry-after-ms", _format_number(retry_after_ms)))
    if should_retry is not None:
        pairs.append(("x-should-retry", "true" if should_retry else "false"))
    return tuple(pairs)


def _encode_body(body: BodyLike) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return _contract.encode_json(dict(body))


def _non_negative(name: str, value: float) -> float:
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")
    return float(value)


# The checks take `object`: callers may be untyped, and bool is an int subclass in Python.
def _count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _status_code(code: object) -> int:
    if isinstance(code, bool) or not isinstance(code, int) or not 200 <= code <= 599:
        raise ValueError(f"status code must be an integer from 200 to 599, got {code!r}")
    return code


@dataclass(frozen=True, repr=False)
class Fault:
    """One injected failure (or ``Fault.none()``: answer normally). Build it with a constructor.

    Attributes:
        kind: what the fault does.
        status_code: the status of ``status``/``html`` answers and of ``sse_error`` events.
        body: the body of ``status``/``html`` answers, the data of an ``sse_error`` event.
        content_type: the ``Content-Type`` of ``status`` answers.
        headers: extra answer headers (see `with_headers`); they replace defaults of the same
            name.
        seconds: the wait of ``delay`` and ``stall_body``, the pause between ``slow_body`` pieces.
        chunks: how many pieces ``slow_body`` sends.
        after_items: how many whole ``embedding`` events an ``sse_*`` fault sends first.
        seed: the shuffle seed of ``sse_shuffle``.
    """

    kind: FaultKind
    status_code: int = 200
    body: bytes | None = None
    content_type: str = "application/json"
    headers: _Headers = ()
    seconds: float = 0.0
    chunks: int = 1
    after_items: int = 0
    seed: int = 0

    def __repr__(self) -> str:
        shown = []
        for spec in fields(self)[1:]:
            value = getattr(self, spec.name)
            if value != spec.default:
                if isinstance(value, bytes) and len(value) > 40:
                    value = value[:40] + b"..."
                shown.append(f"{spec.name}={value!r}")
        return f"Fault.{self.kind.value}({', '.join(shown)})"

    @classmethod
    def none(cls) -> Fault:
        """Answer normally (script "fail, then succeed": ``Fault.status(503), Fault.none()``)."""
        return cls(FaultKind.NONE)

    @classmethod
    def status(
        cls,
        code: int,
        *,
        headers: Mapping[str, str] | None = None,
        body: BodyLike | None = None,
        content_type: str = "application/json",
        retry_after: float | str | None = None,
        retry_after_ms: float | None = None,
        should_retry: bool | None = None,
    ) -> Fault:
        """Answer ``code`` at once, without looking at the request.

        ``body`` None is the contract's error body for ``code``; bytes are sent as they are, a
        str as UTF-8, a dict as JSON. ``retry_after`` (seconds, or an HTTP-date string),
        ``retry_after_ms`` and ``should_retry`` set the ``retry-after``, ``retry-after-ms`` and
        ``x-should-retry`` headers.
        """
        code = _status_code(code)
        encoded = _encode_body(_contract.default_error_payload(code) if body is None else body)
        return cls(
            FaultKind.STATUS,
            status_code=code,
            body=encoded,
            content_type=content_type,
            headers=_header_pairs(headers, retry_after, retry_after_ms, should_retry),
        )

    @classmethod
    def html(cls, code: int = 502, *, headers: Mapping[str, str] | None = None) -> Fault:
        """Answer ``code`` with an HTML error page (``text/html``), as a proxy in front would."""
        code = _status_code(code)
        page = _HTML_PAGE.format(code=code, phrase=_contract.status_phrase(code))
        return cls.status(code, headers=headers, body=page, content_type="text/html")

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Wait ``seconds`` before sending the headers, then answer normally."""
        return cls(FaultKind.DELAY, seconds=_non_negative("seconds", seconds))

    @classmethod
    def slow_body(cls, chunk_delay: float, chunks: int = 4) -> Fault:
        """Answer normally, but send the body in ``chunks`` pieces, each after ``chunk_delay``.

        An event stream is sent one event at a time instead, with the wait before each event.
        """
        return cls(
            FaultKind.SLOW_BODY,
            seconds=_non_negative("chunk_delay", chunk_delay),
            chunks=_count("chunks", chunks, 1),
        )

    @classmethod
    def stall_body(cls, seconds: float) -> Fault:
        """Send the headers and half of the body, stall ``seconds``, then send the rest.

        The stall ends early when the server stops; an event stream stalls after half its events.
        """
        return cls(FaultKind.STALL_BODY, seconds=_non_negative("seconds", seconds))

    @classmethod
    def drop_before_headers(cls) -> Fault:
        """Read the request, then close the connection without answering."""
        return cls(FaultKind.DROP_BEFORE_HEADERS)

    @classmethod
    def drop_mid_body(cls) -> Fault:
        """Send the headers (with the full ``Content-Length``) and half the body, then close."""
        return cls(FaultKind.DROP_MID_BODY)

    @classmethod
    def malformed_json(cls) -> Fault:
        """Answer 200 ``application/json`` with a body that is not JSON."""
        return cls(FaultKind.MALFORMED_JSON)

    @classmethod
    def truncated_json(cls) -> Fault:
        """Answer 200 with the normal JSON cut in half (``Content-Length`` matches the cut)."""
        return cls(FaultKind.TRUNCATED_JSON)

    @classmethod
    def contract_violation(cls) -> Fault:
        """Answer 200 with valid JSON that breaks the contract (items without ``embedding``)."""
        return cls(FaultKind.CONTRACT_VIOLATION)

    @classmethod
    def sse_cut_mid_event(cls, after_items: int = 1) -> Fault:
        """Stream ``after_items`` events, then half of the next one, then end the body cleanly."""
        return cls(FaultKind.SSE_CUT_MID_EVENT, after_items=_count("after_items", after_items, 0))

    @classmethod
    def sse_drop(cls, after_items: int = 1) -> Fault:
        """Stream ``after_items`` events and half the next, then close without the last chunk."""
        return cls(FaultKind.SSE_DROP, after_items=_count("after_items", after_items, 0))

    @classmethod
    def sse_error(
        cls, status: int = 500, after_items: int = 1, message: str | None = None
    ) -> Fault:
        """Stream ``after_items`` events, then an ``error`` event carrying ``status``, then end."""
        code = _status_code(status)
        data = {"error": _contract.default_error_payload(code, message)["error"], "status": code}
        return cls(
            FaultKind.SSE_ERROR,
            status_code=code,
            body=_contract.encode_json(data),
            after_items=_count("after_items", after_items, 0),
        )

    @classmethod
    def sse_shuffle(cls, seed: int = 0) -> Fault:
        """Stream the ``embedding`` events in an order shuffled by ``seed`` (``done`` last)."""
        return cls(FaultKind.SSE_SHUFFLE, seed=seed)

    def with_headers(
        self,
        headers: Mapping[str, str] | None = None,
        *,
        retry_after: float | str | None = None,
        retry_after_ms: float | None = None,
        should_retry: bool | None = None,
    ) -> Fault:
        """Return a copy that also sends these headers with whatever answer it gives."""
        extra = _header_pairs(headers, retry_after, retry_after_ms, should_retry)
        return replace(self, headers=self.headers + extra)


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


class FaultSchedule:
    """Thread-safe source of each request's fault: the FIFO script first, then the random rate."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[tuple[str | None, Fault]] = []
        self._rate_fault: Fault | None = None
        self._rate = 0.0
        self._rng = random.Random(0)

    def enqueue(self, faults: Iterable[Fault], path: str | None = None) -> None:
        """Script one fault for each of the next requests (to ``path`` only, if given)."""
        items = list(faults)
        for fault in items:
            if not isinstance(fault, Fault):
                raise TypeError(f"expected a Fault, got {type(fault).__name__}")
        if path is not None and not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        with self._lock:
            self._queue.extend((path, fault) for fault in items)

    def set_rate(self, fault: Fault, rate: float, *, seed: int = 0) -> None:
        """Give each unscripted request ``fault`` with probability ``rate`` (seeded: repeatable)."""
        if not isinstance(fault, Fault):
            raise TypeError(f"expected a Fault, got {type(fault).__name__}")
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be between 0 and 1, got {rate}")
        with self._lock:
            self._rate_fault = fault
            self._rate = float(rate)
            self._rng = random.Random(seed)

    def next_for(self, path: str) -> Fault | None:
        """Take the fault for one request to ``path``: None means answer normally."""
        with self._lock:
            for position, (wanted, fault) in enumerate(self._queue):
                if wanted is None or wanted == path:
                    del self._queue[position]
                    return None if fault.kind is FaultKind.NONE else fault
            if self._rate_fault is not None and self._rng.random() < self._rate:
                return self._rate_fault
            return None

    def pending(self) -> int:
        """How many scripted faults are still waiting for a request."""
        with self._lock:
            return len(self._queue)

    def reset(self) -> None:
        """Forget the script and the rate."""
        with self._lock:
            self._queue.clear()
            self._rate_fault = None
            self._rate = 0.0
            self._rng = random.Random(0)
