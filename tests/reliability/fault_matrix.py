"""The fault matrix: what each client does with each way a call can fail (issue #7).

`MATRIX` is the one table of expected outcomes. Each `Row` is one fault, for one client
(``sync`` / ``async``), one kind of call (``plain`` ``create(...)`` or ``stream`` ``create(...,
stream=True)`` read to its end) and one variant (``persistent``: every attempt meets the fault;
``once``: the first attempt does, then the server answers normally). Every row is the documented
behaviour (docs/errors-and-retries.md and docs/streaming.md), with the settings below:
``max_retries=2``, and a read timeout of `READ_TIMEOUT` seconds where the fault stalls
(`RELAXED_READ_TIMEOUT` elsewhere).

`tests/reliability/test_fault_matrix.py` runs every row against a real `LocalServer`, and checks
that the "Reliability" table of docs/errors-and-retries.md is `render_markdown_table()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from aligneai import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    BadRequestError,
    CreateEmbeddingResponse,
    InternalServerError,
    RateLimitError,
)
from aligneai.testing import Fault

__all__ = [
    "BACKOFF_WAITS",
    "FAULTS",
    "MATRIX",
    "MAX_RETRIES",
    "READ_TIMEOUT",
    "RELAXED_READ_TIMEOUT",
    "FaultCase",
    "Row",
    "render_markdown_table",
]

MAX_RETRIES = 2
"""The matrix's ``max_retries`` (the default): a persistent retryable fault makes 3 attempts."""

READ_TIMEOUT = 0.5
"""The read timeout of the clients in the rows whose fault stalls: the only real waits.

Half a second: a hundred times what a loopback answer takes, so that on a loaded machine the
retry of a "once" row (or the half of a stream sent before a stall) still arrives in time.
"""

RELAXED_READ_TIMEOUT = 30.0
"""The read timeout of the clients in every other row: no fault there waits, and a loaded
machine must never turn a slow answer into a timeout the row does not expect."""

STALL_SECONDS = 5.0
"""How long the server stalls in the stall faults: ten times `READ_TIMEOUT`, so that a client
that missed its read timeout would overrun the row's time bound by seconds."""

# A wait: the (smallest, largest) seconds the client may sleep before one retry.
Wait = tuple[float, float]

BACKOFF_WAITS: tuple[Wait, ...] = ((0.375, 0.5), (0.75, 1.0))
"""The documented backoff before retry 1 and retry 2 (docs/errors-and-retries.md, "Retries"):
0.5 s doubling each retry, less up to 25 % jitter. Written down, not computed from the library's
`RetryPolicy`."""


@dataclass(frozen=True)
class FaultCase:
    """One way a call can fail, and how the server is made to fail that way.

    Attributes:
        key: a short id (used in test ids).
        label: what the reliability table calls it.
        make: the `Fault` the server injects; None for "connection refused" (no server).
        modes: the kinds of call it applies to (``plain``, ``stream``).
        retryable: whether the documented rules retry it (then a "once" variant exists).
        wait: the wait the server asks for before each retry (seconds), None for backoff.
        read_timeout: an attempt that meets it ends by the read timeout (a real wait).
        note: a remark for the table.
    """

    key: str
    label: str
    make: Optional[Callable[[], Fault]]  # noqa: UP045 - evaluated at runtime on 3.9
    modes: tuple[str, ...]
    retryable: bool
    wait: Optional[float] = None  # noqa: UP045
    read_timeout: bool = False
    note: str = ""


BOTH = ("plain", "stream")
PLAIN = ("plain",)
STREAM = ("stream",)

