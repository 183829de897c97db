"""The local server's rate limiter: token buckets for requests and tokens per minute.

Each budget is a token bucket:

* it holds at most ``burst = max(per_minute * BURST_FRACTION, 1)`` units (one sixth of the
  minute's budget: 10 seconds' worth), and starts full;
* it refills continuously at ``per_minute / 60`` units a second;
* a request needing ``cost`` units is admitted when the bucket holds ``min(cost, burst)``; it
  then takes the whole ``cost``, so a request larger than the burst leaves the bucket in debt
  (below zero) and the long-run rate never exceeds the budget;
* when a bucket is short, the request is refused and *neither* bucket is charged; the wait it
  reports is the time until every bucket holds what the request needs.

Everything here takes the time as an argument (``now``, seconds on a monotonic clock): the
server passes its clock, tests pass a fake one, and nothing sleeps.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from aligneai.core.wire import (
    RATELIMIT_LIMIT_REQUESTS,
    RATELIMIT_LIMIT_TOKENS,
    RATELIMIT_REMAINING_REQUESTS,
    RATELIMIT_REMAINING_TOKENS,
    RATELIMIT_RESET_REQUESTS,
    RATELIMIT_RESET_TOKENS,
    RETRY_AFTER,
    RETRY_AFTER_MS,
)

__all__ = [
    "BURST_FRACTION",
    "RateDecision",
    "RateLimiter",
    "TokenBucket",
    "format_reset",
    "retry_after_headers",
]

BURST_FRACTION = 1.0 / 6.0
"""A bucket holds this fraction of its per-minute budget (at least 1): 10 seconds' worth."""

# Float sums of refills can land a hair below the exact level; a client that waited exactly
# the reported time must be admitted.
_EPSILON = 1e-9

# A budget's name -> its limit, remaining and reset header names.
_HEADER_NAMES = {
    "requests": (RATELIMIT_LIMIT_REQUESTS, RATELIMIT_REMAINING_REQUESTS, RATELIMIT_RESET_REQUESTS),
    "tokens": (RATELIMIT_LIMIT_TOKENS, RATELIMIT_REMAINING_TOKENS, RATELIMIT_RESET_TOKENS),
}

_Headers = tuple[tuple[str, str], ...]


def format_reset(seconds: float) -> str:
    """Format a duration as the ``x-ratelimit-reset-*`` headers do: ``"120ms"`` or ``"1.5s"``.

    Below one second: whole milliseconds, rounded up; from one second: seconds with at most
    three decimals (``"1s"``, ``"1.5s"``, ``"90.25s"``).
    """
    millis = max(0, math.ceil(seconds * 1000.0 - _EPSILON))
    if millis < 1000:
        return f"{millis}ms"
    text = f"{millis / 1000.0:.3f}".rstrip("0").rstrip(".")
    return text + "s"


class TokenBucket:
    """One budget: ``per_minute`` units a minute, bursts up to `capacity` (see the module doc).

    Not thread-safe on its own; `RateLimiter` holds the lock.
    """

    def __init__(self, per_minute: float, now: float) -> None:
        self.per_minute = float(per_minute)
        self.rate = self.per_minute / 60.0
        self.capacity = max(self.per_minute * BURST_FRACTION, 1.0)
        self._level = self.capacity
        self._updated = now

    def level(self, now: float) -> float:
        """Refill up to ``now`` and return what the bucket holds (negative: in debt)."""
        # A clock that steps back refills nothing (rather than draining the bucket).
        elapsed = max(0.0, now - self._updated)
        self._level = min(self.capacity, self._level + elapsed * self.rate)
        self._updated = max(self._updated, now)
        return self._level

    def wait_for(self, cost: float, now: float) -> float:
        """Seconds until a request costing ``cost`` would be admitted (0.0: admitted now)."""
        missing = min(cost, self.capacity) - self.level(now)
        return 0.0 if missing <= _EPSILON else missing / self.rate

    def take(self, cost: float, now: float) -> None:
        """Charge ``cost`` (the caller checked `wait_for` first)."""
        self.level(now)
        self._level -= cost

    def remaining(self, now: float) -> int:
        """Whole units available now (never negative)."""
        return max(0, math.floor(self.level(now) + _EPSILON))

    def until_full(self, now: float) -> float:
        """Seconds until the bucket is full again."""
        return max(0.0, (self.capacity - self.level(now)) / self.rate)

    def refill(self, now: float) -> None:
        """Fill the bucket to capacity."""
        self._level = self.capacity
        self._updated = now


