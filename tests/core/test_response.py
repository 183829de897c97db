"""Tests of aligneai.core.response: response heads and non-2xx responses -> APIStatusError."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aligneai.core import _json, response
from aligneai.core.errors import APIStatusError, status_error_class
from aligneai.core.response import ResponseHead, decode_error_body, make_status_error

json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=10),
    ),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=6,
)
error_fields = st.fixed_dictionaries(
    {},
    optional={
        "message": json_values,
        "type": json_values,
        "code": json_values,
        "param": json_values,
    },
)
bodies = st.one_of(
    st.binary(max_size=64),
    json_values.map(lambda v: json.dumps(v).encode()),
    error_fields.map(lambda e: json.dumps({"error": e}).encode()),
    st.text(max_size=30).map(lambda t: json.dumps({"error": t}).encode()),
    st.text(max_size=30).map(lambda t: t.encode("utf-8")),
)
header_names = st.one_of(
    st.sampled_from(["x-request-id", "X-Request-ID", "content-type", "retry-after"]),
    st.text(min_size=1, max_size=10),
)
headers = st.one_of(
    st.dictionaries(header_names, st.text(max_size=10), max_size=4),
    st.lists(st.tuples(header_names, st.text(max_size=10)), max_size=4),
)
non_success = st.integers(min_value=0, max_value=999).filter(lambda s: not 200 <= s < 300)


@given(non_success, headers, bodies)
def test_make_status_error_for_any_response(status: int, raw_headers: object, body: bytes) -> None:
    head = ResponseHead(status, raw_headers)  # type: ignore[arg-type]
    err = make_status_error(head, body)
    assert type(err) is status_error_class(status)
    assert isinstance(err, APIStatusError)
    assert err.status_code == status
    assert err.request_id == head.headers.get("x-request-id")
    assert isinstance(err.message, str) and err.message
    assert all(isinstance(v, (str, type(None))) for v in (err.type, err.code, err.param))
    assert err.body == decode_error_body(body)
    assert err.response is head
    assert str(err).startswith(f"Error code: {status}")


def _int_as_orjson_reads_it(text: str) -> int | float:
    number = int(text)
    return number if -(2**63) <= number < 2**64 else float(number)


@given(st.one_of(json_values.map(lambda v: (True, v)), bodies.map(lambda b: (False, b))))
def test_decode_error_body(case: tuple[bool, object]) -> None:
    is_json, value = case
    body = json.dumps(value).encode() if is_json else value
    assert isinstance(body, bytes)
    decoded = decode_error_body(body)
    if is_json:
        assert decoded == value
    elif not body.strip():
        assert decoded is None
    elif decoded != body.decode("utf-8", errors="replace"):
        # Not the text fallback: then it is the JSON the body holds. orjson (when installed)
        # reads an integer beyond 64 bits as the nearest float, as JavaScript would.
        expected = json.loads(body.decode("utf-8"), parse_int=_int_as_orjson_reads_it)
        assert decoded == expected


@pytest.mark.parametrize("backend", ["default", "stdlib-json"])
@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"a":' * 50_000])
def test_deeply_nested_error_body_still_gives_a_status_error(
    monkeypatch: pytest.MonkeyPatch, backend: str, body: bytes
) -> None:
    # orjson is optional: without it, json.loads raises RecursionError (not ValueError) on deep
    # nesting, which must not escape make_status_error.
    if backend == "stdlib-json":
        monkeypatch.setattr(response, "loads", json.loads)
    err = make_status_error(ResponseHead(500, {}), body)
    assert type(err) is status_error_class(500)


def test_json_backend_agrees_with_stdlib() -> None:
    doc = {"a": [1, 2.5, None, True, "é"], "b": {"c": -(2**40)}}
    assert _json.loads(json.dumps(doc).encode()) == doc
    assert json.loads(_json.dumps(doc)) == doc


# --- ResponseHead -----------------------------------------------------------------------------


@given(st.lists(st.tuples(header_names, st.text(max_size=10)), max_size=6))
def test_response_head_lowercases_and_joins_headers(items: list[tuple[str, str]]) -> None:
    head = ResponseHead(200, items)
    expected: dict[str, list[str]] = {}
    for name, value in items:
        expected.setdefault(name.lower(), []).append(value)
    assert dict(head.headers) == {k: ", ".join(v) for k, v in expected.items()}
    assert ResponseHead(200, dict(items)).headers == ResponseHead(200, dict(items).items()).headers


def test_is_success() -> None:
    for status in range(1000):
        assert ResponseHead(status).is_success == (200 <= status <= 299)


def test_request_id() -> None:
    assert ResponseHead(200, {"X-Request-Id": "abc"}).request_id == "abc"
    assert ResponseHead(200, {}).request_id is None