FAULTS: tuple[FaultCase, ...] = (
    FaultCase("refused", "connection refused", None, BOTH, True),
    FaultCase(
        "drop_before_headers",
        "connection dropped before the headers",
        Fault.drop_before_headers,
        BOTH,
        True,
    ),
    FaultCase(
        "drop_mid_body",
        "connection dropped mid-body",
        Fault.drop_mid_body,
        BOTH,
        True,
        note="stream: the body had started, so no retry",
    ),
    FaultCase(
        "stall_body",
        "body stalls past the read timeout",
        lambda: Fault.stall_body(STALL_SECONDS),
        BOTH,
        True,
        read_timeout=True,
        note="stream: the body had started, so no retry",
    ),
    FaultCase(
        "delay",
        "headers late past the read timeout",
        lambda: Fault.delay(STALL_SECONDS),
        BOTH,
        True,
        read_timeout=True,
    ),
    FaultCase("408", "408", lambda: Fault.status(408), BOTH, True),
    FaultCase("409", "409", lambda: Fault.status(409), BOTH, True),
    FaultCase("429", "429", lambda: Fault.status(429), BOTH, True),
    FaultCase(
        "429_retry_after",
        "429 + `retry-after: 1`",
        lambda: Fault.status(429, retry_after=1),
        BOTH,
        True,
        wait=1.0,
    ),
    FaultCase(
        "429_retry_after_ms",
        "429 + `retry-after-ms: 250`",
        lambda: Fault.status(429, retry_after_ms=250),
        BOTH,
        True,
        wait=0.25,
    ),
    FaultCase(
        "429_should_not_retry",
        "429 + `x-should-retry: false`",
        lambda: Fault.status(429, should_retry=False),
        BOTH,
        False,
    ),
    FaultCase(
        "429_retry_after_too_long",
        "429 + `retry-after: 120` (over 60 s: raised at once)",
        lambda: Fault.status(429, retry_after=120),
        BOTH,
        False,
    ),
    FaultCase("400", "400", lambda: Fault.status(400), BOTH, False),
    FaultCase(
        "400_should_retry",
        "400 + `x-should-retry: true`",
        lambda: Fault.status(400, should_retry=True),
        BOTH,
        True,
    ),
    FaultCase("500", "500", lambda: Fault.status(500), BOTH, True),
    FaultCase(
        "502_html", "502 with an HTML body (a proxy's page)", lambda: Fault.html(502), BOTH, True
    ),
    FaultCase("503", "503", lambda: Fault.status(503), BOTH, True),
    FaultCase("malformed_json", "200 with malformed JSON", Fault.malformed_json, BOTH, False),
    FaultCase("truncated_json", "200 with truncated JSON", Fault.truncated_json, BOTH, False),
    FaultCase(
        "contract_violation",
        "200 that violates the contract",
        Fault.contract_violation,
        BOTH,
        False,
    ),
    FaultCase(
        "sse_cut_mid_event",
        "event stream cut mid-event (body ends cleanly)",
        Fault.sse_cut_mid_event,
        STREAM,
        False,
    ),
    FaultCase(
        "sse_drop", "event stream dropped (connection closed)", Fault.sse_drop, STREAM, False
    ),
    FaultCase(
        "sse_error",
        "`event: error` (status 500) in the stream",
        lambda: Fault.sse_error(500),
        STREAM,
        False,
    ),
)

_BY_KEY = {case.key: case for case in FAULTS}


@dataclass(frozen=True)
class Row:
    """One expected outcome.

    Attributes:
        fault: the `FaultCase` key.
        client: ``sync`` or ``async``.
        mode: ``plain`` or ``stream``.
        variant: ``persistent`` (every attempt faulted) or ``once`` (then answered normally).
        outcome: the exception class raised (exactly), or `CreateEmbeddingResponse`.
        attempts: the attempts the client makes.
        server_sees: the attempts the server receives (fewer when the connection is refused).
        waits: the bounds of each injected retry sleep, in order (one per retry).
        read_timeouts: how many attempts end by the read timeout (real waits).
        during_iteration: for a stream, True when the error comes while iterating (after
            ``create`` returned), False when ``create`` raises it; None: not asserted.
    """

    fault: str
    client: str
    mode: str
    variant: str
    outcome: type
    attempts: int
    server_sees: int
    waits: tuple[Wait, ...]
    read_timeouts: int
    during_iteration: Optional[bool] = None  # noqa: UP045

    @property
    def case(self) -> FaultCase:
        """The fault of this row."""
        return _BY_KEY[self.fault]

    @property
    def id(self) -> str:
        """A test id."""
        return f"{self.fault}-{self.client}-{self.mode}-{self.variant}"

    @property
    def max_sleep(self) -> float:
        """The most the injected sleeps may add up to."""
        return sum(high for _, high in self.waits)

    @property
    def time_bound(self) -> float:
        """The most this call may take: its retry waits plus its read timeouts."""
        return self.max_sleep + self.read_timeouts * READ_TIMEOUT

    @property
    def read_timeout(self) -> float:
        """The read timeout the row's clients get (short only where the fault stalls)."""
        return READ_TIMEOUT if self.case.read_timeout else RELAXED_READ_TIMEOUT


