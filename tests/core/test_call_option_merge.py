"""One meaning per argument (issue #13 item 3): NOT_GIVEN keeps, None means none, merges per field.

The expected timeouts come from a small model written here (a tuple per timeout and a dict of
the fields a per-call `Timeout` writes), not from `Timeout.merge` itself.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Mapping
from typing import Any, Optional

import pytest
from hypothesis import given
from hypothesis import strategies as st

import aligneai
import aligneai.core
from aligneai.core.errors import InvalidArgumentTypeError, InvalidArgumentValueError
from aligneai.core.flow import PreparedCall, Send, prepare_call, request_flow
from aligneai.core.operations import CallOptions, create_embeddings, list_models
from aligneai.core.options import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    ClientOptions,
    Timeout,
    is_bool,
    validate_max_retries,
)
from aligneai.core.request import PlatformInfo, base_headers
from aligneai.core.sentinels import NOT_GIVEN, NotGiven

KEY = "sk-SECRET-123"
PLATFORM = PlatformInfo(os="Linux", arch="x86_64", runtime="CPython", runtime_version="3.11")

seconds = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False)
optional_seconds = st.none() | seconds
# The fields a per-call Timeout(...) writes, with their values: the model of "given".
written_fields = st.fixed_dictionaries(
    {},
    optional={"connect": seconds, "read": optional_seconds, "total": optional_seconds},
)
Triple = tuple[float, Optional[float], Optional[float]]


@st.composite
def timeouts(draw: st.DrawFn) -> Timeout:
    return Timeout(connect=draw(seconds), read=draw(optional_seconds), total=draw(optional_seconds))


def triple(timeout: Timeout) -> Triple:
    return (timeout.connect, timeout.read, timeout.total)


def model_merge(base: Triple, override: float | dict[str, Any] | NotGiven | None) -> Triple:
    """What the docs promise, written independently of Timeout.merge."""
    connect, read, total = base
    if override is NOT_GIVEN:
        return base
    if override is None:
        return (connect, None, total)
    if isinstance(override, dict):
        return (
            override.get("connect", connect),
            override.get("read", read),
            override.get("total", total),
        )
    assert isinstance(override, float)
    return (min(override, connect), override, total)


# -- the sentinel ------------------------------------------------------------------------------


def test_not_given_is_one_falsy_value_that_survives_copies_and_pickles() -> None:
    assert NotGiven() is NOT_GIVEN
    assert not NOT_GIVEN and bool(NOT_GIVEN) is False
    assert repr(NOT_GIVEN) == "NOT_GIVEN"
    assert copy.copy(NOT_GIVEN) is NOT_GIVEN and copy.deepcopy(NOT_GIVEN) is NOT_GIVEN
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        assert pickle.loads(pickle.dumps(NOT_GIVEN, protocol)) is NOT_GIVEN
    assert pickle.loads(pickle.dumps({"a": [NOT_GIVEN]}))["a"][0] is NOT_GIVEN
    assert NOT_GIVEN is not None and NOT_GIVEN != None  # noqa: E711 - the point of the test


def test_not_given_is_exported_from_the_front_doors() -> None:
    assert aligneai.NOT_GIVEN is NOT_GIVEN and aligneai.NotGiven is NotGiven
    assert aligneai.core.NOT_GIVEN is NOT_GIVEN and aligneai.core.NotGiven is NotGiven
    assert {"NOT_GIVEN", "NotGiven"} <= set(aligneai.__all__) & set(aligneai.core.__all__)


# -- Timeout.merge: pure properties ------------------------------------------------------------


@given(timeouts())
def test_merging_not_given_is_the_identity(base: Timeout) -> None:
    assert base.merge(NOT_GIVEN) is base


@given(timeouts(), seconds)
def test_a_number_sets_read_caps_connect_and_keeps_the_deadline(base: Timeout, n: float) -> None:
    merged = base.merge(n)
    assert triple(merged) == model_merge(triple(base), n)
    assert merged.total == base.total


@given(timeouts())
def test_none_removes_the_read_limit_only(base: Timeout) -> None:
    assert triple(base.merge(None)) == (base.connect, None, base.total)


@given(timeouts(), written_fields)
def test_a_timeout_replaces_only_the_fields_it_writes(
    base: Timeout, fields: dict[str, Any]
) -> None:
    override = Timeout(**fields)
    merged = base.merge(override)
    assert triple(merged) == model_merge(triple(base), fields)
    # Fields left out still read as the defaults on the override itself.
    assert override.connect == fields.get("connect", DEFAULT_CONNECT_TIMEOUT)
    assert override.read == fields.get("read", DEFAULT_READ_TIMEOUT)
    assert override.total == fields.get("total")


@given(timeouts(), written_fields, written_fields)
def test_merges_compose_field_by_field(
    base: Timeout, first: dict[str, Any], second: dict[str, Any]
) -> None:
    # The result of a merge has every field written: merging it replaces the whole timeout.
    merged = base.merge(Timeout(**first))
    assert triple(Timeout(connect=1, read=2, total=3).merge(merged)) == triple(merged)
    twice = merged.merge(Timeout(**second))
    assert triple(twice) == model_merge(model_merge(triple(base), first), second)


@given(st.one_of(seconds, st.none(), written_fields))
def test_coerce_is_merge_onto_the_defaults(value: float | dict[str, Any] | None) -> None:
    defaults = (DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT, None)
    given_value = Timeout(**value) if isinstance(value, dict) else value
    assert triple(Timeout.coerce(given_value)) == model_merge(defaults, value)


@given(written_fields)
def test_equality_and_pickling_ignore_how_a_timeout_was_written(fields: dict[str, Any]) -> None:
    written = Timeout(**fields)
    full = Timeout.coerce(written)
    assert written == full and hash(written) == hash(full)
    again = pickle.loads(pickle.dumps(written))
    assert again == written
    # The copy still merges like the original: only the written fields.
    base = Timeout(connect=0.5, read=0.5, total=0.5)
    assert triple(base.merge(again)) == triple(base.merge(written))


@pytest.mark.parametrize("bad", ["5", -1, 0, float("nan"), True, 1e10])
def test_merge_refuses_bad_numbers_naming_the_argument(bad: object) -> None:
    with pytest.raises((InvalidArgumentTypeError, InvalidArgumentValueError)) as info:
        Timeout().merge(bad, argument="timeout")  # type: ignore[arg-type]
    assert info.value.argument == "timeout"  # type: ignore[union-attr]


# -- validation helpers with public names ------------------------------------------------------


def test_max_retries_none_says_how_to_keep_the_clients_setting() -> None:
    with pytest.raises(InvalidArgumentTypeError) as info:
        CallOptions.from_arguments(max_retries=None)  # type: ignore[arg-type]
    message = str(info.value)
    assert message.startswith("max_retries:") and "NOT_GIVEN" in message and "omit" in message
    assert isinstance(info.value, TypeError)
    assert validate_max_retries(3) == 3
    assert is_bool(True) and not is_bool(1)


# -- prepare_call: where the overrides meet the client's settings ------------------------------


def prepared(
    call_options: CallOptions, *, options: ClientOptions | None = None, operation: Any = None
) -> PreparedCall:
    options = options or ClientOptions(
        api_key=KEY, timeout=Timeout(connect=2, read=10, total=30), max_retries=4
    )
    return prepare_call(
        options,
        base_headers(options, PLATFORM),
        operation or create_embeddings(inputs=["a"]),
        call_options,
        idempotency_key="idem-1",
    )


def first_request_headers(call: PreparedCall) -> dict[str, str]:
    flow = request_flow(call, clock=lambda: 0.0, wall_clock=lambda: 0.0, random=lambda: 0.5)
    action = next(flow)
    assert isinstance(action, Send)
    return {k.lower(): v for k, v in action.request.headers.items()}


def test_no_overrides_keep_everything() -> None:
    call = prepared(CallOptions.from_arguments())
    assert triple(call.timeout) == (2, 10, 30) and call.max_retries == 4


@given(st.one_of(st.just(NOT_GIVEN), st.none(), seconds, written_fields))
def test_a_per_call_timeout_merges_with_the_clients(value: Any) -> None:
    override = Timeout(**value) if isinstance(value, dict) else value
    call = prepared(CallOptions.from_arguments(timeout=override))
    assert triple(call.timeout) == model_merge((2.0, 10.0, 30.0), value)


@given(st.one_of(st.just(NOT_GIVEN), st.integers(min_value=0, max_value=9)))
def test_max_retries_not_given_keeps_and_an_int_sets(value: Any) -> None:
    call = prepared(CallOptions.from_arguments(max_retries=value))
    assert call.max_retries == (4 if value is NOT_GIVEN else value)


@pytest.mark.parametrize("spelling", ["X-Team", "x-team", "X-TEAM"])
def test_a_none_header_removes_the_field_whatever_its_case(spelling: str) -> None:
    options = ClientOptions(api_key=KEY, default_headers={"X-Team": "search", "X-Keep": "1"})
    call = prepared(
        CallOptions.from_arguments(extra_headers={spelling: None, "user-agent": None}),
        options=options,
    )
    headers = first_request_headers(call)
    assert "x-team" not in headers and "user-agent" not in headers
    assert headers["x-keep"] == "1" and headers["authorization"] == f"Bearer {KEY}"


def test_removing_the_idempotency_key_sends_none() -> None:
    headers = first_request_headers(
        prepared(CallOptions.from_arguments(extra_headers={"idempotency-key": None}))
    )
    assert "idempotency-key" not in headers
    assert "idempotency-key" in first_request_headers(prepared(CallOptions()))


def test_a_none_default_header_removes_the_librarys_own() -> None:
    options = ClientOptions(
        api_key=KEY, default_headers={"USER-AGENT": None, "Authorization": None}
    )
    headers = first_request_headers(
        prepared(CallOptions(), options=options, operation=list_models())
    )
    assert "user-agent" not in headers and "authorization" not in headers
    assert headers["x-aligneai-lang"] == "python"


@pytest.mark.parametrize("name", ["Idempotency-Key"])
def test_per_attempt_headers_cannot_be_removed_for_every_call(name: str) -> None:
    with pytest.raises(InvalidArgumentValueError) as info:
        ClientOptions(api_key=KEY, default_headers={name: None})
    assert info.value.argument == "default_headers" and "extra_headers" in str(info.value)


@pytest.mark.parametrize(
    "headers", [{"Content-Length": None}, {"X-A": 1}, {"X-A": b"v"}, {"bad name": None}]
)
def test_header_overrides_are_still_checked(headers: Mapping[str, Any]) -> None:
    with pytest.raises((InvalidArgumentTypeError, InvalidArgumentValueError)) as info:
        CallOptions.from_arguments(extra_headers=headers)
    assert info.value.argument == "extra_headers"  # type: ignore[union-attr]
