"""The request flow: the retry loop of one call, written once as a generator.

Like httpx's ``Auth.auth_flow``, the flow yields actions and receives their outcomes; a driver
performs them. The sync driver (urllib3, ``time.sleep``) and the async one (aiohttp,
``asyncio.sleep``) differ only in how they perform an action, so retries, backoff, deadlines,
logging and error mapping exist here alone. Tests drive the generator by hand: no sockets, no
sleeping, no clock but the one they pass in.

Actions and what the driver must send back:

- `Send` (a request) -> the `ResponseHead`, or the `TransportError` the transport raised.
- `ReadBody` -> the body bytes (collected with `BodyBuffer`, which enforces ``max_bytes``), or
  a `TransportError`. The driver then releases the response.
- `Sleep` -> None, after sleeping that many seconds.

The flow returns a `FlowResult`. For a streaming call with a 2xx answer it returns before any
`ReadBody`, and the driver hands the still-open response to the caller.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Generator, Mapping
from typing import Any, Callable, Optional, Union

import attrs

from ._builders import slot_builder
from ._json import dumps
from .errors import APIResponseValidationError, APITimeoutError, ResponseTooLargeError
from .failures import TransportError, to_api_error
from .headers import Headers, redact
from .operations import CallOptions, Operation
from .options import ClientOptions, Timeout
from .request import Request, build_request, join_url
from .response import ResponseHead, decode_error_body, make_status_error
from .retry import GiveUp, RetryPolicy, decide_retry
from .sentinels import NOT_GIVEN, NotGiven
from .wire import EVENT_STREAM_CONTENT_TYPE, IDEMPOTENCY_KEY, RETRY_COUNT

__all__ = [
    "Action",
    "Flow",
    "FlowResult",
    "Outcome",
    "PreparedCall",
    "ReadBody",
    "Send",
    "Sleep",
    "prepare_call",
    "request_flow",
]

logger = logging.getLogger("aligneai")


@attrs.frozen(weakref_slot=False)  # see slot_builder()
class Send:
    """Send ``request`` and answer with its `ResponseHead` (or the `TransportError`)."""

    request: Request


@attrs.frozen
class ReadBody:
    """Read the whole body of the last response (at most ``max_bytes``) and release it."""

    max_bytes: int


@attrs.frozen
class Sleep:
    """Sleep ``seconds`` before the next attempt, then answer None."""

    seconds: float


Action = Union[Send, ReadBody, Sleep]
Outcome = Union[ResponseHead, bytes, TransportError, None]


_has_field = dict.__contains__


def _as_headers(value: Mapping[str, str]) -> Headers:
    return value if type(value) is Headers else Headers(value)


@attrs.frozen(repr=False, weakref_slot=False)  # see slot_builder()
class PreparedCall:
    """Everything about one call that stays the same across its attempts."""

    method: str
    url: str
    headers: Headers = attrs.field(converter=_as_headers)
    body: Optional[bytes]  # noqa: UP045 - attrs evaluates this on 3.9
    stream: bool
    timeout: Timeout
    max_retries: int
    max_response_bytes: int
    idempotency_key: Optional[str]  # noqa: UP045

    def __repr__(self) -> str:
        return f"<PreparedCall {self.method} {self.url} headers={redact(self.headers)!r}>"


# Builders for values this module has built and checked itself (see `slot_builder`).
_new_send: Callable[[Request], Send] = slot_builder(Send)
_new_prepared_call: Callable[..., PreparedCall] = slot_builder(PreparedCall)


def prepare_call(
    options: ClientOptions,
    headers: Mapping[str, str],
    operation: Operation[Any],
    call_options: CallOptions,
    *,
    idempotency_key: str | None,
) -> PreparedCall:
    """Combine the client's settings, one operation and per-call overrides.

    ``headers`` are the client's base headers (see `base_headers`); ``idempotency_key`` is
    used on POST only, and must be fresh for each call (the facade makes a UUID).

    Each override in ``call_options`` that is `NOT_GIVEN` keeps the client's value. A timeout
    is applied over the client's with `Timeout.merge` (a number keeps the ``total`` deadline).
    ``extra_headers`` replace the client's fields of the same name (any case); a None value
    removes the field, and ``{"Idempotency-Key": None}`` sends no idempotency key.
    """
    call_headers = headers if type(headers) is Headers else Headers(headers)
    # A Headers holds lower-case names: dict's own lookup is exact, and skips a method call.
    if call_options.extra_headers or _has_field(call_headers, IDEMPOTENCY_KEY):
        call_headers = call_headers.merged(call_options.extra_headers)
        # A caller's own Idempotency-Key (any spelling) replaces the generated one on every
        # retry (build_request() adds it per attempt); removing it with None sends none.
        callers_key = call_headers.get(IDEMPOTENCY_KEY)
        if callers_key is not None:
            idempotency_key = callers_key
            call_headers = call_headers.merged({IDEMPOTENCY_KEY: None})
        elif any(name.lower() == IDEMPOTENCY_KEY for name in call_options.extra_headers):
            idempotency_key = None
    if operation.body is None and _has_field(call_headers, "content-type"):
        # Once per call rather than in build_request() on every attempt.
        call_headers = call_headers.merged({"content-type": None})
    # else: shared as they are; build_request() copies them for each attempt.
    if operation.query or call_options.extra_query:
        query = dict(operation.query or {})
        query.update(call_options.extra_query)
        url = join_url(options.base_url, operation.path, query)
    else:
        url = _join_path(options.base_url, operation.path)
    # call_headers is a Headers by now: PreparedCall's converter would return it as it is.
    return _new_prepared_call(
        operation.method,
        url,
        call_headers,
        None if operation.body is None else dumps(operation.body),  # = encode_json_body()
        operation.stream,
        (
            options.timeout
            if call_options.timeout is NOT_GIVEN
            else options.timeout.merge(call_options.timeout)
        ),
        (
            options.max_retries
            if isinstance(call_options.max_retries, NotGiven)
            else call_options.max_retries
        ),
        options.max_response_bytes,
        idempotency_key if operation.method == "POST" else None,
    )


@attrs.frozen(weakref_slot=False)  # see slot_builder()
class FlowResult:
    """The successful end of a flow: the final response and how it was reached."""

    head: ResponseHead
    body: Optional[bytes]  # noqa: UP045 - None for a stream, whose body the caller reads
    request: Request
    retries_taken: int
    elapsed: float


#: One call as a generator: it yields `Action`s, receives `Outcome`s and returns a `FlowResult`.
#: Any event loop can drive it (`aligneai.transports.sync_driver` and `async_driver` do).
Flow = Generator[Action, Outcome, FlowResult]

_new_flow_result: Callable[[ResponseHead, bytes | None, Request, int, float], FlowResult] = (
    slot_builder(FlowResult)
)


@functools.lru_cache(maxsize=256)
def _join_path(base_url: str, path: str) -> str:
    # A client calls a handful of (base URL, path) pairs over and over.
    return join_url(base_url, path)


@functools.lru_cache(maxsize=16)
def _read_body(max_bytes: int) -> ReadBody:
    # Frozen: one value per limit serves every call.
    return ReadBody(max_bytes)


@functools.lru_cache(maxsize=16)
def _default_policy(max_retries: int) -> RetryPolicy:
    return RetryPolicy(max_retries=max_retries)


_dict_get = dict.get


def _content_length(head: ResponseHead) -> int | None:
    # A ResponseHead's Headers holds lower-case names: dict's own lookup is exact.
    raw = _dict_get(head.headers, "content-length")
    if raw is None:
        return None
    try:
        length = int(raw.strip())
    except ValueError:  # garbage (even "²", which str.isdigit() accepts) means "unknown"
        return None
    return length if length >= 0 else None


def _is_event_stream(head: ResponseHead) -> bool:
    content_type = head.headers.get("content-type")
    # No Content-Type at all: give the body the benefit of the doubt and decode it as SSE.
    return content_type is None or (
        content_type.split(";", 1)[0].strip().lower() == EVENT_STREAM_CONTENT_TYPE
    )


def request_flow(
    call: PreparedCall,
    *,
    clock: Callable[[], float],
    wall_clock: Callable[[], float],
    random: Callable[[], float],
    policy: RetryPolicy | None = None,
) -> Generator[Action, Outcome, FlowResult]:
    """Run one call: attempts, retries and their pacing, and the final result or error.

    ``clock`` is monotonic seconds (for deadlines and elapsed times), ``wall_clock`` Unix
    seconds (for HTTP-date ``retry-after``), ``random`` returns floats in [0, 1) (jitter).
    """
    policy = (
        _default_policy(call.max_retries)
        if policy is None
        else attrs.evolve(policy, max_retries=call.max_retries)
    )
    start = clock()
    deadline = None if call.timeout.total is None else start + call.timeout.total
    retries_taken = 0
    while True:
        time_left = None if deadline is None else deadline - clock()
        if time_left is not None and time_left < 1e-3:
            raise APITimeoutError(
                f"Request timed out: the total timeout of {call.timeout.total:g} s expired"
            )
        request = build_request(
            method=call.method,
            url=call.url,
            headers=call.headers,
            body=call.body,
            timeout=call.timeout.within(time_left),
            retry_count=retries_taken,
            idempotency_key=call.idempotency_key,
            stream=call.stream,
        )
        attempt_start = clock()
        outcome: ResponseHead | TransportError
        body = b""
        sent = yield _new_send(request)
        if isinstance(sent, ResponseHead):
            head = sent
            success = 200 <= head.status_code < 300  # head.is_success, without the call
            if success and call.stream:
                if logger.isEnabledFor(logging.DEBUG):
                    _log_attempt(request, head.status_code, clock() - attempt_start)
                if _is_event_stream(head):
                    return _new_flow_result(head, None, request, retries_taken, clock() - start)
                # A 2xx that is not an event stream breaks the contract: say so from create()
                # rather than let the stream decoder report a confusing early end.
                read = yield _read_body(call.max_response_bytes)
                raise APIResponseValidationError(
                    "a streaming call was answered with Content-Type "
                    f"{head.headers.get('content-type')!r}, not text/event-stream",
                    status_code=head.status_code,
                    request_id=head.request_id,
                    body=decode_error_body(read) if isinstance(read, bytes) else None,
                    request=request,
                )
            declared = _content_length(head)
            if declared is not None and declared > call.max_response_bytes:
                raise ResponseTooLargeError(
                    f"the response declares {declared} bytes, more than max_response_bytes "
                    f"({call.max_response_bytes} bytes)",
                    request=request,
                )
            read = yield _read_body(call.max_response_bytes)
            if isinstance(read, bytes):
                body = read
                outcome = head
                if logger.isEnabledFor(logging.DEBUG):  # no clock read when nobody logs
                    _log_attempt(request, head.status_code, clock() - attempt_start)
                if success:
                    return _new_flow_result(head, body, request, retries_taken, clock() - start)
            elif isinstance(read, TransportError):
                outcome = read
                _log_attempt(request, f"failed reading the body: {read!r}", 0.0)
            else:
                raise TypeError(f"ReadBody expects bytes or a TransportError, got {read!r}")
        elif isinstance(sent, TransportError):
            outcome = sent
            _log_attempt(request, f"failed: {sent!r}", clock() - attempt_start)
        else:
            raise TypeError(f"Send expects a ResponseHead or a TransportError, got {sent!r}")

        decision = decide_retry(
            policy,
            retries_taken=retries_taken,
            outcome=outcome,
            now=wall_clock(),
            random=random(),
            time_left=None if deadline is None else deadline - clock(),
        )
        if isinstance(decision, GiveUp):
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("Not retrying %s %s: %s", call.method, call.url, decision.reason)
            if isinstance(outcome, TransportError):
                raise to_api_error(outcome, request) from outcome
            raise make_status_error(outcome, body, request)
        logger.info(
            "Retrying %s %s (retry %d of %d): %s",
            call.method,
            call.url,
            retries_taken + 1,
            call.max_retries,
            decision.reason,
        )
        yield Sleep(decision.delay)
        retries_taken += 1


def _log_attempt(request: Request, status: int | str, elapsed: float) -> None:
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "HTTP %s %s -> %s (%.3f s, retry count %s)",
            request.method,
            request.url,
            status,
            elapsed,
            request.headers.get(RETRY_COUNT),
        )