@dataclass(frozen=True)
class RateDecision:
    """What the limiter decided for one request.

    Attributes:
        admitted: True when the request was admitted (and charged).
        retry_after: seconds to wait before the same request would be admitted (0.0 if it was).
        limited_by: the budgets that were short (``"requests"``, ``"tokens"``), empty if admitted.
        headers: the ``x-ratelimit-*`` headers describing the buckets after the decision.
    """

    admitted: bool
    retry_after: float
    limited_by: tuple[str, ...]
    headers: _Headers


class RateLimiter:
    """Requests-per-minute and tokens-per-minute budgets (either may be None: unlimited).

    Thread-safe: handler threads call `decide` concurrently.
    """

    def __init__(
        self, requests_per_minute: float | None, tokens_per_minute: float | None, now: float
    ) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, TokenBucket] = {}
        if requests_per_minute is not None:
            self._buckets["requests"] = TokenBucket(requests_per_minute, now)
        if tokens_per_minute is not None:
            self._buckets["tokens"] = TokenBucket(tokens_per_minute, now)

    @property
    def limits(self) -> dict[str, float]:
        """The configured per-minute budgets by name (``"requests"``, ``"tokens"``)."""
        return {name: bucket.per_minute for name, bucket in self._buckets.items()}

    def decide(self, tokens: int, now: float) -> RateDecision:
        """Admit and charge one request of ``tokens`` tokens, or refuse it and charge nothing."""
        costs = {"requests": 1, "tokens": tokens}
        with self._lock:
            waits = {
                name: bucket.wait_for(costs[name], now) for name, bucket in self._buckets.items()
            }
            short = tuple(name for name, wait in waits.items() if wait > 0.0)
            if not short:
                for name, bucket in self._buckets.items():
                    bucket.take(costs[name], now)
            return RateDecision(
                admitted=not short,
                retry_after=max(waits.values(), default=0.0) if short else 0.0,
                limited_by=short,
                headers=self._headers(now),
            )

    def headers(self, now: float) -> _Headers:
        """The ``x-ratelimit-*`` headers of the buckets as they are now (nothing charged)."""
        with self._lock:
            return self._headers(now)

    def _headers(self, now: float) -> _Headers:
        pairs: list[tuple[str, str]] = []
        for name, bucket in self._buckets.items():
            limit, remaining, reset = _HEADER_NAMES[name]
            pairs.append((limit, _format_limit(bucket.per_minute)))
            pairs.append((remaining, str(bucket.remaining(now))))
            pairs.append((reset, format_reset(bucket.until_full(now))))
        return tuple(pairs)

    def refill(self, now: float) -> None:
        """Fill every bucket (``LocalServer.reset``)."""
        with self._lock:
            for bucket in self._buckets.values():
                bucket.refill(now)


def _format_limit(per_minute: float) -> str:
    return str(math.floor(per_minute))  # the server only takes whole budgets


def retry_after_headers(seconds: float) -> Sequence[tuple[str, str]]:
    """``retry-after`` (whole seconds, rounded up: RFC 9110) and ``retry-after-ms`` (precise)."""
    millis = max(1, math.ceil(seconds * 1000.0 - _EPSILON))
    return ((RETRY_AFTER, str(math.ceil(millis / 1000.0))), (RETRY_AFTER_MS, str(millis)))
