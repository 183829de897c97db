"""Tests of aligneai.core.flow: the request flow, driven by hand with a fake clock.

No sockets and no sleeping: a scripted fake transport answers each `Send` and `ReadBody`, and
time only moves when the script says an answer took time or the flow asks to `Sleep`. Like a
real transport, the fake one never lets an attempt run past ``request.timeout.total``: it
answers `ReadTimeout` when the budget is spent.
"""

from __future__ import annotations

import json
import logging
from email.utils import formatdate
from typing import Any, Union

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aligneai.core.body import BodyBuffer
from aligneai.core.errors import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    InternalServerError,
    NotFoundError,
    ResponseTooLargeError,
)
from aligneai.core.failures import (
    ConnectError,
    ConnectTimeout,
    ReadError,
    ReadTimeout,
    TransportError,
)
from aligneai.core.flow import (
    FlowResult,
    PreparedCall,
    ReadBody,
    Send,
    Sleep,
    prepare_call,
    request_flow,
)
from aligneai.core.operations import CallOptions, Operation, create_embeddings, list_models
from aligneai.core.options import DEFAULT_MAX_RESPONSE_BYTES, ClientOptions, Timeout
from aligneai.core.request import PlatformInfo, base_headers
from aligneai.core.response import ResponseHead

KEY = "sk-SECRET-123"
IDEM = "idem-0f3e"
WALL0 = 1_700_000_000.0
EPS = 1e-9
PLATFORM = PlatformInfo(os="Linux", arch="x86_64", runtime="CPython", runtime_version="3.11")


# --- the scripted fake transport ----------------------------------------------------------------


@attrs.frozen
class Fail:
    """The transport raises ``error`` after ``took`` seconds."""

    error: TransportError
    took: float = 0.0


@attrs.frozen
class Answer:
    """A response head after ``took`` seconds, then its body (or a failure) after ``read``."""

    status: int
    headers: dict[str, str] = attrs.field(factory=dict)
    body: Union[bytes, TransportError] = b"{}"  # noqa: UP007 - attrs on 3.9
    took: float = 0.0
    read: float = 0.0


Step = Union[Fail, Answer]
OK = Answer(200, {"content-type": "application/json"}, b'{"ok":true}')
OK_STREAM = Answer(200, {"content-type": "text/event-stream; charset=utf-8"}, b"data: {}\n\n")


