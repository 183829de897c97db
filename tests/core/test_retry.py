"""Tests of aligneai.core.retry: backoff bounds, Retry-After, overrides, the retry decision."""

from __future__ import annotations

import math
from email.utils import formatdate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aligneai.core.failures import ConnectError, ConnectTimeout, ReadError, ReadTimeout
from aligneai.core.response import ResponseHead
from aligneai.core.retry import (
    RETRYABLE_STATUSES,
    GiveUp,
    Retry,
    RetryPolicy,
    backoff_delay,
    decide_retry,
    parse_retry_after,
)

NOW = 1_700_000_000.0
unit = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)
statuses = st.integers(min_value=100, max_value=999).filter(lambda s: not 200 <= s < 300)
failures = st.builds(
    lambda cls, msg: cls(msg),
    st.sampled_from([ConnectError, ConnectTimeout, ReadError, ReadTimeout]),
    st.text(max_size=10),
)
retry_after_values = st.one_of(
    st.integers(min_value=-5, max_value=200).map(str),
    st.floats(min_value=0, max_value=200).map(repr),
    st.integers(min_value=-100, max_value=200).map(lambda k: formatdate(NOW + k, usegmt=True)),
    st.sampled_from(["", " ", "nan", "inf", "-inf", "1e400", "soon", "Wed, 21 Oct 2015"]),
    st.text(max_size=12),
)
header_sets = st.dictionaries(
    st.sampled_from(["retry-after", "retry-after-ms", "x-should-retry", "x-request-id"]),
    st.one_of(retry_after_values, st.sampled_from(["true", "false", " TRUE ", "False", "1"])),
    max_size=4,
)
policies = st.builds(
    RetryPolicy,
    max_retries=st.integers(min_value=0, max_value=6),
    initial_delay=st.sampled_from([0.5, 0.1, 1.0]),
    max_delay=st.sampled_from([8.0, 2.0, 30.0]),
    jitter=st.sampled_from([0.25, 0.0, 1.0]),
    max_retry_after=st.sampled_from([60.0, 5.0]),
)


def backoff_bounds(policy: RetryPolicy, n: int) -> tuple[float, float]:
    base = min(policy.initial_delay * 2.0**n, policy.max_delay)
    return base * (1 - policy.jitter), base


# --- backoff ----------------------------------------------------------------------------------


@given(st.one_of(st.just(RetryPolicy()), policies), st.integers(min_value=0, max_value=10**4), unit)
def test_backoff_bounds(policy: RetryPolicy, n: int, random: float) -> None:
    base = min(policy.initial_delay * 2.0 ** min(n, 64), policy.max_delay)
    assert base * (1 - policy.jitter) <= backoff_delay(policy, n, random) <= base
    assert backoff_delay(policy, n, 0.0) == base
    if policy == RetryPolicy():
        assert base == min(0.5 * 2.0 ** min(n, 64), 8.0)


def test_backoff_sequence() -> None:
    assert [backoff_delay(RetryPolicy(), n, 0.0) for n in range(6)] == [0.5, 1, 2, 4, 8, 8]
    assert backoff_delay(RetryPolicy(), 0, 0.999999) == pytest.approx(0.375, rel=1e-5)


# --- parse_retry_after ------------------------------------------------------------------------


@given(header_sets, st.floats(min_value=0, max_value=4e9))
def test_parse_retry_after_never_fails(headers: dict[str, str], now: float) -> None:
    value = parse_retry_after(headers, now)
    assert value is None or (math.isfinite(value) and value >= 0)


