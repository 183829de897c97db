"""Regression tests of the review of issue #13 item 3 (NOT_GIVEN and one meaning for None).

- 2: `CallOptions(...)` built directly validates its fields like `CallOptions.from_arguments`;
- 3: the retry-count header is always sent: refused in default_headers and extra_headers;
- 4: a number's cap on connect does not become the base of a later number;
- 6: NOT_GIVEN means the default for extra_headers/extra_query/extra_body and the client options;
- 8: CallOptions' repr hides credentials; Headers refuse non-str names and values; the private
  state of `Timeout` is no attrs field; the deprecated `strict_converter()` is built once.
"""

from __future__ import annotations

import copy
import pickle
import warnings
from functools import reduce
from typing import Any

import attrs
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aligneai.core.errors import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    InvalidArgumentValueError,
)
from aligneai.core.headers import Headers
from aligneai.core.operations import CallOptions, create_embeddings
from aligneai.core.options import ClientOptions, Timeout, resolve_options
from aligneai.core.request import Request
from aligneai.core.sentinels import NOT_GIVEN

# -- 2: the constructor validates ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "argument"),
    [
        ({"max_retries": None}, InvalidArgumentTypeError, "max_retries"),
        ({"max_retries": -1}, InvalidArgumentValueError, "max_retries"),
        ({"max_retries": True}, InvalidArgumentTypeError, "max_retries"),
        ({"max_retries": 1.0}, InvalidArgumentTypeError, "max_retries"),
        ({"timeout": "5"}, InvalidArgumentTypeError, "timeout"),
        ({"timeout": 0}, InvalidArgumentValueError, "timeout"),
        ({"timeout": float("nan")}, InvalidArgumentValueError, "timeout"),
        ({"extra_headers": {"X": 5}}, InvalidArgumentTypeError, "extra_headers"),
        ({"extra_headers": {"X": b"v"}}, InvalidArgumentTypeError, "extra_headers"),
        ({"extra_headers": {"bad name": "v"}}, InvalidArgumentValueError, "extra_headers"),
        ({"extra_headers": {"X": "a\r\nb"}}, InvalidArgumentValueError, "extra_headers"),
        ({"extra_headers": {"Content-Length": "1"}}, InvalidArgumentValueError, "extra_headers"),
        ({"extra_headers": [("X", "v")]}, InvalidArgumentTypeError, "extra_headers"),
        ({"extra_query": {"a": {"b": 1}}}, InvalidArgumentTypeError, "extra_query['a']"),
        ({"extra_query": {1: "x"}}, InvalidArgumentTypeError, "extra_query"),
        ({"extra_query": "a=1"}, InvalidArgumentTypeError, "extra_query"),
    ],
)
def test_the_constructor_refuses_what_from_arguments_refuses(
    kwargs: dict[str, Any], error: type[Exception], argument: str
) -> None:
    for build in (CallOptions, CallOptions.from_arguments):
        with pytest.raises(error) as info:
            build(**kwargs)
        assert info.value.argument == argument  # type: ignore[attr-defined]


def test_max_retries_none_in_the_constructor_says_what_to_write() -> None:
    with pytest.raises(InvalidArgumentTypeError, match="NOT_GIVEN"):
        CallOptions(max_retries=None)  # type: ignore[arg-type]


def test_evolve_validates_too() -> None:
    options = CallOptions(max_retries=1)
    with pytest.raises(InvalidArgumentTypeError):
        attrs.evolve(options, max_retries=None)
    assert attrs.evolve(options, max_retries=np.int64(3)).max_retries == 3


def test_the_constructor_normalises_like_from_arguments() -> None:
    options = CallOptions(
        timeout=np.float64(2.5),
        max_retries=np.int32(4),
        extra_headers={"X-Team": "a", "X-Gone": None},
        extra_query={"tag": ("a", np.int64(2)), "flag": np.bool_(True), "none": None},
    )
    assert type(options.timeout) is float and options.timeout == 2.5
    assert type(options.max_retries) is int and options.max_retries == 4
    assert options.extra_headers == {"X-Team": "a", "X-Gone": None}
    assert options.extra_query == {"tag": ["a", 2], "flag": True, "none": None}
    assert type(options.extra_query["flag"]) is bool
    assert CallOptions(timeout=None).timeout is None
    limits = Timeout(read=3)
    assert CallOptions(timeout=limits).timeout is limits


def test_none_and_not_given_mean_no_extras_in_the_constructor() -> None:
    for empty in (None, NOT_GIVEN):
        options = CallOptions(extra_headers=empty, extra_query=empty)  # type: ignore[arg-type]
        assert options.extra_headers == {} and options.extra_query == {}
        assert options == CallOptions()