def is_event_stream(headers: dict[str, str]) -> bool:
    """The contract: a 2xx stream answer is text/event-stream (a missing type is accepted)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if "content-type" not in lowered:
        return True
    return lowered["content-type"].split(";")[0].strip().lower() == "text/event-stream"


def declared_length(headers: Any) -> int | None:
    """A Content-Length the flow may act on: a whole number of bytes (else unknown)."""
    raw = headers.get("content-length")
    try:
        value = int(raw.strip()) if raw is not None else None
    except ValueError:
        return None
    return value if value is not None and value >= 0 else None


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@attrs.define
class Run:
    """What happened while driving one flow."""

    actions: list[Any] = attrs.field(factory=list)
    outcomes: list[Any] = attrs.field(factory=list)  # what the driver answered to each action
    result: FlowResult | None = None
    error: BaseException | None = None
    start: float = 0.0
    end: float = 0.0
    last: Step | None = None

    @property
    def sends(self) -> list[Send]:
        return [a for a in self.actions if isinstance(a, Send)]

    @property
    def elapsed(self) -> float:
        return self.end - self.start


def drive(call: PreparedCall, steps: list[Step], randoms: list[float] | None = None) -> Run:
    clock = FakeClock()
    rolls = list(randoms or [0.5])
    counter = iter(range(10**6))

    def random() -> float:
        return rolls[next(counter) % len(rolls)]

    run = Run(start=clock.now)
    script = iter(steps)
    flow = request_flow(call, clock=clock, wall_clock=lambda: WALL0 + clock.now, random=random)
    budget: float | None = None
    attempt_start = clock.now
    current: Step | None = None
    try:
        action = next(flow)
        while True:
            run.actions.append(action)
            outcome: Any = None
            if isinstance(action, Send):
                current = next(script, OK_STREAM if call.stream else OK)
                run.last = current
                budget = action.request.timeout.total
                attempt_start = clock.now
                if budget is not None and current.took > budget:
                    clock.now += budget
                    outcome = ReadTimeout("attempt budget spent")
                else:
                    clock.now += current.took
                    if isinstance(current, Fail):
                        outcome = current.error
                    else:
                        outcome = ResponseHead(current.status, current.headers)
            elif isinstance(action, ReadBody):
                assert isinstance(current, Answer), "ReadBody without a response"
                left = None if budget is None else budget - (clock.now - attempt_start)
                if left is not None and current.read > left:
                    clock.now += left
                    outcome = ReadTimeout("attempt budget spent while reading")
                elif isinstance(current.body, TransportError):
                    clock.now += current.read
                    outcome = current.body
                else:
                    clock.now += current.read
                    buffer = BodyBuffer(action.max_bytes)
                    buffer.feed(current.body)  # the driver's own ResponseTooLargeError
                    outcome = buffer.getvalue()
            else:
                assert isinstance(action, Sleep)
                assert action.seconds >= 0
                clock.now += action.seconds
            run.outcomes.append(outcome)
            action = flow.send(outcome)
    except StopIteration as stop:
        run.result = stop.value
    except Exception as exc:
        run.error = exc
    finally:
        flow.close()
    run.end = clock.now
    return run


def make_call(
    operation: Operation[Any] | None = None,
    *,
    max_retries: int = 2,
    timeout: Timeout | None = None,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    call_options: CallOptions | None = None,
) -> PreparedCall:
    options = ClientOptions(
        api_key=KEY,
        max_retries=max_retries,
        timeout=timeout or Timeout(),
        max_response_bytes=max_response_bytes,
    )
    return prepare_call(
        options,
        base_headers(options, PLATFORM),
        operation or create_embeddings(inputs=["hello", "world"]),
        call_options or CallOptions(),
        idempotency_key=IDEM,
    )


# --- strategies -------------------------------------------------------------------------------

durations = st.one_of(st.just(0.0), st.floats(min_value=0, max_value=20))
content_lengths = st.one_of(
    st.integers(min_value=0, max_value=200).map(str),
    st.sampled_from(["\xb2", "1\xb9", "\u0663", "-1", " 5", "5, 5", "", "abc"]),
)
header_values = st.one_of(
    st.integers(min_value=0, max_value=90).map(str),
    st.sampled_from(["true", "false", "1500", "0", "nan", "soon"]),
    st.integers(min_value=-10, max_value=90).map(
        lambda k: formatdate(WALL0 + 1000 + k, usegmt=True)
    ),
    st.text(max_size=6),
)
heads_headers = st.fixed_dictionaries(
    {},
    optional={
        "content-type": st.sampled_from(
            [
                "application/json",
                "text/event-stream",
                " Text/Event-Stream ; charset=utf-8",
                "text/html",
            ]
        ),
        "retry-after": header_values,
        "retry-after-ms": header_values,
        "x-should-retry": header_values,
        "x-request-id": header_values,
        "content-length": content_lengths,
    },
)
failures = st.builds(
    lambda cls, msg: cls(msg),
    st.sampled_from([ConnectError, ConnectTimeout, ReadError, ReadTimeout]),
    st.sampled_from(["", "connection refused", "timed out", "reset by peer"]),
)
statuses = st.one_of(
    st.sampled_from([200, 201, 204, 400, 401, 404, 408, 409, 422, 429, 500, 502, 503]),
    st.integers(min_value=100, max_value=599),
)
steps = st.one_of(
    st.builds(Fail, failures, durations),
    st.builds(
        Answer,
        statuses,
        heads_headers,
        st.one_of(st.binary(max_size=80), failures),
        durations,
        durations,
    ),
)
operations = st.sampled_from(
    [
        create_embeddings(inputs="hi"),
        create_embeddings(inputs="hi", stream=True),
        list_models(),
        attrs.evolve(list_models(), stream=True),
    ]
)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[PreparedCall, list[Step], list[float]]:
    total = draw(st.none() | st.floats(min_value=0.01, max_value=40))
    call = make_call(
        draw(operations),
        max_retries=draw(st.integers(min_value=0, max_value=4)),
        timeout=Timeout(total=total),
        max_response_bytes=draw(st.sampled_from([16, 64, DEFAULT_MAX_RESPONSE_BYTES])),
    )
    randoms = draw(
        st.lists(st.floats(min_value=0, max_value=1, exclude_max=True), min_size=1, max_size=4)
    )
    return call, draw(st.lists(steps, max_size=6)), randoms


# --- properties -------------------------------------------------------------------------------


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenarios())
def test_any_sequence_of_outcomes(
    caplog: pytest.LogCaptureFixture,
    scenario: tuple[PreparedCall, list[Step], list[float]],
) -> None:
    """One property run checks every invariant of the flow (generating scenarios is costly)."""
    caplog.set_level(logging.DEBUG, logger="aligneai")
    caplog.clear()
    call, script, randoms = scenario
    run = drive(call, script, randoms)

    # the API key never shows: not in DEBUG logs, actions, results or errors
    assert all(r.name == "aligneai" for r in caplog.records)
    assert KEY not in caplog.text
    assert not any(KEY in r.getMessage() for r in caplog.records)
    assert KEY not in repr(run.actions) and KEY not in repr(run.result) and KEY not in repr(call)
    if run.error is not None:
        assert KEY not in str(run.error) and KEY not in repr(run.error)
        assert KEY not in repr(getattr(run.error, "request", None))

    # it ends in a FlowResult or an APIError, nothing else
    assert (run.result is None) != (run.error is None)
    if run.error is not None:
        assert isinstance(run.error, APIError), repr(run.error)
    if run.result is not None or isinstance(run.error, (APIStatusError, APIConnectionError)):
        assert caplog.records, "the flow logs its attempts at DEBUG"

    sends = run.sends
    assert 1 <= len(sends) <= call.max_retries + 1
    # the attempt counter, and the same idempotency key on every attempt (POST only)
    counts = [s.request.headers["X-AligneAI-Retry-Count"] for s in sends]
    assert counts == [str(i) for i in range(len(sends))]
    keys = {s.request.headers.get("Idempotency-Key") for s in sends}
    assert keys == ({IDEM} if call.method == "POST" else {None})
    # the call never outlives its total timeout, nor does any attempt's budget
    # (EPS absorbs float rounding of deadline - clock(), nothing more)
    if call.timeout.total is not None:
        assert run.elapsed <= call.timeout.total + EPS, (run.elapsed, call.timeout.total)
        for s in sends:
            assert s.request.timeout.total is not None
            assert s.request.timeout.total <= call.timeout.total + EPS
    # sleeps only happen between attempts
    kinds = [type(a).__name__ for a in run.actions]
    assert kinds[0] == "Send"
    assert kinds.count("Sleep") in (len(sends) - 1, len(sends))

    for i, action in enumerate(run.actions):
        answer = run.outcomes[i] if i < len(run.outcomes) else None
        if isinstance(action, ReadBody):
            # a body is read right after a head; for a stream, never after a 2xx event stream
            head = run.outcomes[i - 1]
            assert isinstance(head, ResponseHead)
            assert not (call.stream and head.is_success and is_event_stream(dict(head.headers)))
        if not isinstance(answer, ResponseHead):
            continue
        if call.stream and answer.is_success:
            if is_event_stream(dict(answer.headers)):
                assert i == len(run.actions) - 1, "a 2xx stream ends the flow before ReadBody"
                assert run.result is not None
            else:
                # a 2xx stream of another type breaks the contract: read (bounded), then raise
                assert [type(a) for a in run.actions[i:]] == [Send, ReadBody]
                assert isinstance(run.error, (APIResponseValidationError, ResponseTooLargeError))
        else:
            # a declared Content-Length over the limit ends the call at once
            declared = declared_length(answer.headers)
            if declared is not None and declared > call.max_response_bytes:
                assert i == len(run.actions) - 1
                assert type(run.error) is ResponseTooLargeError

    if run.result is not None:
        res = run.result
        head_index = len(run.actions) - (1 if call.stream else 2)
        assert res.head.is_success and res.head == run.outcomes[head_index]
        assert res.request is sends[-1].request
        assert res.retries_taken == len(sends) - 1
        assert res.elapsed == pytest.approx(run.elapsed)
        assert isinstance(run.last, Answer)
        if call.stream:
            assert res.body is None and kinds[-1] == "Send"
            assert res.request.headers["Accept"] == "text/event-stream"
        else:
            assert res.body == run.last.body and kinds[-1] == "ReadBody"
    elif isinstance(run.error, APIStatusError):
        assert isinstance(run.last, Answer)
        assert run.error.status_code == run.last.status
        assert not 200 <= run.error.status_code < 300
        assert run.error.request is sends[-1].request
    elif isinstance(run.error, ResponseTooLargeError):
        assert isinstance(run.last, Answer)
        declared = declared_length(run.last.headers)
        too_long = isinstance(run.last.body, bytes) and len(run.last.body) > call.max_response_bytes
        assert too_long or (declared is not None and declared > call.max_response_bytes)


# --- examples ---------------------------------------------------------------------------------


def test_retries_then_succeeds() -> None:
    call = make_call(max_retries=2)
    run = drive(call, [Answer(503), Fail(ConnectError("refused")), OK], randoms=[0.0])
    assert run.error is None and run.result is not None
    assert [type(a) for a in run.actions] == [Send, ReadBody, Sleep, Send, Sleep, Send, ReadBody]
    assert [a.seconds for a in run.actions if isinstance(a, Sleep)] == [0.5, 1.0]
    assert run.result.retries_taken == 2 and run.result.body == OK.body
    assert [s.request.headers["X-AligneAI-Retry-Count"] for s in run.sends] == ["0", "1", "2"]
    assert {s.request.headers["Idempotency-Key"] for s in run.sends} == {IDEM}
    assert run.sends[0].request.body == run.sends[2].request.body


@pytest.mark.parametrize("spelling", ["Idempotency-Key", "idempotency-key", "IDEMPOTENCY-KEY"])
def test_callers_idempotency_key_is_used_on_every_attempt(spelling: str) -> None:
    co = CallOptions.from_arguments(extra_headers={spelling: "mine-1"})
    run = drive(make_call(call_options=co), [Answer(500), Fail(ReadError("cut")), OK])
    assert len(run.sends) == 3
    for send in run.sends:
        keys = [(k, v) for k, v in send.request.headers.items() if k.lower() == "idempotency-key"]
        assert keys == [("idempotency-key", "mine-1")]


def test_get_has_no_idempotency_key() -> None:
    run = drive(make_call(list_models()), [Answer(500), OK])
    assert len(run.sends) == 2
    for send in run.sends:
        assert "Idempotency-Key" not in send.request.headers
        assert send.request.method == "GET" and send.request.body is None


def test_gives_up_after_max_retries_with_the_last_error() -> None:
    run = drive(make_call(max_retries=1), [Answer(500), Answer(502, body=b"<html>")])
    assert len(run.sends) == 2
    assert type(run.error) is InternalServerError and run.error.status_code == 502


def test_non_retryable_status_is_raised_at_once() -> None:
    body = b'{"error":{"message":"no such model","code":"model_not_found"}}'
    run = drive(make_call(), [Answer(404, {"x-request-id": "r1"}, body)])
    assert type(run.error) is NotFoundError and len(run.sends) == 1
    assert run.error.code == "model_not_found" and run.error.request_id == "r1"


def test_transport_failures_map_to_connection_errors() -> None:
    run = drive(make_call(max_retries=0), [Fail(ConnectError("refused"))])
    assert type(run.error) is APIConnectionError and "refused" in str(run.error)
    run = drive(make_call(max_retries=1), [Fail(ReadError("reset")), Fail(ReadTimeout("slow"))])
    assert type(run.error) is APITimeoutError and len(run.sends) == 2
    assert isinstance(run.error.__cause__, ReadTimeout)


def test_body_read_failure_is_retried() -> None:
    run = drive(make_call(), [Answer(200, body=ReadError("cut")), OK])
    assert run.result is not None and run.result.retries_taken == 1


def test_long_retry_after_is_not_waited_for() -> None:
    run = drive(make_call(), [Answer(429, {"retry-after": "61"})])
    assert run.error is not None and run.error.status_code == 429  # type: ignore[attr-defined]
    assert not any(isinstance(a, Sleep) for a in run.actions)
    run = drive(make_call(), [Answer(429, {"retry-after": "60"}), OK])
    assert [a.seconds for a in run.actions if isinstance(a, Sleep)] == [60.0]


@pytest.mark.parametrize(
    "headers",
    [{"Content-Type": "text/event-stream"}, {"content-type": "TEXT/EVENT-STREAM; x=1"}, {}],
)
def test_stream_success_returns_an_open_response(headers: dict[str, str]) -> None:
    run = drive(make_call(create_embeddings(inputs="hi", stream=True)), [Answer(200, headers)])
    assert [type(a) for a in run.actions] == [Send]
    assert run.result is not None and run.result.body is None
    assert run.result.request.headers["Accept"] == "text/event-stream"


def test_stream_answered_with_json_is_a_validation_error() -> None:
    call = make_call(create_embeddings(inputs="hi", stream=True))
    run = drive(call, [Answer(200, {"content-type": "application/json", "x-request-id": "r"})])
    assert [type(a) for a in run.actions] == [Send, ReadBody]
    assert type(run.error) is APIResponseValidationError
    assert run.error.request_id == "r" and run.error.status_code == 200


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("status", [200, 500])
def test_declared_content_length_over_the_limit(stream: bool, status: int) -> None:
    call = make_call(create_embeddings(inputs="hi", stream=stream), max_response_bytes=100)
    run = drive(call, [Answer(status, {"Content-Length": "101"}, b"x")])
    if stream and status == 200:
        assert run.result is not None  # the stream decoder bounds a streamed body
        return
    assert type(run.error) is ResponseTooLargeError
    assert [type(a) for a in run.actions] == [Send]
    assert run.error.request is run.sends[0].request
    ok = drive(make_call(max_response_bytes=100), [Answer(200, {"content-length": "100"}, b"y")])
    assert ok.result is not None


@pytest.mark.parametrize("value", ["\xb2", "1\xb9", "\u00b3\u00b2"])
def test_odd_content_length_digits_do_not_crash(value: str) -> None:
    # str.isdigit() accepts superscripts such as "²" (a latin-1 byte a server can send) but
    # int() rejects them: the flow must not let that ValueError escape.
    run = drive(make_call(), [Answer(200, {"content-length": value}, b"{}")])
    assert run.error is None or isinstance(run.error, APIError), repr(run.error)


def test_total_timeout_is_never_overrun_even_by_the_minimum_attempt_budget() -> None:
    # 0.5 ms are left after the first attempt and a zero retry-after: Timeout.within() floors
    # the next attempt's budget at 1 ms, so the call ends 0.5 ms after its deadline.
    call = make_call(timeout=Timeout(total=1.0))
    script: list[Step] = [
        Answer(503, {"retry-after-ms": "0"}, b"", took=0.9995),
        Fail(ConnectError("slow"), took=5.0),
    ]
    run = drive(call, script)
    assert isinstance(run.error, APIError)
    assert run.elapsed <= 1.0 + EPS, run.elapsed


def test_total_timeout_stops_retries() -> None:
    call = make_call(timeout=Timeout(total=2.0), max_retries=10)
    run = drive(call, [Fail(ConnectError("down"), took=0.4)] * 10, randoms=[0.0])
    assert isinstance(run.error, APIConnectionError)
    assert run.elapsed <= 2.0
    sleeps = [a.seconds for a in run.actions if isinstance(a, Sleep)]
    assert sleeps == [0.5] and len(run.sends) == 2  # 0.4 + 0.5 + 0.4, then 1.0 would pass 2 s


def test_prepare_call_combines_options() -> None:
    options = ClientOptions(api_key=KEY, base_url="https://eu.aligne.ai/v1/", max_retries=4)
    op = create_embeddings(inputs=["a"], dimensions=8)
    co = CallOptions.from_arguments(
        timeout=3, max_retries=0, extra_headers={"X-Trace": "t1"}, extra_query={"debug": True}
    )
    call = prepare_call(options, base_headers(options, PLATFORM), op, co, idempotency_key=IDEM)
    assert call.url == "https://eu.aligne.ai/v1/embeddings?debug=true"
    assert call.method == "POST" and call.idempotency_key == IDEM
    assert json.loads(call.body or b"") == op.body
    assert call.headers["X-Trace"] == "t1" and call.headers["Authorization"] == f"Bearer {KEY}"
    assert call.timeout == Timeout.coerce(3) and call.max_retries == 0
    assert KEY not in repr(call) and "***" in repr(call)
    default = prepare_call(
        options, base_headers(options, PLATFORM), list_models(), CallOptions(), idempotency_key=IDEM
    )
    assert default.max_retries == 4 and default.timeout == options.timeout
    assert default.idempotency_key is None and default.body is None
    assert default.url == "https://eu.aligne.ai/v1/models"


def test_flow_rejects_wrong_outcomes() -> None:
    flow = request_flow(make_call(), clock=lambda: 0.0, wall_clock=lambda: WALL0, random=lambda: 0)
    next(flow)
    with pytest.raises(TypeError):
        flow.send("not a head")  # type: ignore[arg-type]