def _waits(case: FaultCase, retries: int) -> tuple[Wait, ...]:
    if case.wait is not None:
        return tuple((case.wait, case.wait) for _ in range(retries))
    return BACKOFF_WAITS[:retries]


def _rows(
    fault: str,
    mode: str,
    variant: str,
    outcome: type,
    attempts: int,
    *,
    during_iteration: bool | None = None,
) -> list[Row]:
    """The row of this outcome for each client: the sync and async clients behave the same."""
    case = _BY_KEY[fault]
    failed_attempts = attempts if outcome is not CreateEmbeddingResponse else attempts - 1
    server_sees = attempts
    if case.make is None:  # refused: the server exists only for the "once" variant's retry
        server_sees = attempts - failed_attempts
    return [
        Row(
            fault=fault,
            client=client,
            mode=mode,
            variant=variant,
            outcome=outcome,
            attempts=attempts,
            server_sees=server_sees,
            waits=_waits(case, attempts - 1),
            read_timeouts=failed_attempts if case.read_timeout else 0,
            during_iteration=during_iteration,
        )
        for client in ("sync", "async")
    ]


def _retried(fault: str, error: type, modes: tuple[str, ...] = BOTH) -> list[Row]:
    """A retryable fault: persistent -> 3 attempts and ``error``; once -> success in 2."""
    rows: list[Row] = []
    for mode in modes:
        stream_error = False if mode == "stream" else None
        rows += _rows(
            fault, mode, "persistent", error, MAX_RETRIES + 1, during_iteration=stream_error
        )
        rows += _rows(fault, mode, "once", CreateEmbeddingResponse, 2)
    return rows


def _not_retried(
    fault: str, error: type, modes: tuple[str, ...] = BOTH, *, in_stream: bool | None = False
) -> list[Row]:
    """A fault that is not retried: one attempt, ``error``."""
    rows: list[Row] = []
    for mode in modes:
        during = in_stream if mode == "stream" else None
        rows += _rows(fault, mode, "persistent", error, 1, during_iteration=during)
    return rows


MATRIX: tuple[Row, ...] = tuple(
    # Below HTTP: connection errors and timeouts.
    _retried("refused", APIConnectionError)
    + _retried("drop_before_headers", APIConnectionError)
    + _retried("drop_mid_body", APIConnectionError, PLAIN)
    + _not_retried("drop_mid_body", APIConnectionError, STREAM, in_stream=True)
    + _retried("stall_body", APITimeoutError, PLAIN)
    + _not_retried("stall_body", APITimeoutError, STREAM, in_stream=True)
    + _retried("delay", APITimeoutError)
    # Error statuses: answered before any stream starts, so streams behave like plain calls.
    + _retried("408", APIStatusError)
    + _retried("409", APIStatusError)
    + _retried("429", RateLimitError)
    + _retried("429_retry_after", RateLimitError)
    + _retried("429_retry_after_ms", RateLimitError)
    + _not_retried("429_should_not_retry", RateLimitError)
    + _not_retried("429_retry_after_too_long", RateLimitError)
    + _not_retried("400", BadRequestError)
    + _retried("400_should_retry", BadRequestError)
    + _retried("500", InternalServerError)
    + _retried("502_html", InternalServerError)
    + _retried("503", InternalServerError)
    # A 2xx whose body breaks the contract: never retried. For a stream call the server's
    # answer is `application/json`, not an event stream: a 2xx that does not match the
    # contract, documented as APIResponseValidationError ("never ... a silent short result";
    # where it is raised is not asserted).
    + _not_retried("malformed_json", APIResponseValidationError, in_stream=None)
    + _not_retried("truncated_json", APIResponseValidationError, in_stream=None)
    + _not_retried("contract_violation", APIResponseValidationError, in_stream=None)
    # Event-stream faults (the server applies them to stream answers only).
    + _not_retried("sse_cut_mid_event", APIConnectionError, STREAM, in_stream=True)
    + _not_retried("sse_drop", APIConnectionError, STREAM, in_stream=True)
    + _not_retried("sse_error", InternalServerError, STREAM, in_stream=True)
)