def test_no_overrides_is_one_shared_read_only_value() -> None:
    shared = CallOptions.from_arguments()
    assert shared is CallOptions.from_arguments()
    assert shared == CallOptions()
    with pytest.raises(TypeError):
        shared.extra_headers["x"] = "y"  # type: ignore[index]
    with pytest.raises(TypeError):
        shared.extra_query["x"] = "y"  # type: ignore[index]


# Valid and invalid values of each argument; the two ways of building must agree on all.
_TIMEOUTS = st.one_of(
    st.just(NOT_GIVEN),
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-5, max_value=10**10),
    st.text(max_size=2),
    st.builds(Timeout, read=st.floats(min_value=0.1, max_value=100)),
)
_RETRIES = st.one_of(
    st.just(NOT_GIVEN), st.none(), st.integers(-3, 10), st.booleans(), st.floats(0, 3)
)
_HEADER_NAMES = st.sampled_from(["X-A", "x-a", "Bad Name", "Content-Length", "Idempotency-Key"])
_HEADERS = st.one_of(
    st.just(NOT_GIVEN),
    st.none(),
    st.dictionaries(
        _HEADER_NAMES,
        st.one_of(st.none(), st.sampled_from(["v", "a\nb", "é"]), st.integers(0, 3)),
        max_size=3,
    ),
)
_QUERIES = st.one_of(
    st.just(NOT_GIVEN),
    st.none(),
    st.dictionaries(
        st.sampled_from(["a", "b"]),
        st.one_of(
            st.none(), st.text(max_size=2), st.integers(), st.lists(st.integers(), max_size=2)
        ),
        max_size=2,
    ),
    st.dictionaries(
        st.sampled_from(["c"]), st.dictionaries(st.just("d"), st.integers()), min_size=1
    ),
)


def _outcome(build: Any, kwargs: dict[str, Any]) -> Any:
    try:
        return build(**kwargs)
    except InvalidArgumentError as exc:
        return (type(exc), exc.argument)


@given(timeout=_TIMEOUTS, max_retries=_RETRIES, extra_headers=_HEADERS, extra_query=_QUERIES)
def test_constructor_and_from_arguments_agree(
    timeout: Any, max_retries: Any, extra_headers: Any, extra_query: Any
) -> None:
    kwargs = {
        "timeout": timeout,
        "max_retries": max_retries,
        "extra_headers": extra_headers,
        "extra_query": extra_query,
    }
    assert _outcome(CallOptions, kwargs) == _outcome(CallOptions.from_arguments, kwargs)


# -- 3: the retry count is always sent --------------------------------------------------------

_RETRY_COUNT_SPELLINGS = [
    "X-AligneAI-Retry-Count",
    "x-aligneai-retry-count",
    "X-ALIGNEAI-RETRY-COUNT",
]


@pytest.mark.parametrize("name", _RETRY_COUNT_SPELLINGS)
@pytest.mark.parametrize("value", [None, "7"])
def test_default_headers_cannot_set_or_remove_the_retry_count(name: str, value: Any) -> None:
    with pytest.raises(InvalidArgumentValueError) as info:
        ClientOptions(api_key="k", default_headers={name: value})
    assert info.value.argument == "default_headers"
    message = str(info.value)
    assert "always sent" in message and "extra_headers" not in message


@pytest.mark.parametrize("name", _RETRY_COUNT_SPELLINGS)
@pytest.mark.parametrize("value", [None, "7"])
def test_extra_headers_cannot_set_or_remove_the_retry_count(name: str, value: Any) -> None:
    for build in (CallOptions, CallOptions.from_arguments):
        with pytest.raises(InvalidArgumentValueError) as info:
            build(extra_headers={name: value})
        assert info.value.argument == "extra_headers"
        assert "always sent" in str(info.value)


def test_removing_the_idempotency_key_for_every_call_still_points_to_the_per_call_form() -> None:
    with pytest.raises(InvalidArgumentValueError) as info:
        ClientOptions(api_key="k", default_headers={"Idempotency-Key": None})
    assert "extra_headers={'Idempotency-Key': None}" in str(info.value)
    # Per call, removing it is how a call sends no key.
    assert CallOptions(extra_headers={"Idempotency-Key": None}).extra_headers == {
        "Idempotency-Key": None
    }


# -- 4: a number's cap on connect is not the base of a later number ---------------------------

_SECONDS = st.one_of(
    st.integers(min_value=1, max_value=10**6),
    st.floats(min_value=1e-3, max_value=1e6, allow_nan=False),
)
_FULL_TIMEOUTS = st.builds(
    Timeout,
    connect=st.floats(min_value=1e-3, max_value=1e3),
    read=st.none() | st.floats(min_value=1e-3, max_value=1e3),
    total=st.none() | st.floats(min_value=1e-3, max_value=1e3),
)


