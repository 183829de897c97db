"""The bulk-embedding scheduler: which batch to send when, and what to do with each answer.

A pure state machine in the shape of `aligneai.core.flow`: the driver asks `Scheduler.next_action`
what to do at time ``now`` and gets a value back:

- `Dispatch` (a batch): send it now, then report the answer with `Scheduler.on_success` or
  `Scheduler.on_failure`;
- `Wait`: nothing may be sent before ``until`` (None: before a request in flight completes);
  wait for that or for a completion, whichever comes first, then ask again;
- `Finished`: every input has been embedded, skipped or recorded as failed.

`Scheduler.on_failure` returns the decision as a value: `RetryBatch` (429, 5xx, 408, 409 and
connection failures, a bounded number of times, after the server's ``retry-after`` or an
exponential backoff; a 429 also starts the shared hold of the `RateController`), `SplitBatch`
(400 ``request_too_large``: both halves are retried; with ``on_error="skip"`` any other
rejected batch is bisected too, so that only the bad inputs fail), `SkipBatch`
(``on_error="skip"``: the inputs are recorded as failed) or `Abort` (the driver raises).
No input is ever dropped: each one ends embedded exactly once, skipped (done by an earlier run),
or in `BulkCounters.failed`.

Memory stays bounded: a new batch is taken from the inputs only while it ends within
``max_window`` inputs of the lowest unfinished one, so the results a driver must hold back to
deliver them in order never exceed about ``max_window`` rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Callable, Optional, Union

import attrs

from .batching import (
    Batch,
    Batcher,
    InputTooLargeError,
    Oversized,
    Skipped,
    estimate_tokens,
)
from .errors import (
    APIConnectionError,
    APIStatusError,
    InvalidArgumentTypeError,
    InvalidArgumentValueError,
)
from .ratecontrol import RateController
from .retry import RetryPolicy, backoff_delay, parse_retry_after
from .wire import MAX_INPUTS

__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_MAX_RATE_LIMITED",
    "DEFAULT_MAX_RETRY_AFTER",
    "Abort",
    "BulkCounters",
    "Decision",
    "Dispatch",
    "Finished",
    "NextAction",
    "RequestFailure",
    "RetryBatch",
    "Scheduler",
    "SkipBatch",
    "SplitBatch",
    "Wait",
    "validate_bulk_arguments",
]

#: Attempts of one batch that fail with a 5xx, 408, 409 or a connection error before giving up.
DEFAULT_MAX_ATTEMPTS = 6
#: 429 answers one batch may receive before giving up (the shared hold paces them).
DEFAULT_MAX_RATE_LIMITED = 50
#: The longest wait a server may ask for (``retry-after``, or an exhausted budget's
#: ``x-ratelimit-reset-*``) that a run sits out, in seconds. A longer one (a daily quota spent)
#: stops the run at once, whatever ``on_error`` says: the inputs are not at fault, and a run
#: silently held for hours helps nobody. The output stays resumable. (A per-minute limit never
#: asks for more than a minute; the client's own retries give up past 60 s.)
DEFAULT_MAX_RETRY_AFTER = 300.0
#: Backoff of failed (not rate-limited) batches: 0.5 s doubling up to 30 s, minus up to 25 %.
BACKOFF = RetryPolicy(initial_delay=0.5, max_delay=30.0, jitter=0.25)
_FATAL_STATUSES = frozenset({401, 403, 404})
_RETRYABLE_STATUSES = frozenset({408, 409})


# -- actions -------------------------------------------------------------------------------


@attrs.frozen
class Dispatch:
    """Send ``batch`` now (``estimated_tokens`` is what the budgets were charged)."""

    batch: Batch
    estimated_tokens: int


@attrs.frozen
class Wait:
    """Send nothing before ``until`` (monotonic seconds), or until a request completes (None)."""

    until: Optional[float]  # noqa: UP045 - attrs evaluates this on 3.9


@attrs.frozen
class Finished:
    """Every input is embedded, was done before, or is recorded as failed."""


NextAction = Union[Dispatch, Wait, Finished]


# -- failures and decisions ----------------------------------------------------------------


@attrs.frozen
class RequestFailure:
    """What the scheduler needs to know about a failed request.

    Attributes:
        status: the HTTP status, or None when no answer arrived (a connection failure).
        code: the error object's ``code`` (e.g. ``"request_too_large"``), if any.
        retry_after: the wait the server asked for, in seconds, if any.
        headers: the answer's headers (lower-case names), for the ``x-ratelimit-*`` ones.
        message: a description for logs and reasons.
    """

    status: Optional[int]  # noqa: UP045
    code: Optional[str] = None  # noqa: UP045
    retry_after: Optional[float] = None  # noqa: UP045
    headers: Mapping[str, str] = attrs.field(factory=dict)
    message: str = ""

    @classmethod
    def from_error(cls, error: BaseException, wall_now: float) -> RequestFailure:
        """Describe an `APIStatusError` or `APIConnectionError` (``wall_now``: Unix seconds)."""
        if isinstance(error, APIStatusError):
            headers = dict(error.headers)
            return cls(
                status=error.status_code,
                code=error.code,
                retry_after=parse_retry_after(headers, wall_now),
                headers=headers,
                message=str(error),
            )
        if isinstance(error, APIConnectionError):
            return cls(status=None, message=str(error))
        raise TypeError(f"not a request failure: {type(error).__name__}")


@attrs.frozen
class RetryBatch:
    """The batch goes back in the queue, to be sent at ``not_before`` or later."""

    batch: Batch
    not_before: float
    reason: str


@attrs.frozen
class SplitBatch:
    """The batch was too large: its two halves go back in the queue."""

    halves: tuple[Batch, Batch]
    reason: str


@attrs.frozen
class SkipBatch:
    """``on_error="skip"``: the inputs ``[start, stop)`` are recorded as failed."""

    start: int
    stop: int
    reason: str


@attrs.frozen
class Abort:
    """Stop the run and raise: ``error`` when given, else the error of the failed request."""

    reason: str
    error: Optional[Exception] = None  # noqa: UP045


Decision = Union[RetryBatch, SplitBatch, SkipBatch, Abort]


@attrs.define
class BulkCounters:
    """What a run did so far.

    Attributes:
        embedded: inputs embedded by this run.
        resumed: inputs done by an earlier run (skipped).
        failed: indexes of inputs given up on (``on_error="skip"``), in no particular order.
        requests: requests sent.
        retries: requests sent again after a failure (a split counts once).
        rate_limited: 429 answers.
        tokens: tokens reported in ``usage``.
    """

    embedded: int = 0
    resumed: int = 0
    failed: list[int] = attrs.field(factory=list)
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    tokens: int = 0

    @property
    def done(self) -> int:
        """Inputs finished either way (embedded, resumed or failed)."""
        return self.embedded + self.resumed + len(self.failed)


def _positive_int(value: object, name: str, *, allow_none: bool) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentTypeError(name, f"expected a positive int, got {type(value).__name__}")
    if value < 1:
        raise InvalidArgumentValueError(name, f"must be at least 1, got {value}")
    return value


def _positive_number(value: object, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgumentTypeError(
            name, f"expected a positive number, got {type(value).__name__}"
        )
    if not math.isfinite(value) or value <= 0:
        raise InvalidArgumentValueError(name, f"must be a positive number, got {value!r}")
    return float(value)


def validate_bulk_arguments(
    *,
    batch_size: object,
    max_batch_tokens: object,
    max_concurrency: object,
    requests_per_minute: object,
    tokens_per_minute: object,
    on_error: object,
) -> None:
    """Check the scheduling arguments of ``create_many`` / ``iter_many``, naming a bad one."""
    size = _positive_int(batch_size, "batch_size", allow_none=False)
    assert size is not None
    if size > MAX_INPUTS:
        raise InvalidArgumentValueError(
            "batch_size", f"at most {MAX_INPUTS} inputs per request, got {size}"
        )
    _positive_int(max_batch_tokens, "max_batch_tokens", allow_none=True)
    _positive_int(max_concurrency, "max_concurrency", allow_none=True)
    _positive_number(requests_per_minute, "requests_per_minute")
    _positive_number(tokens_per_minute, "tokens_per_minute")
    if on_error not in ("raise", "skip"):
        raise InvalidArgumentValueError("on_error", f"expected 'raise' or 'skip', got {on_error!r}")


@attrs.define
class _InFlight:
    batch: Batch
    sent_at: float
    estimated_tokens: int
    sequence: int  # dispatch order


class Scheduler:
    """Schedules the batches of one bulk run (see the module's docstring).

    Args:
        inputs: any iterable of str, read lazily and once.
        now: the current monotonic time.
        random: returns floats in [0, 1) (backoff jitter).
        batch_size, max_batch_tokens, max_concurrency, requests_per_minute,
            tokens_per_minute, on_error: as for ``create_many``. ``max_batch_tokens`` is also
            the per-request cap: an input estimated above it alone is never sent.
        done: ``(start, stop)`` ranges finished by an earlier run: read, never sent.
        on_resumed: called with ``(start, stop, texts)`` for each part of a done range as it is
            read (the driver checks the texts against the checkpoint's digests; it may raise).
        max_window: the most inputs between the lowest unfinished one and the end of the last
            batch taken (None: ``batch_size * 2 * concurrency``, following the window).
        max_attempts, max_rate_limited: per-batch retry bounds.
        max_retry_after: the longest wait the server may ask for (see
            `DEFAULT_MAX_RETRY_AFTER`); a longer one aborts the run.
        rate: the `RateController` of an earlier run of the same caller, to carry its budgets
            and what it learned over (None: a new one from the arguments above).
    """

    def __init__(
        self,
        inputs: Iterable[object],
        *,
        now: float,
        random: Callable[[], float],
        batch_size: int = 2048,
        max_batch_tokens: int | None = None,
        max_concurrency: int | None = None,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        on_error: str = "raise",
        done: Sequence[tuple[int, int]] = (),
        on_resumed: Callable[[int, int, tuple[str, ...]], None] | None = None,
        max_window: int | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        max_rate_limited: int = DEFAULT_MAX_RATE_LIMITED,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
        rate: RateController | None = None,
    ) -> None:
        checked = _positive_number(max_retry_after, "max_retry_after")
        if checked is None:
            raise InvalidArgumentTypeError("max_retry_after", "expected a positive number")
        validate_bulk_arguments(
            batch_size=batch_size,
            max_batch_tokens=max_batch_tokens,
            max_concurrency=max_concurrency,
            requests_per_minute=requests_per_minute,
            tokens_per_minute=tokens_per_minute,
            on_error=on_error,
        )
        self._on_resumed = on_resumed
        self.batcher = Batcher(
            inputs,
            batch_size=batch_size,
            max_batch_tokens=max_batch_tokens,
            max_input_tokens=max_batch_tokens,
            done=done,
        )
        # A controller from an earlier run of the same caller keeps its buckets, the server's
        # limits it learned and its concurrency: consecutive runs of one engine worker or
        # framework adapter then keep to their budget over any minute, not per run.
        self.rate = (
            rate
            if rate is not None
            else RateController(
                requests_per_minute=requests_per_minute,
                tokens_per_minute=tokens_per_minute,
                max_concurrency=max_concurrency,
                now=now,
            )
        )
        self.on_error = on_error
        self.batch_size = batch_size
        self.max_window = max_window
        self.max_attempts = max_attempts
        self.max_rate_limited = max_rate_limited
        self.max_retry_after = checked
        self.counters = BulkCounters()
        self._random = random
        self._next_new: Batch | None = None
        self._retry: list[tuple[float, Batch]] = []
        self._in_flight: dict[int, _InFlight] = {}
        self._aborted = False
        self._last_full = -math.inf  # when the window last limited sending

    # -- state ----------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet reported."""
        return len(self._in_flight)

    @property
    def low_watermark(self) -> int:
        """Every input below this index is finished (embedded, skipped or failed)."""
        low = self.batcher.position if self._next_new is None else self._next_new.start
        for flight in self._in_flight.values():
            low = min(low, flight.batch.start)
        for _, batch in self._retry:
            low = min(low, batch.start)
        return low

    @property
    def window(self) -> int:
        """The most inputs between the low watermark and the end of the last batch taken."""
        if self.max_window is not None:
            return self.max_window
        return self.batch_size * 2 * self.rate.concurrency

    @property
    def total(self) -> int | None:
        """The number of inputs, once they have all been read."""
        return self.batcher.position if self.batcher.exhausted and self._next_new is None else None

    # -- the loop -------------------------------------------------------------------------

    def _fill(self) -> None:
        while self._next_new is None:
            item = self.batcher.next_item(self.rate.tokens_per_char)
            if item is None:
                return
            if isinstance(item, Batch):
                self._next_new = item
            elif isinstance(item, Skipped):
                if self._on_resumed is not None:
                    self._on_resumed(item.start, item.stop, item.texts)
                self.counters.resumed += len(item.texts)
            elif isinstance(item, Oversized):
                error = InputTooLargeError(
                    item.index,
                    f"estimated at {item.estimated_tokens} tokens, more than max_batch_tokens "
                    f"({item.cap}); it was not sent",
                )
                if self.on_error == "raise":
                    self._aborted = True
                    raise error
                self.counters.failed.append(item.index)

    def next_action(self, now: float) -> NextAction:
        """What to do at ``now``: `Dispatch`, `Wait` or `Finished`.

        Raises an `InvalidArgumentError` naming ``inputs[i]`` for a bad input (or one too large
        to send, with ``on_error="raise"``), and whatever ``on_resumed`` raises.
        """
        if self._aborted:
            raise RuntimeError("the run was aborted")
        self._fill()
        if not self._in_flight and not self._retry and self._next_new is None:
            return Finished()
        if len(self._in_flight) >= self.rate.concurrency:
            self._last_full = now
            return Wait(None)
        candidate: Batch | None = None
        ready = [item for item in self._retry if item[0] <= now]
        if ready:
            candidate = min(ready, key=lambda item: item[1].start)[1]
        elif self._next_new is not None and (
            self._next_new.stop - self.low_watermark <= self.window
            or self.low_watermark == self._next_new.start
        ):
            candidate = self._next_new
        if candidate is None:
            timers = [not_before for not_before, _ in self._retry]
            return Wait(min(timers) if timers else None)
        estimated = estimate_tokens(candidate.chars, self.rate.tokens_per_char)
        ready_at = self.rate.ready_at(estimated, now)
        if ready_at > now:
            return Wait(ready_at)
        if candidate is self._next_new:
            self._next_new = None
        else:
            self._retry = [item for item in self._retry if item[1] is not candidate]
        self._in_flight[candidate.start] = _InFlight(
            candidate, now, estimated, self.counters.requests
        )
        if len(self._in_flight) >= self.rate.concurrency:
            self._last_full = now
        self.rate.on_dispatch(estimated, now)
        self.counters.requests += 1
        return Dispatch(candidate, estimated)

    def _landed(self, batch: Batch) -> _InFlight:
        flight = self._in_flight.get(batch.start)
        if flight is None or (flight.batch is not batch and flight.batch != batch):
            raise ValueError(f"inputs [{batch.start}, {batch.stop}) are not in flight")
        del self._in_flight[batch.start]
        return flight

    def on_success(
        self, batch: Batch, tokens: int | None, headers: Mapping[str, str], now: float
    ) -> None:
        """``batch`` was embedded; ``tokens`` is the answer's ``usage`` (None: not reported)."""
        flight = self._landed(batch)
        later = [f for f in self._in_flight.values() if f.sequence > flight.sequence]
        self.rate.on_success(
            sent_at=flight.sent_at,
            estimated_tokens=flight.estimated_tokens,
            tokens=tokens,
            chars=batch.chars,
            headers=headers,
            # The window limited sending at some point while this request was out.
            pipe_full=self._last_full >= flight.sent_at,
            now=now,
            later_requests=len(later),
            later_tokens=sum(f.estimated_tokens for f in later),
        )
        self.counters.embedded += len(batch)
        if tokens is not None:
            self.counters.tokens += tokens

    def on_failure(self, batch: Batch, failure: RequestFailure, now: float) -> Decision:
        """``batch`` failed; returns (and applies) what happens next."""
        flight = self._landed(batch)
        decision = self._decide(flight, failure, now)
        if isinstance(decision, RetryBatch):
            self._retry.append((decision.not_before, decision.batch))
            self.counters.retries += 1
        elif isinstance(decision, SplitBatch):
            for half in decision.halves:
                self._retry.append((now, half))
            self.counters.retries += 1
        elif isinstance(decision, SkipBatch):
            self.counters.failed.extend(range(decision.start, decision.stop))
        else:
            self._aborted = True
        return decision

    def _give_up(self, batch: Batch, reason: str) -> Decision:
        if self.on_error == "skip":
            return SkipBatch(batch.start, batch.stop, reason)
        return Abort(reason)

    def _too_long(self, where: str, wait: float) -> Abort:
        return Abort(
            f"{where}: the server asked to wait {wait:.6g} s, longer than the "
            f"{self.max_retry_after:g} s a bulk run waits"
        )

    def _decide(self, flight: _InFlight, failure: RequestFailure, now: float) -> Decision:
        batch = flight.batch
        status = failure.status
        where = f"inputs [{batch.start}, {batch.stop})"
        if status == 429:
            self.counters.rate_limited += 1
            hold = self.rate.on_rate_limited(
                sent_at=flight.sent_at,
                retry_after=failure.retry_after,
                headers=failure.headers,
                now=now,
            )
            if hold - now > self.max_retry_after:
                return self._too_long(where, hold - now)
            rate_limited = batch.rate_limited + 1
            if rate_limited > self.max_rate_limited:
                return self._give_up(batch, f"{where}: rate limited {rate_limited} times")
            return RetryBatch(
                attrs.evolve(batch, rate_limited=rate_limited),
                hold,
                f"{where}: 429, every request holds until {hold:.3f}",
            )
        self.rate.observe_headers(failure.headers, now)
        if status is not None and status in _FATAL_STATUSES:
            return Abort(f"{where}: status {status}")
        if status == 400 and failure.code == "request_too_large":
            if len(batch) == 1:
                error = InputTooLargeError(
                    batch.start, "the server rejected it as larger than its per-request token cap"
                )
                if self.on_error == "skip":
                    return SkipBatch(batch.start, batch.stop, str(error))
                return Abort(str(error), error)
            # Remember that a batch this large is too large, so later ones are cut smaller.
            cap = max(1, flight.estimated_tokens // 2)
            current = self.batcher.max_batch_tokens
            self.batcher.max_batch_tokens = cap if current is None else min(current, cap)
            return SplitBatch(batch.split(), f"{where}: request_too_large, split in two")
        if status is None or status >= 500 or status in _RETRYABLE_STATUSES:
            attempt = batch.attempt + 1
            if attempt >= self.max_attempts:
                return self._give_up(
                    batch, f"{where}: failed {attempt} times, last: {failure.message}"
                )
            delay = failure.retry_after
            if delay is None:
                delay = backoff_delay(BACKOFF, batch.attempt, self._random())
            elif delay > self.max_retry_after:
                return self._too_long(where, delay)
            return RetryBatch(
                attrs.evolve(batch, attempt=attempt),
                now + delay,
                f"{where}: {failure.message or status}; retrying in {delay:.3g} s",
            )
        # Any other rejection: with on_error="skip", bisect to find the inputs at fault.
        if self.on_error == "skip" and len(batch) > 1:
            return SplitBatch(batch.split(), f"{where}: status {status}, bisecting")
        return self._give_up(batch, f"{where}: status {status}: {failure.message}")