# -- the reliability table -------------------------------------------------------------------


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _describe_waits(waits: tuple[Wait, ...]) -> str:
    if not waits:
        return "none"
    parts = []
    for low, high in waits:
        parts.append(_seconds(high) if low == high else f"{low:g}-{high:g} s")
    return ", ".join(parts)


def _time_bound(row: Row) -> str:
    parts = []
    if row.read_timeouts:
        plural = "s" if row.read_timeouts > 1 else ""
        parts.append(f"{row.read_timeouts} read timeout{plural}")
    if row.waits:
        parts.append(_seconds(row.max_sleep))
    return " + ".join(parts) or "no wait"


def _outcome(row: Row) -> str:
    if row.outcome is CreateEmbeddingResponse:
        return "result"
    text = f"`{row.outcome.__name__}`"
    if row.during_iteration:
        text += " while iterating"
    return text


def _once_text(once: Row | None) -> str:
    if once is None:
        return "n/a (not retried)"
    return f"{_outcome(once)}, {once.attempts} attempts"


def _cells(row: Row, once: Row | None) -> tuple[str, ...]:
    """The table cells of a row, but its fault and call."""
    attempts = str(row.attempts)
    if row.server_sees != row.attempts:
        attempts += f" (server sees {row.server_sees})"
    return (
        _outcome(row),
        attempts,
        _describe_waits(row.waits),
        _time_bound(row),
        _once_text(once),
    )


def _label(case: FaultCase, modes: tuple[str, ...]) -> str:
    note = case.note
    if note.startswith("stream: "):
        note = note[len("stream: ") :] if modes == STREAM else ""
    return f"{case.label} ({note})" if note else case.label


def render_markdown_table() -> str:
    """The "Reliability" table of docs/errors-and-retries.md: one line per fault and kind of call.

    A line covers both clients, and both kinds of call when they behave the same; should the
    sync and async clients ever differ, each gets its own line.
    """
    header = (
        "| fault | call | outcome (max_retries=2) | attempts | retry waits | time bound "
        "| fault once, then OK |\n"
        "| --- | --- | --- | --- | --- | --- | --- |\n"
    )
    lines: list[str] = []
    for case in FAULTS:
        # cells per (mode, client)
        cells: dict[tuple[str, str], tuple[str, ...]] = {}
        for mode in case.modes:
            for client in ("sync", "async"):
                persistent = _find(case.key, client, mode, "persistent")
                once = _find(case.key, client, mode, "once", required=False)
                assert persistent is not None
                cells[mode, client] = _cells(persistent, once)
        per_mode = {mode: cells[mode, "sync"] for mode in case.modes}
        clients_agree = all(cells[mode, "sync"] == cells[mode, "async"] for mode in case.modes)
        if clients_agree and len(set(per_mode.values())) == 1:
            call = ", ".join(_CALL[mode] for mode in case.modes)
            lines.append(_line(_label(case, case.modes), call, per_mode[case.modes[0]]))
            continue
        for mode in case.modes:
            label = _label(case, (mode,))
            if cells[mode, "sync"] == cells[mode, "async"]:
                lines.append(_line(label, _CALL[mode], cells[mode, "sync"]))
            else:
                for client in ("sync", "async"):
                    call = f"{_CALL[mode]} ({client})"
                    lines.append(_line(label, call, cells[mode, client]))
    return header + "\n".join(lines) + "\n"


_CALL = {"plain": "plain", "stream": "`stream=True`"}


def _find(fault: str, client: str, mode: str, variant: str, *, required: bool = True) -> Row | None:
    for row in MATRIX:
        if (row.fault, row.client, row.mode, row.variant) == (fault, client, mode, variant):
            return row
    if required:
        raise LookupError(f"no row for {fault} {client} {mode} {variant}")
    return None


def _line(label: str, call: str, cells: tuple[str, ...]) -> str:
    return "| " + " | ".join((label, call, *cells)) + " |"
