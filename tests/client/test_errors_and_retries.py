"""Error mapping, retries, pacing and timeouts of both clients against a loopback server.

No test sleeps for real except the two read-timeout tests: every client gets an injected
``_sleep`` that records the delays (``api.sleeps``). The total-timeout tests also give the
clients a clock that moves only when they sleep (`sleep_clock`), so that their outcome never
depends on how fast a loaded machine answers.
"""

from __future__ import annotations

import json
import threading
import time
from email.utils import formatdate
from types import SimpleNamespace

import pytest
from werkzeug.wrappers import Response

import aligneai._runner
from aligneai import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    Timeout,
    UnprocessableEntityError,
)

STATUS_TABLE = [
    (400, BadRequestError),
    (401, AuthenticationError),
    (403, PermissionDeniedError),
    (404, NotFoundError),
    (422, UnprocessableEntityError),
    (429, RateLimitError),
    (500, InternalServerError),
    (502, InternalServerError),
    (503, InternalServerError),
    (418, APIStatusError),
]

RETRYABLE = [408, 409, 429, 500, 502, 503]
NOT_RETRYABLE = [400, 401, 403, 404, 422]


def _error(wire, status: int, headers=None, **fields) -> Response:
    return wire.json_response(wire.error_payload(**fields), status, headers)


# -- status -> exception ---------------------------------------------------------------------


@pytest.mark.parametrize(("status", "cls"), STATUS_TABLE, ids=[str(s) for s, _ in STATUS_TABLE])
def test_status_maps_to_its_exception(api, server, wire, status, cls):
    server.reply(
        "/embeddings",
        _error(
            wire,
            status,
            {"x-request-id": f"req_{status}"},
            message=f"boom {status}",
            type="some_error_type",
            code="some_code",
            param="dimensions",
        ),
    )
    client = api.make(max_retries=0)

    with pytest.raises(APIStatusError) as info:
        client.embeddings.create(inputs="a")

    err = info.value
    assert type(err) is cls
    assert isinstance(err, APIError)
    assert err.status_code == status
    assert err.request_id == f"req_{status}"
    assert err.message == f"boom {status}"
    assert err.type == "some_error_type"
    assert err.code == "some_code"
    assert err.param == "dimensions"
    assert err.body == wire.error_payload(
        f"boom {status}", "some_error_type", "some_code", "dimensions"
    )
    assert err.headers["x-request-id"] == f"req_{status}"
    assert err.headers["content-type"] == "application/json"
    assert str(err) == f"Error code: {status} (request id req_{status}) - boom {status}"
    assert "sk-test-key-123" not in repr(err.request)
    assert server.count == 1


def test_error_without_request_id_or_optional_fields(api, server, wire):
    server.reply(
        "/embeddings",
        wire.json_response({"error": {"message": "bad", "type": "invalid_request_error"}}, 400),
    )

    with pytest.raises(BadRequestError) as info:
        api.client.embeddings.create(inputs="a")

    assert info.value.request_id is None
    assert (info.value.code, info.value.param) == (None, None)
    assert str(info.value) == "Error code: 400 - bad"


def test_html_error_body(api, server):
    html = "<html><head><title>502 Bad Gateway</title></head>\n<body>nginx</body></html>"
    server.reply(
        "/embeddings",
        Response(html, status=502, content_type="text/html", headers={"x-request-id": "r-h"}),
    )
    client = api.make(max_retries=0)

    with pytest.raises(InternalServerError) as info:
        client.embeddings.create(inputs="a")

    err = info.value
    assert err.status_code == 502
    assert err.request_id == "r-h"
    assert err.body == html
    assert "502" in err.message
    assert "502 Bad Gateway" in err.message
    assert (err.type, err.code, err.param) == (None, None, None)


