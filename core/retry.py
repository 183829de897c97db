"""The retry decision: one pure function, shared by the sync and async clients.

Inputs are the attempt history, the outcome of the last attempt, the policy, the current time
and a random number; the output is `Retry` (after how long, and why) or `GiveUp` (why). The clock
and the random source are arguments, so tests decide what time it is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Union

import attrs

from .failures import TransportError
from .response import ResponseHead
from .wire import RETRY_AFTER, RETRY_AFTER_MS, SHOULD_RETRY

__all__ = [
    "RETRYABLE_STATUSES",
    "GiveUp",
    "Retry",
    "RetryDecision",
    "RetryPolicy",
    "backoff_delay",
    "decide_retry",
    "parse_retry_after",
]

RETRYABLE_STATUSES = frozenset({408, 409, 429})


@attrs.frozen
class RetryPolicy:
    """How retries are paced.

    Attributes:
        max_retries: retries after the first attempt (2 by default: 3 attempts at most).
        initial_delay: the first backoff delay in seconds; it doubles on each retry...
        max_delay: ...up to this many seconds.
        jitter: each backoff delay is shortened by a random fraction of at most this much, so
            that many clients do not retry in lockstep.
        max_retry_after: the longest server-requested wait (``retry-after``) that is honoured;
            a longer one is not waited for: the error goes to the caller at once.
    """

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    jitter: float = 0.25
    max_retry_after: float = 60.0


@attrs.frozen
class Retry:
    """Try again after ``delay`` seconds."""

    delay: float
    reason: str


@attrs.frozen
class GiveUp:
    """Do not try again; the last outcome goes to the caller."""

    reason: str


RetryDecision = Union[Retry, GiveUp]


def backoff_delay(policy: RetryPolicy, retries_taken: int, random: float) -> float:
    """The exponential backoff before retry number ``retries_taken + 1``, with jitter.

    ``random`` is a number in [0, 1); the result lies in
    ``[base * (1 - jitter), base]`` where ``base = min(initial * 2**retries_taken, max_delay)``.
    """
    base = min(policy.initial_delay * (2.0 ** min(retries_taken, 64)), policy.max_delay)
    return base * (1.0 - policy.jitter * min(max(random, 0.0), 1.0))


def parse_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """The wait the server asked for, in seconds, or None when it asked for none (or garbage).

    ``retry-after-ms`` wins over ``retry-after``; ``retry-after`` is seconds or an HTTP-date
    (compared with ``now``, a Unix timestamp). A date in the past means "now" (0 s).
    """
    ms = headers.get(RETRY_AFTER_MS)
    if ms is not None:
        try:
            value = float(ms) / 1000.0
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value
    raw = headers.get(RETRY_AFTER)
    if raw is None:
        return None
    raw = raw.strip()
    try:
        value = float(raw)
    except ValueError:
        pass
    else:
        return value if math.isfinite(value) and value >= 0 else None
    # Imported here: HTTP-dates are rare, and email.utils costs milliseconds at import.
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(when.timestamp() - now, 0.0)


def _should_retry_status(head: ResponseHead) -> tuple[bool, str]:
    override = head.headers.get(SHOULD_RETRY, "").strip().lower()
    if override == "true":
        return True, "the server sent x-should-retry: true"
    if override == "false":
        return False, "the server sent x-should-retry: false"
    status = head.status_code
    if status in RETRYABLE_STATUSES or status >= 500:
        return True, f"status {status}"
    return False, f"status {status} is not retryable"


def decide_retry(
    policy: RetryPolicy,
    *,
    retries_taken: int,
    outcome: ResponseHead | TransportError,
    now: float,
    random: float,
    time_left: float | None = None,
) -> RetryDecision:
    """Decide whether to retry after ``outcome`` (a non-success response head or a failure).

    ``retries_taken`` counts the retries already made (0 after the first attempt), ``now`` is the
    wall-clock time (Unix seconds, used only for HTTP-date ``retry-after``), ``random`` a number
    in [0, 1) for jitter, and ``time_left`` the seconds left before the call's total deadline.
    """
    if isinstance(outcome, TransportError):
        retryable, reason = True, f"{type(outcome).__name__}: {outcome}"
        requested = None
    else:
        retryable, reason = _should_retry_status(outcome)
        requested = parse_retry_after(outcome.headers, now)
    if not retryable:
        return GiveUp(reason)
    if retries_taken >= policy.max_retries:
        return GiveUp(f"{reason}; no retries left ({policy.max_retries} allowed)")
    if requested is not None:
        if requested > policy.max_retry_after:
            return GiveUp(
                f"{reason}; the server asked to wait {requested:g} s, longer than the "
                f"{policy.max_retry_after:g} s the client waits"
            )
        delay, how = requested, "as the server asked"
    else:
        delay, how = backoff_delay(policy, retries_taken, random), "backoff"
    if time_left is not None and delay >= time_left:
        return GiveUp(f"{reason}; waiting {delay:.3g} s would pass the total timeout")
    return Retry(delay, f"{reason}; retrying in {delay:.3g} s ({how})")
