"""Tests of aligneai.core.bulk: the scheduler against a simulated rate-limited server.

The simulation is a small discrete-event model on a fake clock: a server with token buckets
(requests and tokens per minute, a minute's worth of capacity, refilled continuously), a
per-request token cap, a latency, optional ``x-ratelimit-*`` headers, and faults drawn by
hypothesis. The scheduler never sees the model; the tests compare what the model recorded with
what the rules promise.
"""

from __future__ import annotations

import heapq
import math
import random as random_module
from collections.abc import Sequence
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aligneai.core.batching import Batch, InputTooLargeError
from aligneai.core.bulk import (
    Abort,
    Dispatch,
    Finished,
    RequestFailure,
    RetryBatch,
    Scheduler,
    SkipBatch,
    SplitBatch,
    Wait,
)
from aligneai.core.errors import InvalidArgumentTypeError, InvalidArgumentValueError


def server_tokens(text: str) -> int:
    """The simulated server's token count: one per 4 characters, rounded up."""
    return -(-len(text) // 4)


class _Bucket:
    def __init__(self, per_minute: float, burst: float) -> None:
        self.capacity = per_minute * burst
        self.rate = per_minute / 60.0
        self.level = self.capacity
        self.updated = 0.0

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    def wait(self, amount: float, now: float) -> float:
        self.refill(now)
        need = min(amount, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.rate


@attrs.define
class SimServer:
    """A rate-limited embeddings server, as a model with no relation to the scheduler."""

    rpm: float | None = None
    tpm: float | None = None
    cap: int | None = None  # per-request token cap
    latency: float = 0.5
    burst: float = 1.0  # the bucket holds this fraction of a minute's budget
    start_empty: bool = False  # the bucket starts drained (another client just used it)
    latency_per_input: float = 0.0
    headers: bool = True
    faults: list[str] = attrs.field(factory=list)  # consumed one per request: "ok", "500", ...
    log: list[tuple[float, int, int, int]] = attrs.field(factory=list)  # (time, status, n, tokens)
    requests: Any = None
    tokens: Any = None

    def __attrs_post_init__(self) -> None:
        self.requests = None if self.rpm is None else _Bucket(self.rpm, self.burst)
        self.tokens = None if self.tpm is None else _Bucket(self.tpm, self.burst)
        if self.start_empty:
            for bucket in (self.requests, self.tokens):
                if bucket is not None:
                    bucket.level = 0.0

    def _headers(self, now: float) -> dict[str, str]:
        if not self.headers:
            return {}
        out: dict[str, str] = {}
        for name, bucket in (("requests", self.requests), ("tokens", self.tokens)):
            if bucket is None:
                continue
            bucket.refill(now)
            out[f"x-ratelimit-limit-{name}"] = str(int(bucket.rate * 60))
            out[f"x-ratelimit-remaining-{name}"] = str(max(0, int(bucket.level)))
            reset = (bucket.capacity - bucket.level) / bucket.rate
            out[f"x-ratelimit-reset-{name}"] = f"{reset * 1000:.0f}ms"
        return out

    def handle(self, batch: Batch, now: float) -> tuple[float, Any]:
        """Answer a request arriving at ``now``: (completion time, outcome)."""
        tokens = sum(server_tokens(text) for text in batch.texts)
        fault = self.faults.pop(0) if self.faults else "ok"
        if fault == "connection":
            self.log.append((now, 0, len(batch), 0))
            return now + 0.1, RequestFailure(status=None, message="connection reset")
        if fault in ("500", "503", "422"):
            self.log.append((now, int(fault), len(batch), 0))
            return now + 0.05, RequestFailure(status=int(fault), message=fault)
        if self.cap is not None and tokens > self.cap:
            self.log.append((now, 400, len(batch), 0))
            return now + 0.01, RequestFailure(
                status=400, code="request_too_large", message="too large"
            )
        waits = [0.0]
        if self.requests is not None:
            waits.append(self.requests.wait(1, now))
        if self.tokens is not None:
            waits.append(self.tokens.wait(tokens, now))
        if max(waits) > 0 or fault == "429":
            self.log.append((now, 429, len(batch), 0))
            retry = max(max(waits), 0.1)
            headers = self._headers(now)
            headers["retry-after"] = f"{retry:.3f}"
            return now + 0.01, RequestFailure(status=429, retry_after=retry, headers=headers)
        if self.requests is not None:
            self.requests.level -= 1
        if self.tokens is not None:
            self.tokens.level -= tokens
        self.log.append((now, 200, len(batch), tokens))
        done = now + self.latency + self.latency_per_input * len(batch)
        return done, ("ok", tokens, self._headers(now))


@attrs.define
class RunResult:
    delivered: dict[int, int]  # index -> times delivered
    failed: list[int]
    aborted: Abort | None
    end: float
    scheduler: Scheduler
    dispatch_log: list[tuple[float, int, int, int]]  # (time, start, stop, low watermark)
    decisions: list[Any]


def simulate(
    scheduler: Scheduler, server: SimServer, *, limit_time: float = 1e6, max_steps: int = 200_000
) -> RunResult:
    """Drive ``scheduler`` against ``server`` on a fake clock until it finishes or aborts."""
    now = 0.0
    events: list[tuple[float, int, Batch, Any]] = []
    seq = 0
    delivered: dict[int, int] = {}
    dispatch_log = []
    decisions: list[Any] = []
    aborted = None
    for _ in range(max_steps):
        action = scheduler.next_action(now)
        if isinstance(action, Finished):
            break
        if isinstance(action, Dispatch):
            dispatch_log.append(
                (now, action.batch.start, action.batch.stop, scheduler.low_watermark)
            )
            done, outcome = server.handle(action.batch, now)
            heapq.heappush(events, (done, seq, action.batch, outcome))
            seq += 1
            continue
        assert isinstance(action, Wait)
        candidates = [t for t in (action.until, events[0][0] if events else None) if t is not None]
        assert candidates, "the scheduler waits for nothing: deadlock"
        assert min(candidates) >= now
        now = min(candidates)
        assert now < limit_time, "the run takes too long"
        while events and events[0][0] <= now:
            _, _, batch, outcome = heapq.heappop(events)
            if isinstance(outcome, RequestFailure):
                decision = scheduler.on_failure(batch, outcome, now)
                decisions.append(decision)
                if isinstance(decision, Abort):
                    aborted = decision
                    break
            else:
                _, tokens, headers = outcome
                scheduler.on_success(batch, tokens, headers, now)
                for index in range(batch.start, batch.stop):
                    delivered[index] = delivered.get(index, 0) + 1
        if aborted is not None:
            break
    else:
        raise AssertionError("the simulation did not end")
    return RunResult(
        delivered, list(scheduler.counters.failed), aborted, now, scheduler, dispatch_log, decisions
    )


def make_scheduler(inputs: Sequence[str], **kwargs: Any) -> Scheduler:
    rng = random_module.Random(0)
    return Scheduler(inputs, now=0.0, random=rng.random, **kwargs)


texts = st.text(alphabet="abcdefgh ", min_size=1, max_size=60)
fault_kinds = st.sampled_from(["ok", "ok", "ok", "429", "500", "503", "connection", "422"])


# -- exactly once, whatever fails ---------------------------------------------------------


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    inputs=st.lists(texts, min_size=1, max_size=120),
    batch_size=st.integers(1, 16),
    faults=st.lists(fault_kinds, max_size=60),
    cap=st.one_of(st.none(), st.integers(5, 80)),
    on_error=st.sampled_from(["raise", "skip"]),
    max_concurrency=st.one_of(st.none(), st.integers(1, 8)),
)
def test_every_input_ends_exactly_once(
    inputs: list[str],
    batch_size: int,
    faults: list[str],
    cap: int | None,
    on_error: str,
    max_concurrency: int | None,
) -> None:
    server = SimServer(rpm=600, tpm=5000, cap=cap, faults=list(faults), latency=0.3)
    scheduler = make_scheduler(
        inputs, batch_size=batch_size, on_error=on_error, max_concurrency=max_concurrency
    )
    result = simulate(scheduler, server)
    assert all(count == 1 for count in result.delivered.values()), "an input was delivered twice"
    if result.aborted is not None:
        assert on_error == "raise"
        return
    failed = set(result.failed)
    assert len(failed) == len(result.failed), "an input was failed twice"
    assert failed.isdisjoint(result.delivered)
    assert failed | set(result.delivered) == set(range(len(inputs)))
    # A failure only ever comes from a reason: too large for the cap, or a fault.
    for index in failed:
        too_large = cap is not None and server_tokens(inputs[index]) > cap
        assert too_large or faults, index
    counters = result.scheduler.counters
    assert counters.embedded == len(result.delivered)
    assert counters.requests == len(server.log)
    assert counters.rate_limited == sum(1 for entry in server.log if entry[1] == 429)
    assert counters.tokens == sum(entry[3] for entry in server.log)


@given(inputs=st.lists(texts, min_size=1, max_size=200), cap=st.integers(16, 200))
def test_splits_terminate_and_respect_the_cap(inputs: list[str], cap: int) -> None:
    # Every input fits the cap (texts are at most 60 characters, 15 tokens), batches do not.
    server = SimServer(cap=cap, latency=0.1)
    result = simulate(make_scheduler(inputs, batch_size=64), server)
    assert result.aborted is None
    assert sorted(result.delivered) == list(range(len(inputs)))
    # Each split removes one too-large request; there are fewer than 2 per input.
    too_large = sum(1 for entry in server.log if entry[1] == 400)
    assert too_large < 2 * len(inputs)
    assert result.scheduler.counters.retries == too_large


def test_a_single_input_over_the_cap_names_its_index() -> None:
    inputs = ["a" * 8] * 5 + ["b" * 400] + ["c" * 8] * 5
    server = SimServer(cap=50, latency=0.1)
    result = simulate(make_scheduler(inputs, batch_size=4), server)
    assert isinstance(result.aborted, Abort)
    assert isinstance(result.aborted.error, InputTooLargeError)
    assert result.aborted.error.argument == "inputs[5]"
    assert result.aborted.error.index == 5

    server = SimServer(cap=50, latency=0.1)
    result = simulate(make_scheduler(inputs, batch_size=4, on_error="skip"), server)
    assert result.failed == [5]
    assert sorted(result.delivered) == [i for i in range(11) if i != 5]


def test_an_input_estimated_over_max_batch_tokens_is_never_sent() -> None:
    inputs = ["a" * 8, "b" * 4000, "c" * 8]
    server = SimServer(latency=0.1)
    scheduler = make_scheduler(inputs, batch_size=4, max_batch_tokens=100)
    with pytest.raises(InputTooLargeError) as caught:
        simulate(scheduler, server)
    assert caught.value.argument == "inputs[1]"
    assert all(entry[2] == 1 for entry in server.log)  # only inputs[0] went out, alone

    server = SimServer(latency=0.1)
    result = simulate(
        make_scheduler(inputs, batch_size=4, max_batch_tokens=100, on_error="skip"), server
    )
    assert result.failed == [1]
    assert sorted(result.delivered) == [0, 2]
    assert sum(entry[2] for entry in server.log) == 2


def test_bad_inputs_are_named_before_they_are_sent() -> None:
    with pytest.raises(InvalidArgumentTypeError, match=r"inputs\[2\]"):
        simulate(make_scheduler(["a", "b", 3], batch_size=8), SimServer())  # type: ignore[list-item]
    with pytest.raises(InvalidArgumentValueError, match=r"inputs\[1\]"):
        simulate(make_scheduler(["a", "", "c"], batch_size=8), SimServer())
    server = SimServer()
    with pytest.raises(InvalidArgumentValueError, match=r"inputs\[3\].*surrogate"):
        simulate(make_scheduler(["a", "b", "c", "x\ud800"], batch_size=2), server)
    assert [entry[2] for entry in server.log] == [2]  # the first batch went, not the second


def test_fatal_statuses_abort_even_when_skipping() -> None:
    scheduler = make_scheduler(["a", "b"], batch_size=1, on_error="skip")
    action = scheduler.next_action(0.0)
    assert isinstance(action, Dispatch)
    decision = scheduler.on_failure(action.batch, RequestFailure(status=401), 0.1)
    assert isinstance(decision, Abort)
    with pytest.raises(RuntimeError):
        scheduler.next_action(0.2)


def test_unknown_batches_are_refused() -> None:
    scheduler = make_scheduler(["a", "b"], batch_size=1)
    action = scheduler.next_action(0.0)
    assert isinstance(action, Dispatch)
    scheduler.on_success(action.batch, 1, {}, 0.1)
    with pytest.raises(ValueError):
        scheduler.on_success(action.batch, 1, {}, 0.2)  # twice: refused


def test_retry_decisions_back_off_and_honour_retry_after() -> None:
    scheduler = make_scheduler(["a"] * 4, batch_size=1, max_concurrency=1)
    action = scheduler.next_action(0.0)
    assert isinstance(action, Dispatch)
    decision = scheduler.on_failure(action.batch, RequestFailure(status=503, retry_after=7.0), 1.0)
    assert isinstance(decision, RetryBatch)
    assert decision.not_before == 8.0
    assert decision.batch.attempt == 1
    # Others go first while the retry waits; the retried batch goes at 8.0.
    action = scheduler.next_action(1.0)
    assert isinstance(action, Dispatch) and action.batch.start == 1
    scheduler.on_success(action.batch, 1, {}, 1.5)
    action = scheduler.next_action(8.0)
    assert isinstance(action, Dispatch) and action.batch.start == 0
    decision = scheduler.on_failure(action.batch, RequestFailure(status=None), 8.5)
    assert isinstance(decision, RetryBatch)
    # 0.5 s doubling, minus at most 25 % jitter: the second retry waits 0.75 to 1 s.
    assert 8.5 + 0.75 <= decision.not_before <= 8.5 + 1.0


def test_the_429_hold_is_shared_by_every_request() -> None:
    scheduler = make_scheduler(["a"] * 20, batch_size=1, max_concurrency=4)
    sent = [scheduler.next_action(0.0) for _ in range(4)]
    assert all(isinstance(action, Dispatch) for action in sent)
    decision = scheduler.on_failure(
        sent[0].batch,  # type: ignore[union-attr]
        RequestFailure(status=429, retry_after=5.0),
        1.0,
    )
    assert isinstance(decision, RetryBatch)
    assert decision.not_before == 6.0
    # The window shrank from 4 to 2.8: with 3 in flight, wait for a completion.
    assert scheduler.rate.concurrency == 2
    assert scheduler.next_action(1.0) == Wait(None)
    scheduler.on_success(sent[1].batch, 1, {}, 2.0)  # type: ignore[union-attr]
    scheduler.on_success(sent[2].batch, 1, {}, 2.0)  # type: ignore[union-attr]
    # A slot is free and batches are ready, yet nothing goes before the hold ends at 6.0.
    assert scheduler.next_action(2.0) == Wait(6.0)
    assert scheduler.next_action(5.99) == Wait(6.0)
    action = scheduler.next_action(6.0)
    assert isinstance(action, Dispatch) and action.batch.start == 0  # lowest index first
    # A 429 for a request sent before the decrease does not shrink the window again.
    decision = scheduler.on_failure(
        sent[3].batch,  # type: ignore[union-attr]
        RequestFailure(status=429, retry_after=1.0),
        6.5,
    )
    assert isinstance(decision, RetryBatch) and decision.not_before == 7.5
    assert scheduler.rate.concurrency == 2


def test_resume_skips_done_ranges_and_hands_their_texts_for_checking() -> None:
    inputs = [f"text {i}" for i in range(30)]
    seen: list[tuple[int, int, tuple[str, ...]]] = []
    server = SimServer(latency=0.1)
    scheduler = make_scheduler(
        inputs,
        batch_size=8,
        done=[(0, 10), (20, 25)],
        on_resumed=lambda start, stop, texts: seen.append((start, stop, texts)),
    )
    result = simulate(scheduler, server)
    assert sorted(result.delivered) == list(range(10, 20)) + list(range(25, 30))
    assert scheduler.counters.resumed == 15
    assert all(stop <= 20 or start >= 25 for _, start, stop, _ in result.dispatch_log)
    assert seen == [(0, 10, tuple(inputs[0:10])), (20, 25, tuple(inputs[20:25]))]

    class Changed(Exception):
        pass

    def refuse(start: int, stop: int, texts: tuple[str, ...]) -> None:
        raise Changed(start)

    with pytest.raises(Changed):
        simulate(make_scheduler(inputs, batch_size=8, done=[(20, 25)], on_resumed=refuse), server)


@given(
    inputs=st.lists(texts, min_size=1, max_size=300),
    batch_size=st.integers(1, 8),
    faults=st.lists(fault_kinds, max_size=40),
)
def test_the_reorder_window_stays_bounded(
    inputs: list[str], batch_size: int, faults: list[str]
) -> None:
    server = SimServer(faults=faults, latency=0.2, latency_per_input=0.05)
    scheduler = make_scheduler(inputs, batch_size=batch_size, on_error="skip")
    result = simulate(scheduler, server)
    window_max = batch_size * 2 * scheduler.rate.ceiling
    for _, _, stop, low in result.dispatch_log:
        assert stop - low <= window_max + batch_size


# -- rate: convergence, no lasting overshoot, budgets ------------------------------------


def _corpus(n: int, seed: int) -> list[str]:
    rng = random_module.Random(seed)
    return ["w" * rng.randint(20, 200) for _ in range(n)]


@settings(max_examples=10)
@given(
    tpm=st.sampled_from([30_000, 60_000, 120_000]),
    latency=st.sampled_from([0.5, 2.0]),
    burst=st.sampled_from([1.0, 1 / 6]),
    seed=st.integers(0, 1000),
)
def test_converges_to_the_servers_token_limit(
    tpm: int, latency: float, burst: float, seed: int
) -> None:
    # Tokens per minute bind; the latency makes concurrency necessary.
    # About four minutes' worth of tokens (a text is 30 tokens on average).
    inputs = _corpus(tpm * 4 // 30, seed)
    server = SimServer(tpm=tpm, latency=latency, burst=burst, headers=True)
    result = simulate(make_scheduler(inputs, batch_size=64), server)
    assert result.aborted is None
    assert sorted(result.delivered) == list(range(len(inputs)))
    total_tokens = sum(entry[3] for entry in server.log)
    # The first minute spends the server's full bucket: measure after it.
    warm = 60.0
    after = [entry for entry in server.log if entry[0] >= warm]
    span = max(entry[0] for entry in server.log) - warm
    assert span > 30, "the corpus is too small to measure a steady state"
    rate = sum(entry[3] for entry in after) / span
    assert rate >= 0.9 * tpm / 60.0
    # The server's bucket may still hold a little at the end of the warm-up.
    assert rate <= 1.05 * tpm / 60.0
    rejected = sum(1 for entry in after if entry[1] == 429)
    assert rejected <= 0.02 * len(after)
    assert total_tokens > 0


@settings(max_examples=10)
@given(
    tpm=st.sampled_from([30_000, 60_000]),
    burst=st.sampled_from([1.0, 1 / 6]),
    seed=st.integers(0, 1000),
)
def test_converges_without_headers_by_aimd_alone(tpm: int, burst: float, seed: int) -> None:
    # No x-ratelimit headers: only 429s with retry-after teach the scheduler.
    inputs = _corpus(tpm * 5 // 30, seed)
    server = SimServer(tpm=tpm, latency=1.0, burst=burst, headers=False)
    result = simulate(make_scheduler(inputs, batch_size=32), server)
    assert sorted(result.delivered) == list(range(len(inputs)))
    warm = 120.0
    after = [entry for entry in server.log if entry[0] >= warm]
    span = max(entry[0] for entry in server.log) - warm
    assert span > 30
    rate = sum(entry[3] for entry in after) / span
    assert rate >= 0.9 * tpm / 60.0
    rejected = sum(1 for entry in after if entry[1] == 429)
    assert rejected <= 0.1 * len(after)


@settings(max_examples=20)
@given(
    rpm=st.one_of(st.none(), st.integers(30, 600)),
    tpm=st.one_of(st.none(), st.integers(2_000, 50_000)),
    seed=st.integers(0, 1000),
    window=st.floats(1.0, 120.0),
)
def test_client_budgets_are_never_exceeded(
    rpm: int | None, tpm: int | None, seed: int, window: float
) -> None:
    inputs = _corpus(800, seed)
    server = SimServer(latency=0.2)  # no server limit: only the budgets pace
    scheduler = make_scheduler(inputs, batch_size=8, requests_per_minute=rpm, tokens_per_minute=tpm)
    result = simulate(scheduler, server)
    assert sorted(result.delivered) == list(range(len(inputs)))
    times = [entry[0] for entry in server.log]
    tokens = [entry[3] for entry in server.log]
    largest = max(tokens)
    for i, start in enumerate(times):
        end = start + window
        inside = [j for j in range(i, len(times)) if times[j] < end]
        if rpm is not None:
            # A bucket of one minute's worth: at most rpm + rate * window in any window.
            assert len(inside) <= rpm + rpm / 60.0 * window + 1e-6
        if tpm is not None:
            # Estimates are corrected when answers arrive: allow what the in-flight requests
            # can be off by (the first answers teach the ratio), plus one oversize request.
            sent = sum(tokens[j] for j in inside)
            assert sent <= 1.1 * (tpm + tpm / 60.0 * window) + largest


def test_the_window_grows_while_the_pipe_is_full_and_shrinks_on_429() -> None:
    inputs = _corpus(3000, 1)
    server = SimServer(latency=2.0)  # no limit: concurrency climbs to the ceiling
    scheduler = make_scheduler(inputs, batch_size=4)
    simulate(scheduler, server)
    assert scheduler.rate.concurrency == scheduler.rate.ceiling == 64

    server = SimServer(latency=2.0)
    fixed = make_scheduler(inputs, batch_size=4, max_concurrency=6)
    result = simulate(fixed, server)
    assert fixed.rate.concurrency == 6
    in_flight = 0
    events = sorted(
        [(t, 1) for t, *_ in result.dispatch_log] + [(t + 2.0, -1) for t, *_ in result.dispatch_log]
    )
    for _, step in events:
        in_flight += step
        assert in_flight <= 6


def test_split_and_skip_decisions_are_values() -> None:
    scheduler = make_scheduler(["abcd"] * 4, batch_size=4, on_error="skip")
    action = scheduler.next_action(0.0)
    assert isinstance(action, Dispatch)
    decision = scheduler.on_failure(action.batch, RequestFailure(status=422), 0.1)
    assert isinstance(decision, SplitBatch)
    assert [(h.start, h.stop) for h in decision.halves] == [(0, 2), (2, 4)]
    action = scheduler.next_action(0.1)
    assert isinstance(action, Dispatch) and (action.batch.start, action.batch.stop) == (0, 2)
    action2 = scheduler.next_action(0.1)
    assert isinstance(action2, Dispatch)
    scheduler.on_success(action2.batch, 2, {}, 0.2)
    decision = scheduler.on_failure(action.batch, RequestFailure(status=422), 0.2)
    assert isinstance(decision, SplitBatch)
    one = scheduler.next_action(0.2)
    two = scheduler.next_action(0.2)
    assert isinstance(one, Dispatch) and isinstance(two, Dispatch)
    scheduler.on_success(one.batch, 1, {}, 0.3)
    decision = scheduler.on_failure(two.batch, RequestFailure(status=422), 0.3)
    assert decision == SkipBatch(1, 2, decision.reason)  # type: ignore[union-attr]
    assert isinstance(scheduler.next_action(0.3), Finished)
    assert scheduler.counters.failed == [1]
    assert math.isclose(scheduler.counters.embedded, 3)


@settings(max_examples=6)
@given(latency=st.sampled_from([0.5, 1.0, 2.0]), seed=st.integers(0, 1000))
def test_from_a_drained_bucket_the_limit_is_reached_within_a_few_round_trips(
    latency: float, seed: int
) -> None:
    # Another client just emptied the server's bucket: the first requests get 429. With the
    # headers known, that must not cost the concurrency the latency needs (12 requests of
    # 1,100 tokens in flight at 2 s each): the limit is reached in a few round trips.
    tpm = 396_000
    inputs = _corpus(12_000, seed)
    server = SimServer(
        tpm=tpm, latency=latency / 4, latency_per_input=latency * 0.0075, burst=1 / 6,
        start_empty=True,
    )  # fmt: skip
    result = simulate(make_scheduler(inputs, batch_size=100), server)
    assert sorted(result.delivered) == list(range(len(inputs)))
    limit = tpm / 60.0
    reached = None
    for step in range(400):
        start = step * 0.25
        window = sum(e[3] for e in server.log if start <= e[0] < start + 4.0)
        if window / 4.0 >= 0.95 * limit:
            reached = start + 4.0
            break
    assert reached is not None and reached <= 4.0 + 5 * latency
    assert sum(1 for entry in server.log if entry[1] == 429) <= 8


# -- waits are bounded (task BX) -------------------------------------------------------------


@pytest.mark.parametrize("on_error", ["raise", "skip"])
@pytest.mark.parametrize(
    ("failure", "waits"),
    [
        (RequestFailure(status=429, retry_after=299.0), True),
        (RequestFailure(status=429, retry_after=301.0), False),
        (RequestFailure(status=429, retry_after=1e9), False),
        (RequestFailure(status=503, retry_after=299.0), True),
        (RequestFailure(status=503, retry_after=86400.0), False),
        # No retry-after: the exhausted budget's reset says how long.
        (
            RequestFailure(
                status=429,
                headers={"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "4m"},
            ),
            True,
        ),
        (
            RequestFailure(
                status=429,
                headers={"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6h"},
            ),
            False,
        ),
    ],
)
def test_a_wait_longer_than_max_retry_after_stops_the_run(
    failure: RequestFailure, waits: bool, on_error: str
) -> None:
    # A server asking for hours (a daily quota spent) would hold the run, silently, for hours:
    # past DEFAULT_MAX_RETRY_AFTER (300 s) the run stops instead, whatever on_error says (the
    # inputs are not at fault), and the output stays resumable.
    scheduler = make_scheduler(["a", "b"], batch_size=1, on_error=on_error)
    action = scheduler.next_action(10.0)
    assert isinstance(action, Dispatch)
    decision = scheduler.on_failure(action.batch, failure, 10.0)
    if waits:
        assert isinstance(decision, RetryBatch)
        assert decision.not_before <= 10.0 + 300.0
    else:
        assert isinstance(decision, Abort)
        assert "longer than the 300 s" in decision.reason
        with pytest.raises(RuntimeError):
            scheduler.next_action(11.0)


def test_max_retry_after_is_a_setting() -> None:
    scheduler = make_scheduler(["a"], max_retry_after=5.0)
    action = scheduler.next_action(0.0)
    assert isinstance(action, Dispatch)
    decision = scheduler.on_failure(action.batch, RequestFailure(status=429, retry_after=6.0), 0.0)
    assert isinstance(decision, Abort)
    for bad in (0, -1.0, math.nan, math.inf, True, "5"):
        with pytest.raises((InvalidArgumentTypeError, InvalidArgumentValueError)):
            make_scheduler(["a"], max_retry_after=bad)


def test_a_carried_rate_controller_keeps_the_budget_across_runs() -> None:
    # 6 requests a minute. The first run sends until its budget is spent; a second run started
    # at once with the same controller must wait, where a fresh controller sends at once.
    first = make_scheduler(["a"] * 20, batch_size=1, requests_per_minute=6)
    sent = 0
    for _ in range(20):
        action = first.next_action(0.0)
        if not isinstance(action, Dispatch):
            break
        first.on_success(action.batch, 1, {}, 0.0)
        sent += 1
    assert 1 <= sent <= 6  # never more than the minute's budget at once
    assert isinstance(first.next_action(0.0), Wait)

    carried = make_scheduler(["c"], batch_size=1, requests_per_minute=6, rate=first.rate)
    assert isinstance(carried.next_action(0.0), Wait)
    fresh = make_scheduler(["c"], batch_size=1, requests_per_minute=6)
    assert isinstance(fresh.next_action(0.0), Dispatch)
