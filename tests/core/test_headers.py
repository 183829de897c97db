"""`Headers`: case-insensitive, read-only, joined repeats, redacted repr (issue 12 item 12).

The expected mapping comes from a direct model: a dict keyed by ``name.lower()`` whose values
are the field's values joined by ``", "`` in arrival order.
"""

from __future__ import annotations

import copy
import json
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aligneai.core.errors import APIStatusError
from aligneai.core.headers import SECRET_HEADERS, Headers
from aligneai.core.response import ResponseHead, make_status_error

names = st.one_of(
    st.sampled_from(["Content-Type", "x-request-id", "Retry-After", "Authorization", "SET-COOKIE"]),
    st.text("abcXYZ-_", min_size=1, max_size=6),
)
values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=8)
pairs = st.lists(st.tuples(names, values), max_size=6)


def model(items: list[tuple[str, str]]) -> dict[str, str]:
    expected: dict[str, list[str]] = {}
    for name, value in items:
        expected.setdefault(name.lower(), []).append(value)
    return {k: ", ".join(v) for k, v in expected.items()}


def respell(name: str, flips: list[bool]) -> str:
    return "".join(c.swapcase() if f else c for c, f in zip(name, flips + [False] * len(name)))


@given(pairs, st.lists(st.booleans(), max_size=8))
def test_lookups_ignore_case(items: list[tuple[str, str]], flips: list[bool]) -> None:
    headers = Headers(items)
    expected = model(items)
    assert dict(headers) == expected
    assert len(headers) == len(expected) and list(headers) == list(expected)
    for name, _ in items:
        other = respell(name, flips)
        assert headers[other] == expected[name.lower()]
        assert headers.get(other) == expected[name.lower()]
        assert other in headers
    assert headers.get("not-there") is None and headers.get("not-there", "d") == "d"
    assert "not-there" not in headers and 3 not in headers  # type: ignore[operator]
    with pytest.raises(KeyError):
        headers["not-there"]


@given(pairs, st.lists(st.booleans(), max_size=8))
def test_equality_with_plain_mappings_ignores_the_case_of_names(
    items: list[tuple[str, str]], flips: list[bool]
) -> None:
    headers = Headers(items)
    expected = model(items)
    assert headers == expected
    assert headers == {respell(k, flips): v for k, v in expected.items()}
    assert headers == Headers(dict(headers))
    if expected:
        changed = dict(expected)
        key = next(iter(changed))
        changed[key] += "!"
        assert headers != changed
        assert headers != {**expected, "another-name": "v"}
    assert headers != [("a", "b")]
    assert headers != {1: "x"}


@given(pairs)
def test_a_mapping_or_pairs_or_headers_build_the_same(items: list[tuple[str, str]]) -> None:
    headers = Headers(items)
    assert Headers(headers) == headers
    assert Headers(dict(items)) == Headers(list(dict(items).items()))


@given(pairs)
def test_read_only_and_picklable(items: list[tuple[str, str]]) -> None:
    headers = Headers(items)
    with pytest.raises(TypeError):
        headers["x"] = "y"  # type: ignore[index]
    with pytest.raises(AttributeError):
        headers.extra = "x"  # type: ignore[attr-defined]
    for change in (
        lambda: headers.__delitem__("x"),
        lambda: headers.update({"x": "y"}),
        lambda: headers.setdefault("x", "y"),
        lambda: headers.pop("x"),
        headers.popitem,
        headers.clear,
    ):
        with pytest.raises(TypeError):
            change()
    assert dict(headers) == model(items)
    assert json.loads(json.dumps(headers)) == model(items)  # a dict for json.dumps, as before
    for copied in (pickle.loads(pickle.dumps(headers)), copy.copy(headers), copy.deepcopy(headers)):
        assert copied == headers and isinstance(copied, Headers)
    with pytest.raises(TypeError):
        hash(headers)


@given(st.sampled_from(sorted(SECRET_HEADERS)), st.lists(st.booleans(), max_size=20))
def test_repr_hides_credentials(name: str, flips: list[bool]) -> None:
    secret = "sk-very-secret-value"
    headers = Headers({respell(name, flips): secret, "Content-Type": "application/json"})
    assert secret not in repr(headers)
    assert "***" in repr(headers) and "application/json" in repr(headers)


def test_response_heads_and_status_errors_expose_headers() -> None:
    head = ResponseHead(
        429, [("Retry-After", "2"), ("X-Request-ID", "r1"), ("Via", "a"), ("via", "b")]
    )
    assert isinstance(head.headers, Headers)
    assert head.headers["retry-after"] == head.headers.get("RETRY-AFTER") == "2"
    assert head.headers["Via"] == "a, b"
    assert head.request_id == "r1"
    err = make_status_error(head, b"{}")
    assert isinstance(err.headers, Headers)
    assert err.headers.get("Retry-After") == "2" and err.request_id == "r1"
    assert err.response is not None and err.response.headers.get("X-Request-Id") == "r1"
    again = pickle.loads(pickle.dumps(err))
    assert again.headers == err.headers and again.headers.get("retry-after") == "2"
    direct = APIStatusError("m", status_code=500, headers={"X-Request-ID": "r2"})
    assert direct.request_id == "r2" and direct.headers["x-request-id"] == "r2"