@given(st.integers(min_value=0, max_value=10**6), st.integers(min_value=0, max_value=10**6))
def test_retry_after_forms(seconds: int, ms: int) -> None:
    assert parse_retry_after({"retry-after": str(seconds)}, NOW) == seconds
    assert parse_retry_after({"retry-after": f" {seconds} "}, NOW) == seconds
    assert parse_retry_after({"retry-after-ms": str(ms)}, NOW) == ms / 1000
    # ms wins over seconds; a bad ms value falls back to seconds
    both = {"retry-after": str(seconds), "retry-after-ms": str(ms)}
    assert parse_retry_after(both, NOW) == ms / 1000
    bad_ms = {"retry-after": str(seconds), "retry-after-ms": "later"}
    assert parse_retry_after(bad_ms, NOW) == seconds


@given(st.integers(min_value=0, max_value=3_000_000_000), st.integers(-(10**6), 10**6))
def test_retry_after_http_date_is_relative_to_now(now: int, offset: int) -> None:
    date = formatdate(now + offset, usegmt=True)
    assert parse_retry_after({"retry-after": date}, float(now)) == max(offset, 0)


@pytest.mark.parametrize(
    "value", ["", "soon", "-1", "nan", "inf", "1e400", "Wed, 21 Oct 2015 07:28:00 -0000"]
)
def test_retry_after_garbage_is_ignored(value: str) -> None:
    assert parse_retry_after({"retry-after": value}, NOW) is None
    assert parse_retry_after({"retry-after-ms": value}, NOW) is None


# --- decide_retry -----------------------------------------------------------------------------


def expected_retryable(status: int, headers: dict[str, str]) -> bool:
    override = headers.get("x-should-retry", "").strip().lower()
    if override in ("true", "false"):
        return override == "true"
    return status in (408, 409, 429) or status >= 500


@given(
    policies,
    st.integers(min_value=0, max_value=8),
    st.one_of(failures, st.builds(ResponseHead, statuses, header_sets)),
    unit,
    st.none() | st.floats(min_value=-1, max_value=100),
)
def test_decide_retry_matches_the_rules(
    policy: RetryPolicy,
    retries_taken: int,
    outcome: object,
    random: float,
    time_left: float | None,
) -> None:
    decision = decide_retry(
        policy,
        retries_taken=retries_taken,
        outcome=outcome,  # type: ignore[arg-type]
        now=NOW,
        random=random,
        time_left=time_left,
    )
    assert isinstance(decision, (Retry, GiveUp)) and decision.reason
    if isinstance(outcome, ResponseHead):
        retryable = expected_retryable(outcome.status_code, dict(outcome.headers))
        requested = parse_retry_after(outcome.headers, NOW)
    else:
        retryable, requested = True, None
    should = (
        retryable
        and retries_taken < policy.max_retries
        and (requested is None or requested <= policy.max_retry_after)
    )
    if not should:
        assert isinstance(decision, GiveUp)
    elif requested is not None:
        if time_left is None or requested < time_left:
            assert decision == Retry(requested, decision.reason)  # honoured exactly
        else:
            assert isinstance(decision, GiveUp)  # waiting would pass the deadline
    elif isinstance(decision, Retry):
        low, high = backoff_bounds(policy, retries_taken)
        assert low <= decision.delay <= high
        assert time_left is None or decision.delay < time_left
    else:
        # gave up only because the backoff would have passed the deadline
        assert time_left is not None and time_left <= backoff_bounds(policy, retries_taken)[1]


def test_which_statuses_are_retried() -> None:
    assert {408, 409, 429} == RETRYABLE_STATUSES
    for status in [*range(100, 200), *range(300, 1000)]:
        head = ResponseHead(status)
        d = decide_retry(RetryPolicy(), retries_taken=0, outcome=head, now=NOW, random=0)
        if status in (408, 409, 429) or status >= 500:
            assert d == Retry(0.5, d.reason), status
        else:
            assert isinstance(d, GiveUp), status


@pytest.mark.parametrize("value", ["true", "TRUE", " True "])
@pytest.mark.parametrize("status", [400, 401, 404, 418])
def test_should_retry_true_overrides(status: int, value: str) -> None:
    head = ResponseHead(status, {"X-Should-Retry": value})
    assert isinstance(
        decide_retry(RetryPolicy(), retries_taken=0, outcome=head, now=NOW, random=0), Retry
    )