@pytest.mark.parametrize("status", [401, 503])
def test_empty_error_body(api, server, status):
    server.reply("/embeddings", Response(b"", status=status))
    client = api.make(max_retries=0)

    with pytest.raises(APIStatusError) as info:
        client.embeddings.create(inputs="a")

    assert info.value.status_code == status
    assert info.value.body is None
    assert str(status) in info.value.message
    assert "empty" in info.value.message


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"error": "plain text error"}, "plain text error"),
        ({"message": "top-level message"}, "top-level message"),
        ({"detail": "other shape"}, "HTTP 400"),
    ],
)
def test_error_bodies_of_other_shapes(api, server, wire, payload, message):
    server.reply("/embeddings", wire.json_response(payload, 400))

    with pytest.raises(BadRequestError) as info:
        api.client.embeddings.create(inputs="a")

    assert info.value.message == message
    assert info.value.body == payload


# -- how many attempts -----------------------------------------------------------------------


@pytest.mark.parametrize("status", RETRYABLE)
def test_retryable_status_is_retried_max_retries_times(api, server, wire, status):
    server.reply("/embeddings", _error(wire, status))

    with pytest.raises(APIStatusError) as info:
        api.client.embeddings.create(inputs="a")

    assert info.value.status_code == status
    assert server.count == 3  # max_retries (2) + 1
    assert len(api.sleeps) == 2


@pytest.mark.parametrize("status", NOT_RETRYABLE)
def test_non_retryable_status_is_sent_once(api, server, wire, status):
    server.reply("/embeddings", _error(wire, status))

    with pytest.raises(APIStatusError) as info:
        api.client.embeddings.create(inputs="a")

    assert info.value.status_code == status
    assert server.count == 1
    assert api.sleeps == []


@pytest.mark.parametrize("max_retries", [0, 1, 4])
def test_client_max_retries(api, server, wire, max_retries):
    server.reply("/embeddings", _error(wire, 500))
    client = api.make(max_retries=max_retries)

    with pytest.raises(InternalServerError):
        client.embeddings.create(inputs="a")

    assert server.count == max_retries + 1
    assert len(api.sleeps) == max_retries


@pytest.mark.parametrize("per_call", [0, 1, 3])
def test_per_call_max_retries(api, server, wire, per_call):
    server.reply("/embeddings", _error(wire, 503))

    with pytest.raises(InternalServerError):
        api.client.embeddings.create(inputs="a", max_retries=per_call)

    assert server.count == per_call + 1


def test_per_call_max_retries_on_get(api, server, wire):
    server.reply("/models", _error(wire, 503))

    with pytest.raises(InternalServerError):
        api.client.models.list(max_retries=1)

    assert server.count == 2


def test_with_options_max_retries_leaves_the_original_unchanged(api, server, wire):
    server.reply("/embeddings", _error(wire, 503))
    original = api.client
    derived = original.with_options(max_retries=4)

    with pytest.raises(InternalServerError):
        derived.embeddings.create(inputs="a")
    assert server.count == 5
    assert derived.max_retries == 4

    server.httpserver.clear_log()
    with pytest.raises(InternalServerError):
        original.embeddings.create(inputs="a")
    assert server.count == 3
    assert original.max_retries == 2


def test_success_after_retries(api, server, wire):
    server.sequence(
        "/embeddings",
        [_error(wire, 503), _error(wire, 429), wire.json_response(wire.embeddings_payload())],
    )

    response = api.client.embeddings.create(inputs=["a", "b", "c"])

    assert [item.embedding for item in response.data] == wire.VECTORS
    assert server.count == 3


# -- headers across retries ------------------------------------------------------------------


def test_retry_count_and_idempotency_key_across_retries(api, server, wire):
    server.reply("/embeddings", _error(wire, 503))

    with pytest.raises(InternalServerError):
        api.client.embeddings.create(inputs="a")
    with pytest.raises(InternalServerError):
        api.client.embeddings.create(inputs="a")

    counts = [r.headers["X-AligneAI-Retry-Count"] for r in server.requests]
    keys = [r.headers["Idempotency-Key"] for r in server.requests]
    assert counts == ["0", "1", "2", "0", "1", "2"]
    assert len(set(keys[:3])) == 1
    assert len(set(keys[3:])) == 1
    assert keys[0] != keys[3]
    # Every retry sends the same body.
    assert server.json_bodies() == [{"inputs": "a", "encoding_format": "base64"}] * 6


