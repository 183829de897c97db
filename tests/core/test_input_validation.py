"""Property tests of the core's input checks (issue 12 item 4): what passes, what is refused.

The expected verdicts come from the specifications written down here (RFC 9110 tokens and
field values, JSON's value space, the 64-bit integer range both encoders share), not from the
validators under test.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aligneai.core.errors import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    InvalidArgumentValueError,
)
from aligneai.core.operations import CallOptions, create_embeddings, retrieve_model
from aligneai.core.options import (
    MAX_TIMEOUT,
    Timeout,
    validate_base_url,
    validate_count,
    validate_headers,
)
from aligneai.core.request import join_url

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
FIELD_CHARS = "".join(chr(c) for c in range(0x20, 0x7F)) + "\t"
NAMED = ("inputs", "model", "encoding_format", "dimensions", "stream")

texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
bad_leaves = st.sampled_from(
    [object(), math.nan, math.inf, -math.inf, b"x", {1, 2}, 2**64, -(2**63) - 1, "a\ud800"]
)


# --- extra_body ---------------------------------------------------------------------------------


@given(st.dictionaries(texts.filter(lambda k: k not in NAMED), json_values, max_size=4))
def test_any_json_extra_body_passes_and_both_encoders_agree(extra: dict[str, Any]) -> None:
    body = create_embeddings(inputs="a", extra_body=extra).body
    assert body is not None
    assert {k: body[k] for k in extra} == extra
    assert orjson.loads(orjson.dumps(body)) == json.loads(json.dumps(body, allow_nan=False))


@st.composite
def body_with_a_bad_leaf(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """An extra_body with one bad value somewhere, and the path that must be named."""
    bad = draw(bad_leaves)
    path = "extra_body"
    value: Any = bad
    for step in reversed(draw(st.lists(st.one_of(st.integers(0, 2), texts), max_size=3))):
        value = [*([0] * step), value] if isinstance(step, int) else {step: value}
    key = draw(texts.filter(lambda k: k not in NAMED))
    body = {key: value}
    node: Any = body
    path += f"[{key!r}]"
    node = body[key]
    while node is not bad:
        if isinstance(node, list):
            path += f"[{len(node) - 1}]"
            node = node[-1]
        else:
            (k,) = node
            path += f"[{k!r}]"
            node = node[k]
    return body, path


@given(body_with_a_bad_leaf())
def test_a_bad_value_anywhere_in_extra_body_is_named_by_its_path(case: tuple[Any, str]) -> None:
    extra, path = case
    with pytest.raises(InvalidArgumentError) as info:
        create_embeddings(inputs="a", extra_body=extra)
    assert isinstance(info.value, (TypeError, ValueError))
    assert info.value.argument == path


@pytest.mark.parametrize("key", NAMED)
def test_extra_body_cannot_override_a_named_argument(key: str) -> None:
    with pytest.raises(InvalidArgumentValueError) as info:
        create_embeddings(inputs="a", extra_body={key: "x"})
    assert info.value.argument == f"extra_body[{key!r}]"


def test_a_self_containing_extra_body_is_refused() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(InvalidArgumentValueError, match="nested"):
        create_embeddings(inputs="a", extra_body={"k": loop})


# --- inputs and ids with lone surrogates ------------------------------------------------------


@given(st.lists(texts.filter(bool), min_size=1, max_size=5), st.data())
def test_a_lone_surrogate_in_any_input_is_named(inputs: list[str], data: st.DataObject) -> None:
    assert create_embeddings(inputs=inputs).body is not None
    at = data.draw(st.integers(0, len(inputs) - 1))
    surrogate = chr(data.draw(st.integers(0xD800, 0xDFFF)))
    pos = data.draw(st.integers(0, len(inputs[at])))
    inputs[at] = inputs[at][:pos] + surrogate + inputs[at][pos:]
    with pytest.raises(InvalidArgumentValueError) as info:
        create_embeddings(inputs=inputs)
    assert info.value.argument == f"inputs[{at}]"
    with pytest.raises(InvalidArgumentValueError):
        retrieve_model(inputs[at])


# --- headers ------------------------------------------------------------------------------------


TRANSPORT_HEADERS = ("Connection", "Content-Length", "Keep-Alive", "Proxy-Connection", "TE",
                     "Trailer", "Transfer-Encoding", "Upgrade")  # fmt: skip
tokens = st.text(TOKEN_CHARS, min_size=1, max_size=8).filter(
    lambda n: n.lower() not in {h.lower() for h in TRANSPORT_HEADERS}
)


@given(st.dictionaries(tokens, st.text(FIELD_CHARS, max_size=12)))
def test_token_names_and_printable_ascii_values_pass(headers: dict[str, str]) -> None:
    assert validate_headers(headers, "extra_headers") == headers


@given(st.sampled_from(TRANSPORT_HEADERS), st.booleans())
def test_framing_and_connection_headers_are_the_transports(name: str, lower: bool) -> None:
    with pytest.raises(InvalidArgumentValueError, match="set by the transport"):
        validate_headers({name.lower() if lower else name: "x"}, "extra_headers")


@given(
    tokens,
    st.text(FIELD_CHARS, max_size=6),
    st.characters().filter(lambda c: c not in FIELD_CHARS),
    st.data(),
)
def test_any_other_character_in_a_value_is_refused(
    name: str, value: str, intruder: str, data: st.DataObject
) -> None:
    pos = data.draw(st.integers(0, len(value)))
    bad = value[:pos] + intruder + value[pos:]
    with pytest.raises(InvalidArgumentValueError) as info:
        validate_headers({name: bad}, "default_headers")
    assert info.value.argument == "default_headers"
    assert f"character {pos} " in str(info.value)
    if len(bad) > 3:
        assert bad not in str(info.value)  # a value may be a credential: never echoed


@given(st.text(min_size=1, max_size=6).filter(lambda n: any(c not in TOKEN_CHARS for c in n)))
def test_any_other_name_is_refused(name: str) -> None:
    with pytest.raises(InvalidArgumentValueError):
        validate_headers({name: "v"}, "extra_headers")


# --- base_url -------------------------------------------------------------------------------------

labels = st.text("abcxyz019-_", min_size=1, max_size=10)
hosts = st.lists(labels, min_size=1, max_size=3).map(".".join)


@given(hosts, st.sampled_from(["", ":8080"]), st.sampled_from(["", "/v1"]))
def test_host_names_pass(host: str, port: str, path: str) -> None:
    assert validate_base_url(f"https://{host}{port}{path}") == f"https://{host}{port}{path}"


@given(hosts, st.sampled_from([" ", "\u00e9", "$", "%20", "..", "\t", "\u3000", "\\"]), st.data())
def test_a_bad_character_in_the_host_is_refused(
    host: str, intruder: str, data: st.DataObject
) -> None:
    pos = data.draw(st.integers(0, len(host)))
    with pytest.raises(InvalidArgumentValueError) as info:
        validate_base_url(f"http://{host[:pos]}{intruder}{host[pos:]}/v1")
    assert info.value.argument == "base_url"


@pytest.mark.parametrize("url", ["http://[::1]:8000/v1", "http://127.0.0.1/v1", "http://api./v1"])
def test_addresses_pass(url: str) -> None:
    assert validate_base_url(url) == url


# --- counts, timeouts and query values ----------------------------------------------------------


@given(
    st.integers(1, 10**6),
    st.sampled_from([int, np.int8, np.int16, np.int32, np.int64, np.uint16, np.uint64]),
)
def test_counts_accept_any_integer_type(value: int, kind: Any) -> None:
    if kind in (np.int8, np.int16, np.uint16):
        value = value % int(np.iinfo(kind).max) + 1
    result = validate_count(kind(value), "dimensions", minimum=1)
    assert result == value and type(result) is int


@pytest.mark.parametrize("value", [True, np.bool_(False), 1.0, np.float32(2), "3", None, 2 + 0j])
def test_counts_refuse_what_is_not_an_integer(value: object) -> None:
    with pytest.raises(InvalidArgumentTypeError):
        validate_count(value, "max_retries", minimum=0)


@given(st.floats(min_value=1e-6, max_value=MAX_TIMEOUT) | st.floats(allow_nan=True))
def test_timeouts_are_finite_positive_and_at_most_the_socket_limit(seconds: float) -> None:
    valid = math.isfinite(seconds) and 0 < seconds <= MAX_TIMEOUT
    if valid:
        assert Timeout.coerce(seconds).read == seconds
        assert Timeout.coerce(np.float64(seconds)).read == seconds
    else:
        with pytest.raises(InvalidArgumentValueError):
            Timeout.coerce(seconds)


scalars = st.one_of(
    texts, st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False)
)


@given(st.dictionaries(texts, st.none() | scalars | st.lists(scalars, max_size=3), max_size=4))
def test_scalar_query_values_and_lists_of_them_pass(query: dict[str, Any]) -> None:
    options = CallOptions.from_arguments(extra_query=query)
    assert options.extra_query == query
    join_url("http://h/v1", "/embeddings", options.extra_query)  # encodable


@given(texts, st.sampled_from([{"x": 1}, [1, [2]], [{"a": 1}], object(), math.nan, b"x", "\ud800"]))
def test_other_query_values_are_refused_naming_the_key(key: str, value: Any) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        CallOptions.from_arguments(extra_query={key: value})
    assert info.value.argument.startswith(f"extra_query[{key!r}]")


@given(st.lists(st.booleans(), min_size=1, max_size=3))
def test_booleans_in_query_lists_are_spelled_as_json(flags: list[bool]) -> None:
    url = join_url("http://h/v1", "/x", {"f": flags})
    assert url == "http://h/v1/x?" + "&".join(f"f={str(f).lower()}" for f in flags)
