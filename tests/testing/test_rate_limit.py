"""The local server's rate limiter, per-request token cap and latency (issue #11).

The limiter runs on a fake clock and the latency on a fake sleep: nothing here waits for real.
Expected figures are worked out by hand from the documented rule (burst = 1/6 of the
per-minute budget, continuous refill of budget/60 a second).
"""

from __future__ import annotations

import http.client
import json
import math
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aligneai import AligneAI
from aligneai.core.errors import (
    BadRequestError,
    InvalidArgumentTypeError,
    InvalidArgumentValueError,
    RateLimitError,
)
from aligneai.core.ratecontrol import parse_duration, parse_rate_limit_headers
from aligneai.testing import Fault, LocalServer, ServerStats, count_tokens
from aligneai.testing._ratelimit import RateLimiter, TokenBucket, format_reset

KEY = "sk-limits"
RESET = re.compile(r"^[0-9]+(\.[0-9]+)?(ms|s)$")


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    payload: Any


def _post(server: LocalServer, body: object, path: str = "/v1/embeddings") -> Reply:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        method = "GET" if "models" in path else "POST"
        raw = None if method == "GET" else json.dumps(body).encode()
        conn.request(method, path, body=raw, headers={"Authorization": f"Bearer {KEY}"})
        response = conn.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        data = response.read()
        payload = json.loads(data) if headers.get("content-type") == "application/json" else data
        return Reply(response.status, headers, payload)
    finally:
        conn.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def limited(clock: FakeClock) -> Iterator[LocalServer]:
    # 6 requests a minute: a burst of 1, one more every 10 s.
    # 600 tokens a minute: a burst of 100, 10 more a second.
    with LocalServer(
        api_key=KEY, requests_per_minute=6, tokens_per_minute=600, clock=clock
    ) as server:
        yield server


# -- the rule, pure ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0ms"),
        (0.12, "120ms"),
        (0.1201, "121ms"),  # rounded up: never earlier than the truth
        (0.9995, "1s"),  # 999.5 ms rounds up to a whole second
        (0.99999, "1s"),
        (1.0, "1s"),
        (1.5, "1.5s"),
        (90.25, "90.25s"),
        (600.0, "600s"),
    ],
)
def test_format_reset(seconds: float, text: str) -> None:
    assert format_reset(seconds) == text
    assert RESET.match(text)


def test_bucket_burst_is_a_sixth_of_the_minute_at_least_one() -> None:
    assert TokenBucket(600, 0.0).capacity == 100.0
    assert TokenBucket(6, 0.0).capacity == 1.0
    assert TokenBucket(1, 0.0).capacity == 1.0  # never below one whole request


def test_a_request_larger_than_the_burst_waits_for_a_full_bucket_then_leaves_debt() -> None:
    limiter = RateLimiter(None, 60, now=0.0)  # burst 10 tokens, 1 token a second
    assert limiter.decide(30, 0.0).admitted  # full bucket: a 30-token request passes
    refused = limiter.decide(1, 0.0)  # level -20: a 1-token request waits 21 s
    assert not refused.admitted
    assert refused.limited_by == ("tokens",)
    assert refused.retry_after == pytest.approx(21.0)
    assert not limiter.decide(1, 20.9).admitted
    assert limiter.decide(1, 21.0).admitted


def test_a_refused_request_charges_no_bucket() -> None:
    limiter = RateLimiter(60, 60, now=0.0)  # bursts: 10 requests, 10 tokens
    assert limiter.decide(10, 0.0).admitted  # tokens now 0, requests 9
    for _ in range(5):
        assert not limiter.decide(5, 0.0).admitted
    headers = dict(limiter.headers(0.0))
    assert headers["x-ratelimit-remaining-requests"] == "9"
    assert headers["x-ratelimit-remaining-tokens"] == "0"
    assert headers["x-ratelimit-reset-tokens"] == "10s"
    assert headers["x-ratelimit-reset-requests"] == "1s"
    assert headers["x-ratelimit-limit-requests"] == "60"