def test_a_number_over_a_number_is_the_number_over_the_defaults() -> None:
    assert Timeout.coerce(1).merge(60) == Timeout(connect=5, read=60, total=None)
    assert Timeout.coerce(60) == Timeout(connect=5, read=60, total=None)
    assert Timeout.coerce(1).merge(2) == Timeout(connect=2, read=2, total=None)
    assert Timeout.coerce(1).merge(None).merge(60) == Timeout(connect=5, read=60, total=None)
    # The cap itself still applies, and a connect limit written in a Timeout is kept.
    assert Timeout.coerce(1) == Timeout(connect=1, read=1, total=None)
    written = Timeout.coerce(Timeout(connect=2)).merge(1)
    assert written == Timeout(connect=1, read=1, total=None)
    assert written.merge(60) == Timeout(connect=2, read=60, total=None)


@given(chain=st.lists(_SECONDS, max_size=5), n=_SECONDS)
def test_numbers_over_numbers_equal_the_constructor(chain: list[float], n: float) -> None:
    merged = reduce(lambda t, s: t.merge(s), chain, Timeout.coerce(NOT_GIVEN)).merge(n)
    assert merged == Timeout.coerce(n)
    via_constructor = reduce(lambda t, s: t.merge(s), chain, Timeout()).merge(n)
    assert via_constructor == Timeout.coerce(n)


@given(base=_FULL_TIMEOUTS, chain=st.lists(_SECONDS, max_size=5), n=_SECONDS)
def test_numbers_over_numbers_equal_the_number_over_the_base(
    base: Timeout, chain: list[float], n: float
) -> None:
    merged = reduce(lambda t, s: t.merge(s), chain, base).merge(n)
    assert merged == base.merge(n)
    assert merged == Timeout(connect=min(float(n), base.connect), read=float(n), total=base.total)


# A step of a chain: a number, None, or a Timeout writing read or total (never connect).
_STEPS = st.one_of(
    _SECONDS.map(lambda s: ("number", s)),
    st.just(("none", None)),
    (st.none() | _SECONDS).map(lambda s: ("read", s)),
    (st.none() | _SECONDS).map(lambda s: ("total", s)),
)


def _step(timeout: Timeout, step: tuple[str, Any]) -> Timeout:
    kind, value = step
    if kind == "read":
        return timeout.merge(Timeout(read=value))
    if kind == "total":
        return timeout.merge(Timeout(total=value))
    return timeout.merge(value)


@given(base=_FULL_TIMEOUTS, chain=st.lists(_STEPS, max_size=6), n=_SECONDS)
def test_a_number_caps_the_last_written_connect(
    base: Timeout, chain: list[tuple[str, Any]], n: float
) -> None:
    # The model: connect from the base (no step writes one), capped by n; read is n; total
    # from the last step that wrote one, else the base's.
    total = base.total
    for kind, value in chain:
        if kind == "total":
            total = None if value is None else float(value)
    merged = _step(reduce(_step, chain, base), ("number", n))
    assert merged == Timeout(connect=min(float(n), base.connect), read=float(n), total=total)


def test_client_options_keep_the_uncapped_connect() -> None:
    options = ClientOptions(api_key="k", timeout=1)
    derived = options.replace(timeout=options.timeout.merge(60))
    assert derived.timeout == Timeout(connect=5, read=60, total=None)
    again = pickle.loads(pickle.dumps(options))
    assert again.timeout.merge(60) == Timeout(connect=5, read=60, total=None)


# -- 6: NOT_GIVEN means the default -----------------------------------------------------------


def test_resolve_options_reads_not_given_as_the_default() -> None:
    given_nothing = resolve_options(
        api_key=NOT_GIVEN,
        base_url=NOT_GIVEN,
        timeout=NOT_GIVEN,
        max_retries=NOT_GIVEN,
        default_headers=NOT_GIVEN,
        max_response_bytes=NOT_GIVEN,
        environ={"ALIGNEAI_API_KEY": "sk-env", "ALIGNEAI_BASE_URL": "http://127.0.0.1:1/v9"},
    )
    assert given_nothing == ClientOptions(api_key="sk-env", base_url="http://127.0.0.1:1/v9")
    assert given_nothing.timeout == Timeout(connect=5, read=60, total=None)
    assert given_nothing.max_retries == 2 and given_nothing.default_headers == {}


