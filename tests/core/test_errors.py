"""Tests of aligneai.core.errors (and core.failures): the status table, fields, pickling, reprs."""

from __future__ import annotations

import copy
import json
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aligneai.core import errors
from aligneai.core.errors import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    InvalidArgumentValueError,
    MissingAPIKeyError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseTooLargeError,
    SSEDecodeError,
    UnprocessableEntityError,
    status_error_class,
)
from aligneai.core.failures import (
    ConnectError,
    ConnectTimeout,
    ReadError,
    ReadTimeout,
    TransportError,
    to_api_error,
)
from aligneai.core.request import Request
from aligneai.core.response import ResponseHead, make_status_error

KEY = "sk-SECRET-123"
REQUEST = Request(
    "POST",
    "https://api.aligne.ai/v1/embeddings",
    {"Authorization": f"Bearer {KEY}", "X-AligneAI-Retry-Count": "0"},
    body=b'{"inputs":"hi"}',
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
    (504, InternalServerError),
    (599, InternalServerError),
    (300, APIStatusError),
    (304, APIStatusError),
    (402, APIStatusError),
    (405, APIStatusError),
    (408, APIStatusError),
    (409, APIStatusError),
    (418, APIStatusError),
    (499, APIStatusError),
]


def contract_body(message: str, type_: str, code: str | None, param: str | None) -> bytes:
    return json.dumps(
        {"error": {"message": message, "type": type_, "code": code, "param": param}}
    ).encode()


@pytest.mark.parametrize(("status", "cls"), STATUS_TABLE)
def test_status_table_with_contract_body(status: int, cls: type[APIStatusError]) -> None:
    head = ResponseHead(status, {"X-Request-ID": "req_123", "Content-Type": "application/json"})
    body = contract_body("Bad things", "invalid_request_error", "too_many_inputs", "inputs")
    err = make_status_error(head, body, REQUEST)
    assert type(err) is cls
    assert status_error_class(status) is cls
    assert isinstance(err, APIStatusError) and isinstance(err, APIError)
    assert err.status_code == status
    assert err.request_id == "req_123"
    assert err.message == "Bad things"
    assert (err.type, err.code, err.param) == ("invalid_request_error", "too_many_inputs", "inputs")
    assert err.body == json.loads(body)
    assert err.headers["content-type"] == "application/json"
    assert err.response is head and err.request is REQUEST
    assert str(err) == f"Error code: {status} (request id req_123) - Bad things"


@pytest.mark.parametrize(("status", "cls"), STATUS_TABLE)
def test_status_table_with_html_body(status: int, cls: type[APIStatusError]) -> None:
    html = b"<html>\n<head><title>502 Bad Gateway</title></head>\n<body>nginx</body></html>"
    err = make_status_error(ResponseHead(status, {}), html)
    assert type(err) is cls
    assert err.request_id is None
    assert (err.type, err.code, err.param) == (None, None, None)
    assert err.body == html.decode()
    assert err.message.startswith(f"HTTP {status} with a non-JSON body: <html>")
    assert "\n" not in err.message
    assert str(err) == f"Error code: {status} - {err.message}"


@pytest.mark.parametrize("body", [b"", b"   ", b"\r\n\t"])
@pytest.mark.parametrize(("status", "cls"), STATUS_TABLE)
def test_status_table_with_empty_body(status: int, cls: type[APIStatusError], body: bytes) -> None:
    err = make_status_error(ResponseHead(status, {"x-request-id": "r1"}), body)
    assert type(err) is cls
    assert err.body is None
    assert err.message == f"HTTP {status} with an empty body"
    assert err.request_id == "r1"


@pytest.mark.parametrize(
    ("body", "message", "fields"),
    [
        (b'{"error": "quota exceeded"}', "quota exceeded", (None, None, None)),
        (b'{"message": "plain"}', "plain", (None, None, None)),
        (b'{"error": {"message": 42, "code": 7}}', "42", (None, "7", None)),
        (b'{"error": {"type": "server_error"}}', "HTTP 500", ("server_error", None, None)),
        (b'{"error": {"message": ""}}', "HTTP 500", (None, None, None)),
        (b"[1, 2]", "HTTP 500", (None, None, None)),
        (b"123", "HTTP 500", (None, None, None)),
    ],
)
def test_odd_error_bodies(body: bytes, message: str, fields: tuple[object, ...]) -> None:
    err = make_status_error(ResponseHead(500, {}), body)
    assert type(err) is InternalServerError
    assert err.message == message
    assert (err.type, err.code, err.param) == fields
    assert err.body == json.loads(body)


def test_long_non_json_body_is_summarised() -> None:
    err = make_status_error(ResponseHead(502, {}), b"x" * 10_000)
    assert len(err.message) < 300
    assert err.body == "x" * 10_000


def test_status_error_class_for_every_status() -> None:
    table = dict(STATUS_TABLE)
    for status in range(-10, 1100):
        expected = InternalServerError if status >= 500 else table.get(status, APIStatusError)
        assert status_error_class(status) is expected, status


