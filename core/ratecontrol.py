"""Rate control for bulk embedding: a pure state machine fed events and the time.

No threads, no clock: every method takes ``now`` (monotonic seconds) from the driver.

The rule
--------
*Budgets.* Two token buckets, one counting requests and one counting tokens, refilling
continuously at ``limit / 60`` per second. They are seeded from ``requests_per_minute`` /
``tokens_per_minute`` (the caller's own budgets, never exceeded; a bucket holds one minute's
worth) and, whenever an answer carries them, from the server's ``x-ratelimit-*`` headers: the
rate follows the smaller of the budget and ``x-ratelimit-limit-{requests,tokens}``; the size
follows the server's bucket, ``remaining + reset * limit / 60`` (``reset`` being the time until
that bucket is full again); the level drops to ``x-ratelimit-remaining-*`` minus what was sent
after the answered request and is still in flight (a header never raises it: answers arrive
late and out of order). A request is sent only when both buckets hold its cost: 1 request and
its estimated tokens (a request costlier than a full bucket waits for a full bucket). Its real
token count (``usage``) replaces the estimate once the answer is in.

*Concurrency (AIMD).* The number of requests in flight is limited by a window that starts at
`INITIAL_CONCURRENCY`. When a request succeeds while the pipe was full (the window limited
sending at some point while it was out) and calm (no shared hold, and it was sent after the last
decrease), the window grows: by 1 per success below the slow-start threshold (doubling per round
trip, like TCP slow start), by ``1 / window`` per success above it (about 1 per round trip). On
a 429 the window is multiplied by `DECREASE_FACTOR` (at least 1) and the threshold set to the
result, at most once per round trip (a 429 for a request sent before the last decrease does not
decrease it again); not when the server's limits are known from its headers, since the buckets
then pace the requests and a 429 says the pace, not the concurrency, was off. It never exceeds
`MAX_ADAPTIVE_CONCURRENCY`, or ``max_concurrency`` when that is given.

*One shared hold on 429.* A 429 stops every dispatch until its ``retry-after`` (or
``retry-after-ms``) has passed, for all workers at once. Without one, the hold lasts the
``x-ratelimit-reset-*`` of the exhausted budget when sent, else an exponential backoff from
`RATE_LIMIT_BACKOFF` seconds, doubling per consecutive 429 up to `RATE_LIMIT_BACKOFF_MAX`. The
buckets are also emptied at the 429, so pacing after the hold starts from what refilled during
it.

*Learned pace, when the server sends no limits.* If no ``x-ratelimit-limit-*`` header tells
the pace, a 429 teaches it: the server's budget is spent, so the
tokens it accepted since the previous 429 (over at most `PACE_MEASURE_MAX` seconds, at least
`PACE_MEASURE_MIN`) were its refill rate. The pace becomes `PACE_MARGIN` times that rate (or,
with too short a measure, `DECREASE_FACTOR` times the current pace) and drives a third bucket
holding `PACE_BURST` seconds' worth of tokens. While calm it grows by `PACE_GROWTH` per second
(compounded), never above twice the measured rate, to find a limit that was raised.

*Tokens per character.* The token estimate of a text is ``len(text) * ratio``; the ratio starts
at `DEFAULT_TOKENS_PER_CHAR` and becomes ``sum(usage tokens) / sum(characters)`` over every
successful request once one has answered.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Optional

import attrs

from .batching import DEFAULT_TOKENS_PER_CHAR
from .wire import (
    RATELIMIT_LIMIT_REQUESTS,
    RATELIMIT_LIMIT_TOKENS,
    RATELIMIT_REMAINING_REQUESTS,
    RATELIMIT_REMAINING_TOKENS,
    RATELIMIT_RESET_REQUESTS,
    RATELIMIT_RESET_TOKENS,
)

__all__ = [
    "DECREASE_FACTOR",
    "INITIAL_CONCURRENCY",
    "MAX_ADAPTIVE_CONCURRENCY",
    "PACE_BURST",
    "PACE_GROWTH",
    "PACE_MARGIN",
    "PACE_MEASURE_MAX",
    "PACE_MEASURE_MIN",
    "RATE_LIMIT_BACKOFF",
    "RATE_LIMIT_BACKOFF_MAX",
    "RateController",
    "RateLimitInfo",
    "TokenBucket",
    "parse_duration",
    "parse_rate_limit_headers",
]

#: Requests in flight at the start of an adaptive run.
INITIAL_CONCURRENCY = 4
#: The ceiling of the adaptive window when ``max_concurrency`` is not given.
MAX_ADAPTIVE_CONCURRENCY = 64
#: The window is multiplied by this on a 429 (as AWS's adaptive mode and CUBIC do).
DECREASE_FACTOR = 0.7
#: The first shared hold after a 429 that names no wait, in seconds; it doubles per 429 in a row.
RATE_LIMIT_BACKOFF = 1.0
#: The longest such hold, in seconds.
RATE_LIMIT_BACKOFF_MAX = 32.0

#: The learned pace is this share of the token rate measured between two 429s.
PACE_MARGIN = 0.95
#: The shortest and longest span (seconds) over which the accepted token rate is measured.
PACE_MEASURE_MIN = 5.0
PACE_MEASURE_MAX = 60.0
#: Seconds of tokens the learned-pace bucket may hold (its burst).
PACE_BURST = 5.0
#: Growth of the learned pace per second while calm (1 %: about 35 s to recover a 0.7 cut).
PACE_GROWTH = 0.01

_MINUTE = 60.0
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|m|s|us|µs|ns)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def parse_duration(text: str | None) -> float | None:
    """Seconds from a reset header: ``"1.5s"``, ``"120ms"``, ``"1m30s"``, ``"2"``; None if bad."""
    if text is None:
        return None
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        return value if math.isfinite(value) and value >= 0 else None
    total = 0.0
    position = 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(text) or position == 0:
        return None
    return total if math.isfinite(total) else None


def _count(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


@attrs.frozen
class RateLimitInfo:
    """The ``x-ratelimit-*`` headers of one answer (None for each one absent or garbled)."""

    limit_requests: Optional[float] = None  # noqa: UP045 - attrs evaluates this on 3.9
    remaining_requests: Optional[float] = None  # noqa: UP045
    reset_requests: Optional[float] = None  # noqa: UP045
    limit_tokens: Optional[float] = None  # noqa: UP045
    remaining_tokens: Optional[float] = None  # noqa: UP045
    reset_tokens: Optional[float] = None  # noqa: UP045


def parse_rate_limit_headers(headers: Mapping[str, str]) -> RateLimitInfo:
    """Read ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` (lower-case names)."""
    return RateLimitInfo(
        limit_requests=_count(headers.get(RATELIMIT_LIMIT_REQUESTS)),
        remaining_requests=_count(headers.get(RATELIMIT_REMAINING_REQUESTS)),
        reset_requests=parse_duration(headers.get(RATELIMIT_RESET_REQUESTS)),
        limit_tokens=_count(headers.get(RATELIMIT_LIMIT_TOKENS)),
        remaining_tokens=_count(headers.get(RATELIMIT_REMAINING_TOKENS)),
        reset_tokens=parse_duration(headers.get(RATELIMIT_RESET_TOKENS)),
    )


@attrs.define
class TokenBucket:
    """A bucket of ``capacity`` refilled at ``rate`` per second; ``level`` may go negative."""

    capacity: float
    rate: float
    level: float
    updated: float

    @classmethod
    def per_minute(cls, limit: float, now: float) -> TokenBucket:
        """A full bucket for a per-minute limit."""
        return cls(capacity=limit, rate=limit / _MINUTE, level=limit, updated=now)

    def refill(self, now: float) -> None:
        """Add what flowed in since the last update."""
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
            self.updated = now

    def wait_time(self, amount: float, now: float) -> float:
        """Seconds from ``now`` until ``amount`` can be taken (a full bucket for a large one)."""
        self.refill(now)
        need = min(amount, self.capacity)
        if self.level >= need:
            return 0.0
        if self.rate <= 0:
            return math.inf
        return (need - self.level) / self.rate

    def take(self, amount: float, now: float) -> None:
        """Remove ``amount`` (the level may go below zero: a debt paid by the refill)."""
        self.refill(now)
        self.level -= amount

    def set(self, capacity: float, rate: float, now: float) -> None:
        """Follow a new size and refill rate, keeping the level within the new capacity."""
        self.refill(now)
        self.capacity = capacity
        self.rate = rate
        self.level = min(self.level, capacity)


class RateController:
    """Budgets, the concurrency window and the shared hold (see the module's docstring).

    Args:
        requests_per_minute, tokens_per_minute: the caller's budgets (None: none).
        max_concurrency: None for an adaptive window up to `MAX_ADAPTIVE_CONCURRENCY`; an int
            is the window's ceiling.
        now: the current monotonic time.
    """

    def __init__(
        self,
        *,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        max_concurrency: int | None = None,
        now: float,
    ) -> None:
        self._budget_requests = requests_per_minute
        self._budget_tokens = tokens_per_minute
        self.requests: TokenBucket | None = (
            None
            if requests_per_minute is None
            else TokenBucket.per_minute(requests_per_minute, now)
        )
        self.tokens: TokenBucket | None = (
            None if tokens_per_minute is None else TokenBucket.per_minute(tokens_per_minute, now)
        )
        self.ceiling = MAX_ADAPTIVE_CONCURRENCY if max_concurrency is None else max_concurrency
        self.window = float(min(INITIAL_CONCURRENCY, self.ceiling))
        self.threshold = math.inf
        self.hold_until = -math.inf
        self.last_decrease = -math.inf
        self.rate_limited_in_a_row = 0
        self._chars = 0
        self._tokens = 0
        self._server_limits = False  # an answer carried x-ratelimit-limit-*
        self.pace: TokenBucket | None = None  # learned from 429s when no limit is known
        self._accepted: list[tuple[float, int]] = []  # (time, tokens) of recent successes
        self._pace_set_at = now  # when a 429 last set the pace (the start of its measure)
        self._pace_grown = now

    # -- what may be sent -----------------------------------------------------------------

    @property
    def concurrency(self) -> int:
        """The most requests to have in flight now."""
        return max(1, min(self.ceiling, int(self.window)))

    @property
    def tokens_per_char(self) -> float:
        """The learned tokens-per-character ratio (the default until a request has answered)."""
        if self._chars == 0 or self._tokens == 0:
            return DEFAULT_TOKENS_PER_CHAR
        return self._tokens / self._chars

    def ready_at(self, tokens: int, now: float) -> float:
        """The earliest time (>= ``now``) when a request of ``tokens`` tokens may be sent."""
        wait = 0.0
        if self.requests is not None:
            wait = max(wait, self.requests.wait_time(1, now))
        if self.tokens is not None:
            wait = max(wait, self.tokens.wait_time(tokens, now))
        if self.pace is not None:
            wait = max(wait, self.pace.wait_time(tokens, now))
        return max(now + wait, self.hold_until)

    def on_dispatch(self, tokens: int, now: float) -> None:
        """A request of ``tokens`` estimated tokens was sent."""
        if self.requests is not None:
            self.requests.take(1, now)
        if self.tokens is not None:
            self.tokens.take(tokens, now)
        if self.pace is not None:
            self.pace.take(tokens, now)

    @property
    def server_limits_known(self) -> bool:
        """True once an answer has carried an ``x-ratelimit-limit-*`` header."""
        return self._server_limits

    def _measured_rate(self, now: float, shortest: float = PACE_MEASURE_MIN) -> float | None:
        """Tokens per second accepted since the pace was last set (within the measuring span)."""
        since = max(self._pace_set_at, now - PACE_MEASURE_MAX)
        if now - since < max(shortest, 1e-9):
            return None
        return sum(tokens for when, tokens in self._accepted if when > since) / (now - since)

    def _learn_pace(self, now: float) -> None:
        measured = self._measured_rate(now)
        if measured is None and self.pace is None:
            # The first 429: any measure beats none (the next 429 corrects an inflated one).
            measured = self._measured_rate(now, shortest=0.0)
        if measured is not None and measured > 0:
            self._set_pace(PACE_MARGIN * measured, now)
        elif self.pace is not None:
            self._set_pace(self.pace.rate * DECREASE_FACTOR, now)
        else:
            return  # nothing accepted yet: the hold alone paces
        self._pace_set_at = now

    def _set_pace(self, rate: float, now: float) -> None:
        rate = max(rate, 1e-3)
        if self.pace is None:
            self.pace = TokenBucket(rate * PACE_BURST, rate, 0.0, now)
        else:
            self.pace.refill(now)
            self.pace.rate = rate
            self.pace.capacity = rate * PACE_BURST
            self.pace.level = min(self.pace.level, self.pace.capacity)

    # -- what came back -------------------------------------------------------------------

    def observe_headers(
        self,
        headers: Mapping[str, str],
        now: float,
        *,
        later_requests: int = 0,
        later_tokens: int = 0,
    ) -> None:
        """Follow the server's ``x-ratelimit-*`` headers (from any answer, 429s included).

        ``later_requests`` / ``later_tokens``: what was sent after the answered request and is
        still in flight; the server may not have counted it in its ``remaining`` yet.
        """
        info = parse_rate_limit_headers(headers)
        if (info.limit_requests or 0) > 0 or (info.limit_tokens or 0) > 0:
            self._server_limits = True
        self.requests = self._follow(
            self.requests,
            self._budget_requests,
            info.limit_requests,
            info.remaining_requests,
            info.reset_requests,
            later_requests,
            now,
        )
        self.tokens = self._follow(
            self.tokens,
            self._budget_tokens,
            info.limit_tokens,
            info.remaining_tokens,
            info.reset_tokens,
            later_tokens,
            now,
        )

    @staticmethod
    def _follow(
        bucket: TokenBucket | None,
        budget: float | None,
        limit: float | None,
        remaining: float | None,
        reset: float | None,
        later: float,
        now: float,
    ) -> TokenBucket | None:
        if limit is not None and limit > 0:
            rate = limit / _MINUTE
            capacity = limit
            if remaining is not None and reset is not None:
                # The reset is the time until the server's bucket is full again: that tells
                # its size, which may be less than a minute's worth (a smaller burst).
                capacity = min(limit, max(1.0, remaining + reset * rate))
            if budget is not None:
                rate = min(rate, budget / _MINUTE)
                capacity = min(capacity, budget)
            if bucket is None:
                bucket = TokenBucket(capacity, rate, capacity, now)
            else:
                bucket.set(capacity, rate, now)
        if bucket is not None and remaining is not None:
            bucket.refill(now)
            bucket.level = min(bucket.level, remaining - later)
        return bucket

    def on_success(
        self,
        *,
        sent_at: float,
        estimated_tokens: int,
        tokens: int | None,
        chars: int,
        headers: Mapping[str, str],
        pipe_full: bool,
        now: float,
        later_requests: int = 0,
        later_tokens: int = 0,
    ) -> None:
        """A request sent at ``sent_at`` succeeded; ``tokens`` is its ``usage`` (None: unknown).

        ``pipe_full`` tells whether the window limited sending while it was out;
        ``later_requests`` / ``later_tokens`` as for `observe_headers`.
        """
        if tokens is not None and tokens > 0 and chars > 0:
            self._chars += chars
            self._tokens += tokens
            if self.tokens is not None:
                self.tokens.refill(now)
                self.tokens.level -= tokens - estimated_tokens
        self.observe_headers(headers, now, later_requests=later_requests, later_tokens=later_tokens)
        self.rate_limited_in_a_row = 0
        if tokens is not None:
            self._accepted.append((now, tokens))
            while self._accepted and self._accepted[0][0] < now - PACE_MEASURE_MAX:
                self._accepted.pop(0)
        if self._server_limits:
            self.pace = None
        elif self.pace is not None and now >= self.hold_until:
            grown = self.pace.rate * (1.0 + PACE_GROWTH) ** max(0.0, now - self._pace_grown)
            measured = self._measured_rate(now)
            if measured is not None:
                grown = min(grown, max(2.0 * measured, self.pace.rate))
            self._set_pace(grown, now)
        self._pace_grown = now
        if pipe_full and now >= self.hold_until and sent_at >= self.last_decrease:
            if self.window < self.threshold:
                self.window += 1.0
            else:
                self.window += 1.0 / self.window
            self.window = min(self.window, float(self.ceiling))

    def on_rate_limited(
        self,
        *,
        sent_at: float,
        retry_after: float | None,
        headers: Mapping[str, str],
        now: float,
    ) -> float:
        """A request sent at ``sent_at`` was answered 429; returns the end of the shared hold."""
        self.observe_headers(headers, now)
        self.rate_limited_in_a_row += 1
        wait = retry_after
        if wait is None:
            info = parse_rate_limit_headers(headers)
            resets = []
            if info.remaining_requests == 0 and info.reset_requests is not None:
                resets.append(info.reset_requests)
            if info.remaining_tokens is not None and info.reset_tokens is not None:
                resets.append(info.reset_tokens if info.remaining_tokens == 0 else 0.0)
            if resets and max(resets) > 0:
                wait = max(resets)
        if wait is None:
            wait = min(
                RATE_LIMIT_BACKOFF * 2.0 ** min(self.rate_limited_in_a_row - 1, 30),
                RATE_LIMIT_BACKOFF_MAX,
            )
        self.hold_until = max(self.hold_until, now + wait)
        if not self._server_limits and (self.pace is None or sent_at >= self._pace_set_at):
            self._learn_pace(now)
        # The server's budget is spent: pace from an empty bucket once the hold ends.
        for bucket in (self.requests, self.tokens, self.pace):
            if bucket is not None:
                bucket.refill(now)
                bucket.level = min(bucket.level, 0.0)
        # With the server's limits known, the buckets pace the requests and a 429 says the pace
        # was off, not that too many were in flight: the window is left alone (cutting it would
        # leave slow start, and take minutes to regain the concurrency the latency needs).
        if not self._server_limits and sent_at >= self.last_decrease:
            self.window = max(1.0, self.window * DECREASE_FACTOR)
            self.threshold = self.window
            self.last_decrease = now
        return self.hold_until