@settings(deadline=None, max_examples=50)
@given(
    per_minute=st.integers(1, 10_000),
    steps=st.lists(st.tuples(st.floats(0.0, 5.0), st.integers(1, 400)), min_size=1, max_size=200),
)
def test_admitted_never_exceed_burst_plus_refill_and_waiting_always_admits(
    per_minute: int, steps: list[tuple[float, int]]
) -> None:
    """Over any run, what was admitted fits in burst + rate x time + the last request (debt);
    and after waiting the reported `retry_after`, the same request is admitted."""
    limiter = RateLimiter(None, per_minute, now=0.0)
    burst, rate = max(per_minute / 6, 1.0), per_minute / 60
    now, admitted = 0.0, 0
    for gap, cost in steps:
        now += gap
        decision = limiter.decide(cost, now)
        if not decision.admitted:
            assert decision.retry_after > 0
            now += decision.retry_after
            decision = limiter.decide(cost, now)
            assert decision.admitted
        admitted += cost
        assert admitted <= burst + rate * now + cost + 1e-6


@settings(deadline=None, max_examples=50)
@given(
    per_minute=st.integers(1, 10_000),
    costs=st.lists(st.integers(1, 400), min_size=1, max_size=200),
)
def test_a_greedy_client_gets_the_whole_budget(per_minute: int, costs: list[int]) -> None:
    """A client that always sends again as soon as `retry_after` allows is never held below the
    budget: by any admission at time t, at least rate x t units were admitted (the limiter
    wastes nothing while a client waits), and never more than burst + rate x t + the last cost."""
    limiter = RateLimiter(None, per_minute, now=0.0)
    burst, rate = max(per_minute / 6, 1.0), per_minute / 60
    now, admitted = 0.0, 0
    for cost in costs:
        decision = limiter.decide(cost, now)
        if not decision.admitted:
            now += decision.retry_after
            assert limiter.decide(cost, now).admitted
        admitted += cost
        assert rate * now - 1e-6 <= admitted <= burst + rate * now + cost + 1e-6


# -- the server -------------------------------------------------------------------------------


def test_requests_budget_answers_429_with_waits_from_the_bucket(
    limited: LocalServer, clock: FakeClock
) -> None:
    first = _post(limited, {"inputs": "hello"})
    assert first.status == 200
    assert first.headers["x-ratelimit-limit-requests"] == "6"
    assert first.headers["x-ratelimit-remaining-requests"] == "0"
    assert first.headers["x-ratelimit-reset-requests"] == "10s"
    assert first.headers["x-ratelimit-limit-tokens"] == "600"
    assert first.headers["x-ratelimit-remaining-tokens"] == "99"
    assert first.headers["x-ratelimit-reset-tokens"] == "100ms"

    clock.advance(2.5)
    second = _post(limited, {"inputs": "hello"})
    assert second.status == 429
    assert second.payload["error"]["type"] == "rate_limit_error"
    assert second.payload["error"]["code"] == "rate_limit_exceeded"
    assert "requests per minute" in second.payload["error"]["message"]
    assert second.headers["retry-after-ms"] == "7500"
    assert second.headers["retry-after"] == "8"  # whole seconds, rounded up
    assert second.headers["x-ratelimit-remaining-requests"] == "0"
    assert second.headers["x-ratelimit-reset-requests"] == "7.5s"

    clock.advance(7.5)
    assert _post(limited, {"inputs": "hello"}).status == 200
    assert limited.stats == ServerStats(requests=3, accepted=2, rate_limited=1, tokens=2, inputs=2)