def test_retry_count_on_get_and_no_idempotency_key(api, server, wire):
    server.reply("/models", _error(wire, 500))

    with pytest.raises(InternalServerError):
        api.client.models.list()

    assert [r.headers["X-AligneAI-Retry-Count"] for r in server.requests] == ["0", "1", "2"]
    assert all("Idempotency-Key" not in r.headers for r in server.requests)


# -- pacing ----------------------------------------------------------------------------------


def test_retry_after_ms_is_honoured_exactly(api, server, wire):
    server.reply("/embeddings", _error(wire, 429, {"retry-after-ms": "250"}))

    with pytest.raises(RateLimitError):
        api.client.embeddings.create(inputs="a")

    assert api.sleeps == [0.25, 0.25]
    assert server.count == 3


@pytest.mark.parametrize(("header", "delay"), [("2", 2.0), ("0", 0.0), ("1.5", 1.5)])
def test_retry_after_seconds_is_honoured_exactly(api, server, wire, header, delay):
    server.reply("/embeddings", _error(wire, 503, {"retry-after": header}))

    with pytest.raises(InternalServerError):
        api.client.embeddings.create(inputs="a")

    assert api.sleeps == [delay, delay]


def test_retry_after_http_date_is_honoured(api, server, wire):
    when = formatdate(time.time() + 30, usegmt=True)
    server.reply("/embeddings", _error(wire, 503, {"retry-after": when}))

    with pytest.raises(InternalServerError):
        api.client.embeddings.create(inputs="a")

    # The date has a one-second resolution: the wait is what is left until it, <= 30 s (the
    # lower bound leaves a loaded machine 10 s for the calls; a missed header gives < 1 s).
    assert len(api.sleeps) == 2
    assert all(20.0 < delay <= 30.0 for delay in api.sleeps)


def test_retry_after_http_date_in_the_past_means_now(api, server, wire):
    server.reply("/embeddings", _error(wire, 503, {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}))

    with pytest.raises(InternalServerError):
        api.client.embeddings.create(inputs="a")

    assert api.sleeps == [0.0, 0.0]


def test_retry_after_ms_wins_over_retry_after(api, server, wire):
    server.reply("/embeddings", _error(wire, 503, {"retry-after-ms": "100", "retry-after": "7"}))

    with pytest.raises(InternalServerError):
        api.client.embeddings.create(inputs="a")

    assert api.sleeps == [0.1, 0.1]


@pytest.mark.parametrize(
    "headers",
    [{"retry-after": "61"}, {"retry-after-ms": "60001"}, {"retry-after": "3600"}],
    ids=["61s", "60001ms", "1h"],
)
def test_retry_after_over_60_seconds_is_not_waited_for(api, server, wire, headers):
    server.reply("/embeddings", _error(wire, 429, headers, message="slow down"))

    with pytest.raises(RateLimitError) as info:
        api.client.embeddings.create(inputs="a")

    assert info.value.message == "slow down"
    assert server.count == 1
    assert api.sleeps == []


def test_retry_after_of_exactly_60_seconds_is_waited_for(api, server, wire):
    server.reply("/embeddings", _error(wire, 429, {"retry-after": "60"}))

    with pytest.raises(RateLimitError):
        api.client.embeddings.create(inputs="a")

    assert api.sleeps == [60.0, 60.0]


@pytest.mark.parametrize("value", ["soon", "-5", "nan", ""])
def test_unusable_retry_after_falls_back_to_backoff(api, server, wire, value):
    server.reply("/embeddings", _error(wire, 503, {"retry-after": value}))

    with pytest.raises(InternalServerError):
        api.client.embeddings.create(inputs="a")

    assert server.count == 3
    assert 0.375 <= api.sleeps[0] <= 0.5
    assert 0.75 <= api.sleeps[1] <= 1.0