def test_extra_body_not_given_is_no_extra_body() -> None:
    plain = create_embeddings(inputs="a")
    assert create_embeddings(inputs="a", extra_body=NOT_GIVEN).body == plain.body
    assert create_embeddings(inputs="a", extra_body=None).body == plain.body


def test_extra_headers_and_query_not_given_are_no_extras() -> None:
    options = CallOptions.from_arguments(extra_headers=NOT_GIVEN, extra_query=NOT_GIVEN)
    assert options == CallOptions.from_arguments()


# -- 8: repr, Headers values, Timeout fields, strict_converter ---------------------------------


def test_call_options_repr_hides_credentials() -> None:
    options = CallOptions(
        extra_headers={"Authorization": "Bearer sk-secret-1", "x-api-key": "sk-secret-2", "X": "y"}
    )
    text = repr(options)
    assert "sk-secret" not in text
    assert "'Authorization': '***'" in text and "'X': 'y'" in text
    assert "sk-secret" not in repr(
        CallOptions.from_arguments(extra_headers={"Cookie": "sk-secret"})
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"A": None},
        {"A": 5},
        {"A": b"x"},
        [("A", "ok"), ("A", None)],
        [("A", None), ("A", "ok")],
        [(b"A", "x")],
        {5: "x"},
    ],
)
def test_headers_refuse_what_is_no_str(fields: Any) -> None:
    with pytest.raises(TypeError, match="must be a str"):
        Headers(fields)
    with pytest.raises(TypeError, match="must be a str"):
        Request(method="GET", url="http://127.0.0.1/", headers=fields)


def test_headers_errors_never_show_a_value() -> None:
    with pytest.raises(TypeError) as info:
        Headers([("Authorization", "Bearer sk-secret"), ("Authorization", None)])
    assert "sk-secret" not in str(info.value) and "'authorization'" in str(info.value)


def test_headers_of_str_still_join_and_lower() -> None:
    headers = Headers([("A", "1"), ("a", "2"), ("B", "3")])
    assert dict(headers) == {"a": "1, 2", "b": "3"}
    assert Headers({"X-Y": ""}) == {"x-y": ""}


def test_timeout_asdict_shows_the_three_limits_only() -> None:
    assert attrs.asdict(Timeout(read=1)) == {"connect": 5.0, "read": 1.0, "total": None}
    assert [field.name for field in attrs.fields(Timeout)] == ["connect", "read", "total"]
    assert attrs.astuple(Timeout.coerce(1)) == (1.0, 1.0, None)


@pytest.mark.parametrize(
    "roundtrip",
    [
        lambda t: pickle.loads(pickle.dumps(t)),
        copy.copy,
        copy.deepcopy,
    ],
)
def test_timeout_copies_keep_equality_and_merge_behaviour(roundtrip: Any) -> None:
    base = Timeout(connect=2, read=10, total=30)
    partial = roundtrip(Timeout(read=1))
    assert partial == Timeout(read=1) and hash(partial) == hash(Timeout(read=1))
    assert base.merge(partial) == Timeout(connect=2, read=1, total=30)  # still partial
    capped = roundtrip(Timeout.coerce(1))
    assert capped == Timeout(connect=1, read=1, total=None)
    assert capped.merge(60) == Timeout(connect=5, read=60, total=None)  # still uncapped 5
    assert roundtrip(base) == base and base.merge(roundtrip(base)) == base


def test_timeout_equality_and_hash_compare_the_limits_only() -> None:
    assert Timeout(read=1) == Timeout(connect=5, read=1, total=None)
    assert hash(Timeout(read=1)) == hash(Timeout(connect=5, read=1, total=None))
    assert Timeout.coerce(1) == Timeout(connect=1, read=1)
    assert attrs.evolve(Timeout(read=1), total=3) == Timeout(connect=5, read=1, total=3)


def test_the_deprecated_strict_converter_is_built_once_and_warns_each_time() -> None:
    from aligneai.core.converter import strict_converter

    with pytest.warns(DeprecationWarning):
        first = strict_converter()
    with pytest.warns(DeprecationWarning):
        second = strict_converter()
    assert first is second
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert strict_converter() is first


@pytest.mark.parametrize(
    "options",
    [
        CallOptions(),
        CallOptions.from_arguments(),
        CallOptions(max_retries=0),
        CallOptions(
            timeout=Timeout(read=3),
            extra_headers={"X-Team": "a", "X-Gone": None},
            extra_query={"tag": ["a", "b"]},
        ),
    ],
)
def test_call_options_pickle_and_copy(options: CallOptions) -> None:
    for again in (pickle.loads(pickle.dumps(options)), copy.copy(options), copy.deepcopy(options)):
        assert again == options
        assert dict(again.extra_headers) == dict(options.extra_headers)