def test_tokens_budget(clock: FakeClock) -> None:
    with LocalServer(api_key=KEY, tokens_per_minute=600, clock=clock) as server:
        text = " ".join(["word"] * 60)  # 60 tokens
        ok = _post(server, {"inputs": text})
        assert ok.status == 200
        assert ok.payload["usage"] == {"prompt_tokens": 60, "total_tokens": 60}
        assert "x-ratelimit-limit-requests" not in ok.headers  # no request budget: not reported
        assert ok.headers["x-ratelimit-remaining-tokens"] == "40"
        refused = _post(server, {"inputs": text})
        assert refused.status == 429
        assert "tokens per minute" in refused.payload["error"]["message"]
        assert refused.headers["retry-after-ms"] == "2000"  # 20 tokens missing at 10 a second
        clock.advance(2.0)
        assert _post(server, {"inputs": text}).status == 200
        assert server.stats.tokens == 120


def test_every_answer_carries_the_headers(limited: LocalServer) -> None:
    for reply in (
        _post(limited, {"inputs": "a"}, path="/v1/nowhere"),
        _post(limited, {"inputs": ""}),  # 422
        _post(limited, {"inputs": 3}),  # 400
    ):
        assert reply.status in (404, 422, 400)
        assert reply.headers["x-ratelimit-remaining-requests"] == "1"  # nothing was charged
        for kind in ("requests", "tokens"):
            assert RESET.match(reply.headers[f"x-ratelimit-reset-{kind}"])
    limited.enqueue(Fault.status(503))
    faulted = _post(limited, {"inputs": "a"})
    assert faulted.status == 503
    assert faulted.headers["x-ratelimit-limit-tokens"] == "600"


def test_models_requests_take_from_the_request_budget(limited: LocalServer) -> None:
    assert _post(limited, None, path="/v1/models").status == 200
    assert _post(limited, None, path="/v1/models").status == 429
    assert _post(limited, {"inputs": "a"}).status == 429
    assert limited.stats.accepted == 0


def test_max_request_tokens_refuses_before_charging(clock: FakeClock) -> None:
    with LocalServer(
        api_key=KEY, tokens_per_minute=600, max_request_tokens=10, clock=clock
    ) as server:
        texts = ["one two three four", "five six seven"]  # 7 tokens
        assert _post(server, {"inputs": texts}).status == 200
        too_big = _post(server, {"inputs": [*texts, "eight nine ten eleven"]})  # 11 tokens
        assert too_big.status == 400
        assert too_big.payload["error"]["code"] == "request_too_large"
        assert too_big.payload["error"]["param"] == "inputs"
        assert "11 tokens" in too_big.payload["error"]["message"]
        assert too_big.headers["x-ratelimit-remaining-tokens"] == "93"  # only the first: 100-7
        assert server.stats == ServerStats(requests=2, accepted=1, tokens=7, inputs=2)


def test_the_client_sees_rate_limit_and_too_large_errors(clock: FakeClock) -> None:
    with LocalServer(
        api_key=KEY, requests_per_minute=6, max_request_tokens=3, clock=clock
    ) as server:
        client = AligneAI(api_key=KEY, base_url=server.url, max_retries=0)
        with client:
            with pytest.raises(BadRequestError) as too_large:
                client.embeddings.create(inputs="one two three four")
            assert too_large.value.code == "request_too_large"
            client.embeddings.create(inputs="one")
            with pytest.raises(RateLimitError) as limited:
                client.embeddings.create(inputs="one")
            assert limited.value.headers["retry-after-ms"] == "10000"


def test_usage_follows_count_tokens(limited: LocalServer) -> None:
    texts = ["Hello, world!", "don't stop", "   "]
    reply = _post(limited, {"inputs": texts})
    assert reply.payload["usage"]["total_tokens"] == 4 + 4 + 1
    assert sum(map(count_tokens, texts)) == 9


def test_reset_refills_and_zeroes_counters(limited: LocalServer) -> None:
    assert _post(limited, {"inputs": "a"}).status == 200
    assert _post(limited, {"inputs": "a"}).status == 429
    limited.reset()
    assert limited.stats == ServerStats()
    assert _post(limited, {"inputs": "a"}).status == 200


# -- latency ----------------------------------------------------------------------------------