def test_backoff_delays_without_retry_after(api, server, wire):
    server.reply("/embeddings", _error(wire, 503))

    for _ in range(5):
        with pytest.raises(InternalServerError):
            api.client.embeddings.create(inputs="a")

    assert len(api.sleeps) == 10
    for first, second in zip(api.sleeps[0::2], api.sleeps[1::2]):
        assert 0.375 <= first <= 0.5
        assert 0.75 <= second <= 1.0


def test_backoff_doubles_up_to_8_seconds(api, server, wire):
    server.reply("/embeddings", _error(wire, 502))
    client = api.make(max_retries=7)

    with pytest.raises(InternalServerError):
        client.embeddings.create(inputs="a")

    bases = [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert len(api.sleeps) == len(bases)
    for delay, base in zip(api.sleeps, bases):
        assert 0.75 * base <= delay <= base


# -- x-should-retry --------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["false", "False", " false "])
def test_x_should_retry_false_stops_retries(api, server, wire, value):
    server.reply("/embeddings", _error(wire, 503, {"x-should-retry": value}))

    with pytest.raises(InternalServerError):
        api.client.embeddings.create(inputs="a")

    assert server.count == 1
    assert api.sleeps == []


def test_x_should_retry_true_retries_a_400(api, server, wire):
    server.reply("/embeddings", _error(wire, 400, {"x-should-retry": "true"}))

    with pytest.raises(BadRequestError):
        api.client.embeddings.create(inputs="a")

    assert server.count == 3


def test_x_should_retry_true_still_respects_max_retries_and_retry_after(api, server, wire):
    server.reply("/embeddings", _error(wire, 404, {"x-should-retry": "true", "retry-after": "3"}))

    with pytest.raises(NotFoundError):
        api.client.embeddings.create(inputs="a", max_retries=1)

    assert server.count == 2
    assert api.sleeps == [3.0]


# -- connection failures and timeouts --------------------------------------------------------


@pytest.mark.parametrize("max_retries", [0, 2])
def test_connection_refused(api, closed_port, max_retries):
    client = api.make(base_url=f"http://127.0.0.1:{closed_port}/v1", max_retries=max_retries)

    with pytest.raises(APIConnectionError) as info:
        client.embeddings.create(inputs="a")

    assert not isinstance(info.value, APITimeoutError)
    assert not isinstance(info.value, APIStatusError)
    assert info.value.request is not None
    assert "sk-test-key-123" not in str(info.value) + repr(info.value.request)
    # One sleep between two attempts: max_retries + 1 attempts were made.
    assert len(api.sleeps) == max_retries
    if max_retries == 2:
        assert 0.375 <= api.sleeps[0] <= 0.5
        assert 0.75 <= api.sleeps[1] <= 1.0


def test_connection_dropped_mid_body_is_retried(api, server, wire):
    body = json.dumps(wire.embeddings_payload()).encode()

    def broken():
        yield body[:40]
        raise ConnectionResetError("the server went away")  # werkzeug drops the connection

    server.reply(
        "/embeddings",
        lambda _request: Response(broken(), content_type="application/json"),
    )

    with pytest.raises(APIConnectionError) as info:
        api.client.embeddings.create(inputs="a")

    assert not isinstance(info.value, APITimeoutError)
    assert server.count == 3
    assert len(api.sleeps) == 2


# A stalled handler waits this long at most (the test releases it as soon as it is done): far
# past every timeout below, so that a client that missed its timeout would be seen waiting.
STALL = 10.0


def _stalling_handler(release: threading.Event):
    def handler(_request):
        release.wait(STALL)
        return Response(b"{}", status=200, content_type="application/json")

    return handler


def _finish_stalled(server, release: threading.Event, attempts: int) -> None:
    # Let the stalled handlers return now, and wait (bounded) until the server logged them, so
    # that nothing from this test reaches the next one's log.
    release.set()
    deadline = time.monotonic() + 10.0
    while server.count < attempts and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.count == attempts


def test_read_timeout_raises_api_timeout_error_after_retries(api, server):
    release = threading.Event()
    server.reply("/embeddings", _stalling_handler(release))
    client = api.make(timeout=0.2, max_retries=1)

    started = time.monotonic()
    with pytest.raises(APITimeoutError) as info:
        client.embeddings.create(inputs="a")
    elapsed = time.monotonic() - started

    assert isinstance(info.value, APIConnectionError)
    assert len(api.sleeps) == 1  # retried once: two attempts of 0.2 s each
    # At least the two read timeouts; at most those plus slack for a loaded machine, far from
    # the 2 x 10 s a client that ignored its read timeout would wait.
    assert 0.35 < elapsed < 4.0
    _finish_stalled(server, release, 2)


def test_total_timeout_bounds_a_slow_attempt(api, server):
    release = threading.Event()
    server.reply("/embeddings", _stalling_handler(release))
    client = api.make(timeout=Timeout(read=10, total=0.3), max_retries=5)

    started = time.monotonic()
    with pytest.raises(APITimeoutError):
        client.embeddings.create(inputs="a")
    elapsed = time.monotonic() - started

    assert 0.25 < elapsed < 4.0  # the 0.3 s deadline, not the 10 s read timeout or stall
    assert api.sleeps == []  # no time was left for a retry
    _finish_stalled(server, release, 1)


@pytest.fixture
def sleep_clock(api, monkeypatch):
    """The clients' monotonic clock: it moves by each (recorded, never slept) retry sleep only.

    The clients take ``time.monotonic`` from their module when a call starts; here it is a
    clock that answers instantly, so the deadline arithmetic is exact: the retry waits are the
    only time that passes. Each attempt still gets the time left as its transport timeout
    (real seconds), at least 0.6 s in the tests below.
    """
    fake_time = SimpleNamespace(monotonic=lambda: 1000.0 + sum(api.sleeps), time=time.time)
    monkeypatch.setattr(aligneai._runner, "time", fake_time)
    return api


def test_total_timeout_stops_backoff_retries(sleep_clock, server, wire):
    api = sleep_clock
    server.reply("/embeddings", _error(wire, 503))
    # Backoffs: 0.375-0.5, 0.75-1, 1.5-2, 3-4 s. After three of them at most 3.5 s have passed,
    # so the 5 s deadline allows them; the fourth would end at 5.625 s or later: not made.
    client = api.make(timeout=Timeout(total=5.0), max_retries=6)

    with pytest.raises(InternalServerError):
        client.embeddings.create(inputs="a")

    assert server.count == 4
    assert len(api.sleeps) == 3
    for (low, high), slept in zip([(0.375, 0.5), (0.75, 1.0), (1.5, 2.0)], api.sleeps):
        assert low <= slept <= high


def test_total_timeout_does_not_wait_past_the_deadline_for_retry_after(sleep_clock, server, wire):
    api = sleep_clock
    server.reply("/embeddings", _error(wire, 429, {"retry-after": "50"}))

    with pytest.raises(RateLimitError):
        api.client.embeddings.create(inputs="a", timeout=Timeout(total=30))

    assert server.count == 1
    assert api.sleeps == []  # 50 s asked for, 30 s left: raised at once


def test_per_call_timeout_overrides_the_client(sleep_clock, server, wire):
    api = sleep_clock
    server.reply("/embeddings", _error(wire, 503))
    # 1.1 s allows the first backoff (<= 0.5 s) but not the second (>= 0.75 s more).
    client = api.make(timeout=Timeout(total=1.1), max_retries=2)

    with pytest.raises(InternalServerError):
        client.embeddings.create(inputs="a")
    assert server.count == 2

    # A number or None sets the read limit only: the client's deadline still holds.
    for timeout in (30, None, Timeout(read=30)):
        with pytest.raises(InternalServerError):
            client.embeddings.create(inputs="a", timeout=timeout)
    assert server.count == 2 + 3 * 2

    # Writing total=None in a per-call Timeout removes the deadline: all three attempts.
    with pytest.raises(InternalServerError):
        client.embeddings.create(inputs="a", timeout=Timeout(total=None))
    assert server.count == 2 + 3 * 2 + 3
