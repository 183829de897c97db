"""Tests of aligneai.core.ratecontrol: header parsing, buckets, AIMD, the shared hold, pacing."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aligneai.core.batching import DEFAULT_TOKENS_PER_CHAR
from aligneai.core.ratecontrol import (
    DECREASE_FACTOR,
    INITIAL_CONCURRENCY,
    MAX_ADAPTIVE_CONCURRENCY,
    PACE_MARGIN,
    RATE_LIMIT_BACKOFF,
    RATE_LIMIT_BACKOFF_MAX,
    RateController,
    RateLimitInfo,
    TokenBucket,
    parse_duration,
    parse_rate_limit_headers,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1.5s", 1.5),
        ("120ms", 0.12),
        ("1m30s", 90.0),
        ("6m0s", 360.0),
        ("2h", 7200.0),
        ("1h2m3.5s", 3723.5),
        ("250us", 0.00025),
        ("0s", 0.0),
        ("2", 2.0),
        (" 0.25 ", 0.25),
        (".5s", 0.5),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    result = parse_duration(text)
    assert result is not None and math.isclose(result, seconds)


@pytest.mark.parametrize(
    "text", [None, "", "s", "soon", "1x", "-1s", "1s2", "nan", "inf", "m1s", "-3"]
)
def test_bad_durations(text: str | None) -> None:
    assert parse_duration(text) is None


@given(st.integers(0, 99), st.integers(0, 59), st.integers(0, 59), st.integers(0, 999))
def test_duration_parts_add_up(h: int, m: int, s: int, ms: int) -> None:
    text = f"{h}h{m}m{s}s{ms}ms"
    result = parse_duration(text)
    assert result is not None
    assert math.isclose(result, h * 3600 + m * 60 + s + ms / 1000, abs_tol=1e-9)


@given(st.text(max_size=12))
def test_durations_never_raise(text: str) -> None:
    result = parse_duration(text)
    assert result is None or (math.isfinite(result) and result >= 0)


def test_rate_limit_headers() -> None:
    info = parse_rate_limit_headers(
        {
            "x-ratelimit-limit-requests": "500",
            "x-ratelimit-remaining-requests": "499",
            "x-ratelimit-reset-requests": "120ms",
            "x-ratelimit-limit-tokens": "150000",
            "x-ratelimit-remaining-tokens": "garbage",
            "x-ratelimit-reset-tokens": "1m30s",
        }
    )
    assert info == RateLimitInfo(500, 499, 0.12, 150000, None, 90.0)
    assert parse_rate_limit_headers({}) == RateLimitInfo()


@given(
    limit=st.floats(1, 1e6),
    takes=st.lists(st.tuples(st.floats(0, 30), st.floats(0, 2e6)), max_size=20),
)
def test_bucket_never_exceeds_capacity_and_refills_at_its_rate(
    limit: float, takes: list[tuple[float, float]]
) -> None:
    bucket = TokenBucket.per_minute(limit, 0.0)
    now = 0.0
    for step, amount in takes:
        now += step
        wait = bucket.wait_time(amount, now)
        assert bucket.level <= bucket.capacity + 1e-9
        assert wait >= 0
        # After waiting that long the amount (or a full bucket) is there.
        later = TokenBucket(bucket.capacity, bucket.rate, bucket.level, bucket.updated)
        later.refill(now + wait)
        assert later.level >= min(amount, bucket.capacity) - 1e-6 * max(1.0, limit)
        bucket.take(amount, now + wait)
        now += wait


def test_initial_state() -> None:
    rate = RateController(now=0.0)
    assert rate.concurrency == INITIAL_CONCURRENCY
    assert rate.ceiling == MAX_ADAPTIVE_CONCURRENCY
    assert rate.tokens_per_char == DEFAULT_TOKENS_PER_CHAR
    assert rate.ready_at(10**9, 5.0) == 5.0  # no budget: anything goes now
    assert RateController(max_concurrency=2, now=0.0).concurrency == 2


def _success(rate: RateController, now: float, *, full: bool = True, sent: float = 0.0) -> None:
    rate.on_success(
        sent_at=sent, estimated_tokens=10, tokens=10, chars=40, headers={},
        pipe_full=full, now=now,
    )  # fmt: skip


def test_slow_start_then_additive_increase_then_multiplicative_decrease() -> None:
    rate = RateController(now=0.0)
    for i in range(4):
        _success(rate, 1.0 + i)
    assert rate.window == INITIAL_CONCURRENCY + 4  # +1 per success below the threshold
    _success(rate, 6.0, full=False)
    assert rate.window == 8  # the pipe was not full: no growth
    rate.on_rate_limited(sent_at=5.0, retry_after=2.0, headers={}, now=7.0)
    assert rate.window == pytest.approx(8 * DECREASE_FACTOR)
    assert rate.threshold == rate.window
    # A 429 for a request sent before the decrease does not decrease again.
    rate.on_rate_limited(sent_at=6.5, retry_after=2.0, headers={}, now=7.5)
    assert rate.window == pytest.approx(8 * DECREASE_FACTOR)
    # Above the threshold: +1/window per success, and none during the hold.
    _success(rate, 8.0, sent=7.8)
    assert rate.window == pytest.approx(8 * DECREASE_FACTOR)
    before = rate.window
    _success(rate, 10.0, sent=9.6)
    assert rate.window == pytest.approx(before + 1 / before)


def test_the_window_stays_within_one_and_the_ceiling() -> None:
    rate = RateController(max_concurrency=5, now=0.0)
    for i in range(50):
        _success(rate, float(i))
    assert rate.concurrency == 5
    for i in range(50):
        rate.on_rate_limited(sent_at=100.0 + i, retry_after=0.0, headers={}, now=100.0 + i)
    assert rate.concurrency == 1


def test_one_shared_hold_until_retry_after() -> None:
    rate = RateController(now=0.0)
    assert rate.on_rate_limited(sent_at=0.0, retry_after=3.0, headers={}, now=1.0) == 4.0
    assert rate.ready_at(1, 1.5) == 4.0
    # A shorter wait asked later does not shorten the hold; a longer one extends it.
    assert rate.on_rate_limited(sent_at=0.0, retry_after=1.0, headers={}, now=2.0) == 4.0
    assert rate.on_rate_limited(sent_at=0.0, retry_after=5.0, headers={}, now=2.0) == 7.0


def test_a_429_without_retry_after_holds_for_the_reset_or_a_backoff() -> None:
    rate = RateController(now=0.0)
    hold = rate.on_rate_limited(
        sent_at=0.0,
        retry_after=None,
        headers={"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "2.5s"},
        now=10.0,
    )
    assert hold == 12.5
    rate = RateController(now=0.0)
    holds = [
        rate.on_rate_limited(sent_at=0.0, retry_after=None, headers={}, now=0.0) for _ in range(8)
    ]
    assert holds[:3] == [RATE_LIMIT_BACKOFF, 2 * RATE_LIMIT_BACKOFF, 4 * RATE_LIMIT_BACKOFF]
    assert holds[-1] == RATE_LIMIT_BACKOFF_MAX


def test_tokens_per_char_is_learned_from_usage() -> None:
    rate = RateController(now=0.0)
    rate.on_success(sent_at=0, estimated_tokens=25, tokens=30, chars=100, headers={},
                    pipe_full=False, now=1.0)  # fmt: skip
    rate.on_success(sent_at=0, estimated_tokens=25, tokens=10, chars=100, headers={},
                    pipe_full=False, now=2.0)  # fmt: skip
    assert rate.tokens_per_char == pytest.approx(40 / 200)
    rate.on_success(sent_at=0, estimated_tokens=25, tokens=None, chars=100, headers={},
                    pipe_full=False, now=3.0)  # fmt: skip
    assert rate.tokens_per_char == pytest.approx(40 / 200)


def test_budgets_pace_requests_and_tokens() -> None:
    rate = RateController(requests_per_minute=60, tokens_per_minute=6000, now=0.0)
    # A full minute's worth at first, then 1 request and 100 tokens per second.
    for _ in range(60):
        assert rate.ready_at(1, 0.0) == 0.0
        rate.on_dispatch(1, 0.0)
    assert rate.ready_at(1, 0.0) == pytest.approx(1.0)
    rate = RateController(tokens_per_minute=6000, now=0.0)
    rate.on_dispatch(6000, 0.0)
    assert rate.ready_at(500, 0.0) == pytest.approx(5.0)
    # A request larger than the bucket waits for a full bucket, then goes into debt.
    assert rate.ready_at(10_000, 0.0) == pytest.approx(60.0)


def test_usage_corrects_the_estimate() -> None:
    rate = RateController(tokens_per_minute=6000, now=0.0)
    rate.on_dispatch(1000, 0.0)
    rate.on_success(sent_at=0, estimated_tokens=1000, tokens=3000, chars=4000, headers={},
                    pipe_full=False, now=0.0)  # fmt: skip
    assert rate.tokens is not None and rate.tokens.level == pytest.approx(3000)


def test_headers_seed_and_lower_the_buckets() -> None:
    rate = RateController(requests_per_minute=1000, now=0.0)
    rate.observe_headers(
        {
            "x-ratelimit-limit-requests": "120",
            "x-ratelimit-remaining-requests": "3",
            "x-ratelimit-limit-tokens": "60000",
            "x-ratelimit-remaining-tokens": "50000",
        },
        0.0,
    )
    assert rate.requests is not None and rate.tokens is not None
    assert rate.requests.capacity == 120  # the smaller of budget and server limit
    assert rate.requests.level == 3
    assert rate.tokens.capacity == 60000 and rate.tokens.level == 50000
    # A later, higher remaining never raises the level (answers arrive late).
    rate.observe_headers({"x-ratelimit-remaining-requests": "100"}, 0.0)
    assert rate.requests.level == 3
    # The budget stays the bound when the server's limit is higher.
    rate.observe_headers({"x-ratelimit-limit-requests": "5000"}, 0.0)
    assert rate.requests.capacity == 1000 * 1  # min(budget 1000, server 5000)


def test_without_limits_a_429_teaches_the_pace() -> None:
    rate = RateController(now=0.0)
    # 600 tokens per second accepted for 20 s, then a 429.
    for i in range(1, 21):
        rate.on_success(sent_at=i - 1, estimated_tokens=600, tokens=600, chars=2400,
                        headers={}, pipe_full=False, now=float(i))  # fmt: skip
    rate.on_rate_limited(sent_at=19.5, retry_after=1.0, headers={}, now=20.0)
    assert rate.pace is not None
    assert rate.pace.rate == pytest.approx(PACE_MARGIN * 600 * 20 / 20)
    # Another 429 soon after, for a request sent after the pace was set: cut by the factor.
    pace = rate.pace.rate
    rate.on_rate_limited(sent_at=20.5, retry_after=1.0, headers={}, now=22.0)
    assert rate.pace.rate == pytest.approx(pace * DECREASE_FACTOR)
    # Known limits replace the learned pace.
    rate.on_success(sent_at=22, estimated_tokens=1, tokens=1, chars=4, pipe_full=False,
                    headers={"x-ratelimit-limit-tokens": "1000"}, now=23.0)  # fmt: skip
    assert rate.pace is None


def test_the_bucket_size_follows_the_servers_reset() -> None:
    # 60000 tokens a minute (1000 a second); 4000 left, full again in 6 s: a 10000 bucket.
    rate = RateController(now=0.0)
    rate.observe_headers(
        {
            "x-ratelimit-limit-tokens": "60000",
            "x-ratelimit-remaining-tokens": "4000",
            "x-ratelimit-reset-tokens": "6s",
        },
        0.0,
    )
    assert rate.tokens is not None
    assert rate.tokens.rate == pytest.approx(1000)
    assert rate.tokens.capacity == pytest.approx(10000)
    assert rate.tokens.level == pytest.approx(4000)
    assert rate.ready_at(9000, 0.0) == pytest.approx(5.0)


def test_with_the_servers_limits_known_a_429_keeps_the_window() -> None:
    rate = RateController(now=0.0)
    for i in range(4):
        _success(rate, 1.0 + i)
    assert rate.window == 8
    headers = {"x-ratelimit-limit-tokens": "60000", "x-ratelimit-remaining-tokens": "0"}
    hold = rate.on_rate_limited(sent_at=5.0, retry_after=0.5, headers=headers, now=6.0)
    assert hold == 6.5
    assert rate.server_limits_known
    assert rate.window == 8 and rate.threshold == math.inf  # still in slow start
    assert rate.tokens is not None and rate.tokens.level <= 0  # the bucket paces instead