def test_latency_per_request_and_input_is_slept_without_blocking_others() -> None:
    release = threading.Event()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if math.isclose(seconds, 0.5 + 3 * 0.25):  # the 3-input request: held until released
            assert release.wait(10)

    with LocalServer(api_key=KEY, latency=0.5, latency_per_input=0.25, sleep=sleep) as server:
        slow: list[Reply] = []
        worker = threading.Thread(target=lambda: slow.append(_post(server, {"inputs": ["a"] * 3})))
        worker.start()
        try:
            fast = _post(server, {"inputs": "a"})  # answered while the slow one is held
            assert fast.status == 200
            assert not slow
            assert _post(server, None, path="/v1/models").status == 200  # no latency
            assert _post(server, {"inputs": ""}).status == 422  # refused: no latency
        finally:
            release.set()
            worker.join(10)
        assert slow[0].status == 200
    assert sorted(slept) == [0.75, 1.25]


@pytest.mark.parametrize(
    ("kwargs", "error", "argument"),
    [
        ({"requests_per_minute": 0}, InvalidArgumentValueError, "requests_per_minute"),
        ({"tokens_per_minute": 1.5}, InvalidArgumentTypeError, "tokens_per_minute"),
        ({"max_request_tokens": True}, InvalidArgumentTypeError, "max_request_tokens"),
        ({"latency": -1.0}, InvalidArgumentValueError, "latency"),
        ({"latency_per_input": float("nan")}, InvalidArgumentValueError, "latency_per_input"),
        ({"latency": "1"}, InvalidArgumentTypeError, "latency"),
    ],
)
def test_bad_settings_are_refused_naming_the_argument(
    kwargs: dict[str, Any], error: type[Exception], argument: str
) -> None:
    with pytest.raises(error) as info:
        LocalServer(**kwargs)
    assert getattr(info.value, "argument", None) == argument


def test_headers_of_one_request_never_carry_over_to_the_next_on_a_connection(
    limited: LocalServer, clock: FakeClock
) -> None:
    body = b'{"inputs": "a"}'
    first = (
        b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + KEY.encode()
        + b"\r\nContent-Length: %d\r\n\r\n" % len(body)
        + body
    )
    with socket.create_connection(("127.0.0.1", limited.port), timeout=10) as sock:
        sock.sendall(first)
        response = http.client.HTTPResponse(sock)
        response.begin()
        response.read()
        assert response.getheader("x-ratelimit-remaining-requests") == "0"
        clock.advance(10.0)  # the request bucket is full again
        sock.sendall(b"GET /v1/a b HTTP/1.1\r\nHost: x\r\n\r\n")  # http.server's own 400
        second = http.client.HTTPResponse(sock)
        second.begin()
        assert second.status == 400
        assert second.getheader("x-ratelimit-remaining-requests") == "1"


@settings(deadline=None, max_examples=200)
@given(seconds=st.floats(0.0, 10**6, allow_nan=False, allow_infinity=False))
def test_the_clients_rate_control_reads_the_reset_format(seconds: float) -> None:
    """The bulk client's parser (core) reads back what the server writes, to the millisecond."""
    parsed = parse_duration(format_reset(seconds))
    assert parsed is not None
    assert seconds - 1e-9 <= parsed <= seconds + 0.001 + 1e-9  # rounded up, never earlier


def test_the_clients_rate_control_reads_the_server_headers(
    limited: LocalServer, clock: FakeClock
) -> None:
    _post(limited, {"inputs": "one two three"})
    clock.advance(0.05)
    info = parse_rate_limit_headers(_post(limited, {"inputs": "x"}).headers)  # a 429
    assert (info.limit_requests, info.remaining_requests) == (6, 0)
    assert info.reset_requests == pytest.approx(9.95)
    assert (info.limit_tokens, info.remaining_tokens) == (600, 97)
    assert info.reset_tokens == pytest.approx(0.3 - 0.05)
