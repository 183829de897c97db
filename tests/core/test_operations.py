"""Tests of aligneai.core.operations: argument validation and the operations it builds."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from aligneai.core.errors import (
    APIError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    InvalidArgumentValueError,
)
from aligneai.core.models import CreateEmbeddingResponse, Model, ModelList
from aligneai.core.operations import (
    DEFAULT_ENCODING_FORMAT,
    MAX_INPUTS,
    CallOptions,
    create_embeddings,
    list_models,
    retrieve_model,
)
from aligneai.core.sentinels import NOT_GIVEN, NotGiven

VALID = {"inputs": ["hello"]}

# (overrides, builtin, argument named in the message)
TABLE: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"inputs": []}, ValueError, "inputs"),
    ({"inputs": ()}, ValueError, "inputs"),
    ({"inputs": None}, TypeError, "inputs"),
    ({"inputs": ""}, ValueError, "inputs"),
    ({"inputs": b"hello"}, TypeError, "inputs"),
    ({"inputs": bytearray(b"hello")}, TypeError, "inputs"),
    ({"inputs": [b"hello"]}, TypeError, "inputs[0]"),
    ({"inputs": ["a", 3]}, TypeError, "inputs[1]"),
    ({"inputs": ["a", "b", None]}, TypeError, "inputs[2]"),
    ({"inputs": ["a", ""]}, ValueError, "inputs[1]"),
    ({"inputs": ["a"] * (MAX_INPUTS + 1)}, ValueError, "inputs"),
    ({"inputs": {"a": 1}}, TypeError, "inputs"),
    ({"inputs": 42}, TypeError, "inputs"),
    ({"inputs": (s for s in ["a"])}, TypeError, "inputs"),
    ({"dimensions": 0}, ValueError, "dimensions"),
    ({"dimensions": -1}, ValueError, "dimensions"),
    ({"dimensions": True}, TypeError, "dimensions"),
    ({"dimensions": "3"}, TypeError, "dimensions"),
    ({"dimensions": 3.0}, TypeError, "dimensions"),
    ({"encoding_format": "int8"}, ValueError, "encoding_format"),
    ({"encoding_format": "FLOAT"}, ValueError, "encoding_format"),
    ({"encoding_format": ""}, ValueError, "encoding_format"),
    ({"encoding_format": 1}, TypeError, "encoding_format"),
    ({"model": ""}, ValueError, "model"),
    ({"model": 7}, TypeError, "model"),
    ({"stream": "yes"}, TypeError, "stream"),
    ({"stream": 1}, TypeError, "stream"),
    ({"extra_body": [("a", 1)]}, TypeError, "extra_body"),
    ({"extra_body": {1: "a"}}, TypeError, "extra_body"),
]


@pytest.mark.parametrize(
    ("overrides", "builtin", "argument"),
    TABLE,
    ids=[f"{a}-{i}" for i, (_, _, a) in enumerate(TABLE)],
)
def test_create_embeddings_validation(
    overrides: dict[str, Any], builtin: type[Exception], argument: str
) -> None:
    kwargs = {**VALID, **overrides}
    with pytest.raises(builtin) as info:
        create_embeddings(**kwargs)
    err = info.value
    assert isinstance(err, APIError) and isinstance(err, InvalidArgumentError)
    specific = InvalidArgumentTypeError if builtin is TypeError else InvalidArgumentValueError
    assert isinstance(err, specific)
    assert err.argument == argument
    assert str(err).startswith(f"{argument}: ")


inputs_text = st.text(min_size=1, max_size=12)
inputs = st.one_of(
    inputs_text,
    st.lists(inputs_text, min_size=1, max_size=8),
    st.lists(inputs_text, min_size=1, max_size=8).map(tuple),
)


@given(
    inputs=inputs,
    model=st.none() | st.text(min_size=1, max_size=10),
    encoding_format=st.sampled_from([None, "float", "base64"]),
    dimensions=st.none() | st.integers(min_value=1, max_value=10**6),
    stream=st.booleans(),
)
def test_valid_arguments_build_the_expected_body(
    inputs: Any,
    model: str | None,
    encoding_format: str | None,
    dimensions: int | None,
    stream: bool,
) -> None:
    op = create_embeddings(
        inputs=inputs,
        model=model,
        encoding_format=encoding_format,
        dimensions=dimensions,
        stream=stream,
    )
    expected: dict[str, Any] = {
        "inputs": inputs if isinstance(inputs, str) else list(inputs),
        "encoding_format": encoding_format or "base64",
    }
    if model is not None:
        expected["model"] = model
    if dimensions is not None:
        expected["dimensions"] = dimensions
    if stream:
        expected["stream"] = True
    assert op.body == expected
    assert (op.method, op.path, op.response_type) == (
        "POST",
        "/embeddings",
        CreateEmbeddingResponse,
    )
    assert op.stream is stream
    assert op.query is None


def test_default_encoding_format_is_base64() -> None:
    assert DEFAULT_ENCODING_FORMAT == "base64"
    assert create_embeddings(inputs="hi").body == {"inputs": "hi", "encoding_format": "base64"}


def test_input_count_limit_is_inclusive() -> None:
    op = create_embeddings(inputs=["x"] * MAX_INPUTS)
    assert op.body is not None and len(op.body["inputs"]) == MAX_INPUTS == 2048


def test_inputs_list_is_copied() -> None:
    given_inputs = ["a", "b"]
    op = create_embeddings(inputs=given_inputs)
    given_inputs.append("c")
    assert op.body is not None and op.body["inputs"] == ["a", "b"]


@given(
    st.dictionaries(
        st.text(max_size=6).filter(
            lambda k: k not in ("inputs", "model", "encoding_format", "dimensions", "stream")
        ),
        st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.text(max_size=4),
        max_size=3,
    )
)
def test_extra_body_is_merged(extra: dict[str, Any]) -> None:
    op = create_embeddings(inputs="hi", extra_body=extra)
    assert op.body == {"inputs": "hi", "encoding_format": "base64", **extra}


# --- models -----------------------------------------------------------------------------------


def test_list_models() -> None:
    op = list_models()
    assert (op.method, op.path, op.response_type, op.body) == ("GET", "/models", ModelList, None)


@given(st.text(min_size=1, max_size=20).filter(str.strip))
@example(".")
@example("..")
@example("a/../b")
@example("id?x#y")
def test_retrieve_model_path_is_one_segment(model_id: str) -> None:
    op = retrieve_model(model_id)
    assert (op.method, op.response_type, op.body) == ("GET", Model, None)
    assert op.path.startswith("/models/")
    segment = op.path[len("/models/") :]
    assert "/" not in segment and "?" not in segment and "#" not in segment
    assert unquote(segment) == model_id
    # "." and ".." would be removed as dot segments by urllib3 / the server (RFC 3986 5.2.4),
    # turning GET /models/.. into GET / ; they must be percent-encoded as %2E.
    assert segment not in (".", "..")


@pytest.mark.parametrize(
    ("value", "builtin"), [(None, TypeError), (3, TypeError), ("", ValueError), ("  ", ValueError)]
)
def test_retrieve_model_validation(value: object, builtin: type[Exception]) -> None:
    with pytest.raises(builtin) as info:
        retrieve_model(value)
    assert isinstance(info.value, APIError)
    assert info.value.argument == "model_id"  # type: ignore[attr-defined]


# --- CallOptions ------------------------------------------------------------------------------


def test_call_options_defaults() -> None:
    assert CallOptions.from_arguments() == CallOptions(NOT_GIVEN, NOT_GIVEN, {}, {})
    assert CallOptions().timeout is NOT_GIVEN and CallOptions().max_retries is NOT_GIVEN


@given(
    timeout=st.just(NOT_GIVEN) | st.none() | st.integers(min_value=1, max_value=1000),
    max_retries=st.just(NOT_GIVEN) | st.integers(min_value=0, max_value=10),
    extra_headers=st.none()
    | st.dictionaries(st.sampled_from(["X-A", "x-b", "Accept"]), st.sampled_from(["1", "a b"])),
    extra_query=st.none() | st.dictionaries(st.sampled_from(["a", "é", ""]), st.integers()),
)
def test_call_options_from_valid_arguments(
    timeout: float | NotGiven | None,
    max_retries: int | NotGiven,
    extra_headers: dict[str, str] | None,
    extra_query: dict[str, Any] | None,
) -> None:
    co = CallOptions.from_arguments(
        timeout=timeout,
        max_retries=max_retries,
        extra_headers=extra_headers,
        extra_query=extra_query,
    )
    # The kind is kept: a number applies over the client's timeout, not over the defaults.
    if timeout is None or timeout is NOT_GIVEN:
        assert co.timeout is timeout
    else:
        assert type(co.timeout) is float and co.timeout == timeout
    assert co.max_retries is max_retries or co.max_retries == max_retries
    assert co.extra_headers == (extra_headers or {})
    assert co.extra_query == (extra_query or {})


@pytest.mark.parametrize(
    ("kwargs", "builtin", "argument"),
    [
        ({"timeout": "5"}, TypeError, "timeout"),
        ({"timeout": -1}, ValueError, "timeout"),
        ({"max_retries": -1}, ValueError, "max_retries"),
        ({"max_retries": 1.5}, TypeError, "max_retries"),
        ({"max_retries": None}, TypeError, "max_retries"),
        ({"extra_headers": {"a": 1}}, TypeError, "extra_headers"),
        ({"extra_headers": {"a": "b\nc"}}, ValueError, "extra_headers"),
        ({"extra_headers": "a: b"}, TypeError, "extra_headers"),
        ({"extra_query": [("a", 1)]}, TypeError, "extra_query"),
        ({"extra_query": {2: "x"}}, TypeError, "extra_query"),
    ],
)
def test_call_options_validation(
    kwargs: dict[str, Any], builtin: type[Exception], argument: str
) -> None:
    with pytest.raises(builtin) as info:
        CallOptions.from_arguments(**kwargs)
    assert isinstance(info.value, APIError)
    assert info.value.argument == argument  # type: ignore[attr-defined]