@pytest.mark.parametrize("value", ["false", "FALSE", " False "])
@pytest.mark.parametrize("status", [408, 409, 429, 500, 503])
def test_should_retry_false_overrides(status: int, value: str) -> None:
    head = ResponseHead(status, {"x-should-retry": value, "retry-after": "1"})
    d = decide_retry(RetryPolicy(), retries_taken=0, outcome=head, now=NOW, random=0)
    assert isinstance(d, GiveUp)


@given(
    st.sampled_from([408, 429, 500, 503]),
    st.integers(min_value=0, max_value=60_000),
    st.sampled_from(["seconds", "ms", "date"]),
)
def test_retry_after_up_to_60s_is_honoured_exactly(status: int, ms: int, form: str) -> None:
    if form == "seconds":
        seconds = ms / 1000
        headers = {"retry-after": repr(seconds)}
    elif form == "ms":
        seconds = ms / 1000
        headers = {"retry-after-ms": str(ms)}
    else:
        seconds = float(ms // 1000)
        headers = {"retry-after": formatdate(NOW + seconds, usegmt=True)}
    d = decide_retry(
        RetryPolicy(), retries_taken=0, outcome=ResponseHead(status, headers), now=NOW, random=0.9
    )
    assert d == Retry(seconds, d.reason)


@given(
    st.sampled_from([408, 429, 500, 503]),
    st.floats(min_value=60.001, max_value=1e9),
    st.sampled_from(["seconds", "ms", "date"]),
    st.none() | st.floats(min_value=0, max_value=1e10),
)
def test_retry_after_over_60s_is_never_retried(
    status: int, seconds: float, form: str, time_left: float | None
) -> None:
    if form == "seconds":
        headers = {"retry-after": repr(seconds)}
    elif form == "ms":
        headers = {"retry-after-ms": repr(seconds * 1000)}
    else:
        headers = {"retry-after": formatdate(NOW + math.ceil(seconds), usegmt=True)}
    d = decide_retry(
        RetryPolicy(),
        retries_taken=0,
        outcome=ResponseHead(status, headers),
        now=NOW,
        random=0,
        time_left=time_left,
    )
    assert isinstance(d, GiveUp)


@pytest.mark.parametrize("cls", [ConnectError, ConnectTimeout, ReadError, ReadTimeout])
def test_transport_failures_are_retried(cls: type[Exception]) -> None:
    policy = RetryPolicy(max_retries=10)
    for retries in range(10):
        d = decide_retry(policy, retries_taken=retries, outcome=cls("x"), now=NOW, random=0.5)  # type: ignore[arg-type]
        low, high = backoff_bounds(policy, retries)
        assert isinstance(d, Retry) and low <= d.delay <= high


@given(
    st.integers(min_value=0, max_value=8),
    st.lists(
        st.sampled_from(
            [
                ReadError("reset"),
                ConnectTimeout("slow"),
                ResponseHead(503),
                ResponseHead(429, {"retry-after": "1"}),
                ResponseHead(400, {"x-should-retry": "true"}),
                ResponseHead(500, {"retry-after-ms": "10"}),
                ResponseHead(408, {"retry-after": formatdate(NOW + 5, usegmt=True)}),
            ]
        ),
        max_size=10,
    ),
    unit,
)
def test_attempts_never_exceed_max_retries_plus_one(
    max_retries: int, outcomes: list[object], random: float
) -> None:
    policy = RetryPolicy(max_retries=max_retries)
    attempts = 0
    for i, outcome in enumerate(outcomes + [ReadError("again")] * 10):
        attempts += 1
        d = decide_retry(policy, retries_taken=i, outcome=outcome, now=NOW, random=random)  # type: ignore[arg-type]
        if isinstance(d, GiveUp):
            break
    assert attempts <= max_retries + 1
