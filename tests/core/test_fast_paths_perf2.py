"""The per-call fast constructors (issue #16) give what the normal constructors give.

Each builder of `slot_builder` sets the slots of a frozen attrs value directly; these
properties compare its instances with the attrs ``__init__``'s: equal, the same repr, the same
pickled form, still frozen. `Headers.from_items` is compared with the `Headers` constructor.
"""

from __future__ import annotations

import pickle
from typing import Any

import attrs
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from aligneai.core._builders import slot_builder
from aligneai.core.flow import FlowResult, PreparedCall, Send
from aligneai.core.headers import Headers
from aligneai.core.operations import Operation, create_embeddings
from aligneai.core.options import Timeout
from aligneai.core.request import Request, build_request
from aligneai.core.response import ResponseHead, new_response_head

names = st.sampled_from(
    ["Content-Type", "content-type", "X-Request-Id", "Authorization", "Set-Cookie", "Accept"]
) | st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=8)
values = st.text(max_size=12)
pairs = st.lists(st.tuples(names, values), max_size=8)
lower_headers = st.dictionaries(names.map(str.lower), values, max_size=6).map(Headers)
timeouts = st.builds(
    Timeout,
    connect=st.floats(0.1, 10),
    read=st.none() | st.floats(0.1, 10),
    total=st.none() | st.floats(0.1, 10),
)
bodies = st.none() | st.binary(max_size=16)
urls = st.sampled_from(["http://127.0.0.1:1/v1/embeddings", "https://api.example/v1/models"])


def same(fast: Any, normal: Any) -> None:
    assert type(fast) is type(normal)
    assert fast == normal
    assert repr(fast) == repr(normal)
    assert pickle.loads(pickle.dumps(fast)) == pickle.loads(pickle.dumps(normal))
    assert repr(pickle.loads(pickle.dumps(fast))) == repr(pickle.loads(pickle.dumps(normal)))
    field = attrs.fields(type(fast))[0].name
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(fast, field, None)


@given(st.sampled_from(["GET", "POST"]), urls, lower_headers, bodies, timeouts, st.booleans())
def test_request_builder(
    method: str, url: str, headers: Headers, body: bytes | None, timeout: Timeout, stream: bool
) -> None:
    normal = Request(
        method=method, url=url, headers=dict(headers), body=body, timeout=timeout, stream=stream
    )
    same(slot_builder(Request)(method, url, headers, body, timeout, stream), normal)


@given(
    lower_headers,
    bodies,
    timeouts,
    st.integers(0, 5),
    st.none() | st.text(min_size=1, max_size=8),
    st.booleans(),
)
def test_build_request_matches_the_attrs_constructor(
    headers: Headers,
    body: bytes | None,
    timeout: Timeout,
    retry: int,
    key: str | None,
    stream: bool,
) -> None:
    built = build_request(
        method="POST",
        url="http://h/v1/x",
        headers=headers,
        body=body,
        timeout=timeout,
        retry_count=retry,
        idempotency_key=key,
        stream=stream,
    )
    expected = dict(headers)
    if body is None:
        expected.pop("content-type", None)
    expected["x-aligneai-retry-count"] = str(retry)
    if key is not None:
        expected["idempotency-key"] = key
    if stream:
        expected["accept"] = "text/event-stream"
    same(built, Request("POST", "http://h/v1/x", expected, body, timeout, stream))


@given(urls, lower_headers, bodies, st.booleans(), timeouts, st.integers(0, 9), st.booleans())
def test_prepared_call_send_flow_result_builders(
    url: str,
    headers: Headers,
    body: bytes | None,
    stream: bool,
    timeout: Timeout,
    count: int,
    with_key: bool,
) -> None:
    key = "aligneai-0123" if with_key else None
    values = ("POST", url, headers, body, stream, timeout, count, 1 << 20, key)
    same(slot_builder(PreparedCall)(*values), PreparedCall(*values[:2], dict(headers), *values[3:]))
    request = Request("POST", url, headers, body, timeout, stream)
    same(slot_builder(Send)(request), Send(request))
    head = ResponseHead(200, headers)
    result = (head, body, request, count, 0.25)
    same(slot_builder(FlowResult)(*result), FlowResult(*result))


@given(st.integers(100, 599), pairs)
def test_from_items_and_response_head_builder(status: int, fields: list[tuple[str, str]]) -> None:
    fast = Headers.from_items(fields)
    same_headers = Headers(fields)
    assert type(fast) is Headers
    assert fast == same_headers
    assert list(fast.items()) == list(same_headers.items())  # order and joined values too
    assert repr(fast) == repr(same_headers)
    same(new_response_head(status, fast), ResponseHead(status, fields))


def test_from_items_joins_a_repeated_field_in_arrival_order() -> None:
    fields = [("Set-Cookie", "a=1"), ("Content-Length", "3"), ("set-cookie", "b=2")]
    assert dict(Headers.from_items(fields)) == {"set-cookie": "a=1, b=2", "content-length": "3"}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ([("X-A", 1)], "the value of header 'x-a' must be a str, got int"),
        ([("X-A", None)], "the value of header 'x-a' must be a str, got NoneType"),
        ([(b"X-A", "v")], "a header name must be a str, got bytes"),
        ([(3, "v")], "a header name must be a str, got int"),
    ],
)
def test_from_items_refuses_what_the_constructor_refuses(
    fields: list[tuple[Any, Any]], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        Headers.from_items(fields)


@given(
    st.one_of(
        st.text(min_size=1, max_size=5),
        st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=4),
    ),
    st.none() | st.integers(1, 64),
    st.booleans(),
)
def test_create_embeddings_operation_matches_the_attrs_constructor(
    inputs: str | list[str], dimensions: int | None, stream: bool
) -> None:
    assume(all(ch < "\ud800" or ch > "\udfff" for ch in "".join(inputs)))
    built = create_embeddings(inputs=inputs, dimensions=dimensions, stream=stream)
    body: dict[str, Any] = {"inputs": inputs, "encoding_format": "base64"}
    if dimensions is not None:
        body["dimensions"] = dimensions
    if stream:
        body["stream"] = True
    assert built.body == body
    normal = Operation(
        method="POST",
        path="/embeddings",
        response_type=built.response_type,
        body=built.body,
        stream=stream,
        parser=built.parser,
    )
    assert type(built) is Operation
    assert built == normal
    assert repr(built) == repr(normal)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        built.method = "GET"  # type: ignore[misc]