# --- builtin compatibility --------------------------------------------------------------------


def test_hierarchy() -> None:
    assert issubclass(InvalidArgumentTypeError, TypeError)
    assert issubclass(InvalidArgumentValueError, ValueError)
    assert not issubclass(InvalidArgumentTypeError, ValueError)
    assert issubclass(APITimeoutError, APIConnectionError)
    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type):
            assert issubclass(obj, APIError), name


def test_defaults_and_argument() -> None:
    assert str(APIConnectionError()) == "Connection error."
    assert str(APITimeoutError()) == "Request timed out."
    err = InvalidArgumentValueError("inputs[3]", "must not be an empty string")
    assert err.argument == "inputs[3]"
    assert err.message == str(err) == "inputs[3]: must not be an empty string"


# --- pickling ---------------------------------------------------------------------------------


def _examples() -> list[APIError]:
    head = ResponseHead(429, {"x-request-id": "req_9", "retry-after": "3"})
    return [
        APIError("boom", request=REQUEST),
        MissingAPIKeyError("no key"),
        InvalidArgumentError("model", "bad"),
        InvalidArgumentTypeError("dimensions", "expected a positive int, got str"),
        InvalidArgumentValueError("inputs", "must contain at least one string"),
        APIConnectionError(request=REQUEST),
        APITimeoutError("Request timed out: read", request=REQUEST),
        ResponseTooLargeError("too big", request=REQUEST),
        SSEDecodeError("bad stream"),
        APIResponseValidationError(
            "bad body", status_code=200, request_id="r", body={"a": [1]}, request=REQUEST
        ),
        APIStatusError("teapot", status_code=418, headers={"x-request-id": "r2"}, body="t"),
        make_status_error(head, contract_body("slow down", "rate_limit", "rl", None), REQUEST),
        make_status_error(ResponseHead(503, {}), b"<html>down</html>"),
        make_status_error(ResponseHead(404, {}), b""),
    ]


STATE = ("message", "status_code", "request_id", "headers", "body", "type", "code", "param")


@pytest.mark.parametrize("err", _examples(), ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_errors_pickle_round_trip(err: APIError, protocol: int) -> None:
    clone = pickle.loads(pickle.dumps(err, protocol=protocol))
    assert type(clone) is type(err)
    assert str(clone) == str(err)
    assert clone.args == err.args
    for name in (*STATE, "argument"):
        assert getattr(clone, name, None) == getattr(err, name, None), name
    assert repr(clone.request) == repr(err.request)
    if isinstance(err, APIStatusError):
        assert clone.response == err.response
    deep = copy.deepcopy(err)
    assert type(deep) is type(err) and str(deep) == str(err)


@given(
    st.integers(min_value=300, max_value=999),
    st.dictionaries(st.sampled_from(["x-request-id", "retry-after", "X-Other"]), st.text()),
    st.one_of(
        st.binary(max_size=30),
        st.builds(contract_body, st.text(), st.text(), st.none() | st.text(), st.none()),
    ),
)
def test_any_status_error_pickles(status: int, headers: dict[str, str], body: bytes) -> None:
    err = make_status_error(ResponseHead(status, headers), body, REQUEST)
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is type(err) is status_error_class(status)
    assert str(clone) == str(err)
    for name in STATE:
        assert getattr(clone, name) == getattr(err, name), name
    assert clone.response == err.response
    assert KEY not in repr(clone.request)


@pytest.mark.parametrize("err", _examples(), ids=lambda e: type(e).__name__)
def test_errors_never_show_the_key(err: APIError) -> None:
    for text in (str(err), repr(err), repr(err.request), repr(vars(err))):
        assert KEY not in text
    assert KEY not in repr(pickle.loads(pickle.dumps(err)).request)


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"error": {"message": f"Incorrect API key provided: {KEY}"}}).encode(),
        json.dumps({"error": f"bad key {KEY}!"}).encode(),
        f"<html>key {KEY} rejected</html>".encode(),
    ],
)
def test_a_server_echoing_the_key_does_not_leak_it(body: bytes) -> None:
    err = make_status_error(ResponseHead(401, {}), body, REQUEST)
    assert type(err) is AuthenticationError
    assert KEY not in err.message and KEY not in str(err) and KEY not in repr(err)
    assert "***" in err.message
    assert KEY not in str(pickle.loads(pickle.dumps(err)))


# --- transport failures -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls", [ConnectError, ConnectTimeout, ReadError, ReadTimeout, TransportError]
)
@pytest.mark.parametrize("detail", ["", "connection refused", "read timed out (60 s)"])
def test_to_api_error(cls: type[TransportError], detail: str) -> None:
    err = to_api_error(cls(detail), REQUEST)
    timeout = cls in (ConnectTimeout, ReadTimeout)
    assert type(err) is (APITimeoutError if timeout else APIConnectionError)
    assert err.request is REQUEST
    assert (detail or cls.__name__) in err.message
    prefix = "Request timed out: " if timeout else "Connection error: "
    assert err.message == prefix + (detail or cls.__name__)
