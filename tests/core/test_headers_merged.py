"""One header type for requests too (issue #13 item 4): `Headers.merged`, `from_lower`, requests.

Expected values come from a plain-dict model keyed by lower-cased names, written here.
"""

from __future__ import annotations

import pickle

from hypothesis import given
from hypothesis import strategies as st

from aligneai.core.flow import PreparedCall, Send, prepare_call, request_flow
from aligneai.core.headers import Headers
from aligneai.core.operations import CallOptions, create_embeddings, list_models
from aligneai.core.options import ClientOptions
from aligneai.core.request import PlatformInfo, Request, base_headers, build_request

KEY = "sk-SECRET-123"
PLATFORM = PlatformInfo(os="Linux", arch="x86_64", runtime="CPython", runtime_version="3.11")

base_names = ["Accept", "Content-Type", "Idempotency-Key", "X-AligneAI-Retry-Count", "X-Team"]
names = st.sampled_from(base_names).flatmap(
    lambda n: st.sampled_from([n, n.lower(), n.upper(), n.swapcase()])
)
values = st.text(alphabet="abc xyz-09", max_size=6)
changes = st.lists(st.tuples(names, st.none() | values), max_size=6)


def model(start: dict[str, str], applied: list[tuple[str, str | None]]) -> dict[str, str]:
    """Lower-cased names (two spellings in ``start``: one field, values joined by ", " as
    HTTP allows); then each change in order: a value sets, None removes."""
    result: dict[str, str] = {}
    for name, value in start.items():
        key = name.lower()
        result[key] = f"{result[key]}, {value}" if key in result else value
    for name, value in applied:
        if value is None:
            result.pop(name.lower(), None)
        else:
            result[name.lower()] = value
    return result


@given(st.dictionaries(names, values, max_size=5), changes)
def test_merged_applies_changes_in_order_whatever_the_case(
    start: dict[str, str], applied: list[tuple[str, str | None]]
) -> None:
    headers = Headers(model(start, []))
    before = dict(headers)
    # A dict keeps one entry per spelling: apply the changes one mapping at a time, in order.
    merged = headers
    for name, value in applied:
        merged = merged.merged({name: value})
    assert type(merged) is Headers
    assert dict(merged) == model(start, applied)  # lower-case names, as sent
    assert dict(headers) == before  # the original is unchanged
    assert headers.merged({}) == headers


@given(
    st.dictionaries(st.sampled_from(["a", "b", "c"]), values),
    st.dictionaries(st.sampled_from(["b", "d"]), values),
)
def test_from_lower_holds_the_fields_then_more(
    fields: dict[str, str], more: dict[str, str]
) -> None:
    headers = Headers.from_lower(fields, more)
    assert type(headers) is Headers and dict(headers) == {**fields, **more}
    assert dict(Headers.from_lower(fields)) == fields
    assert pickle.loads(pickle.dumps(headers)) == headers


@given(
    st.dictionaries(names, values, max_size=5),
    st.sampled_from(["GET", "POST"]),
    st.booleans(),
    st.integers(min_value=0, max_value=5),
)
def test_build_request_accepts_headers_in_any_spelling(
    given_headers: dict[str, str], method: str, stream: bool, retry_count: int
) -> None:
    body = None if method == "GET" else b"{}"
    request = build_request(
        method=method,
        url="https://h/v1/x",
        headers=given_headers,
        body=body,
        timeout=ClientOptions(api_key=KEY).timeout,
        retry_count=retry_count,
        idempotency_key="idem-1",
        stream=stream,
    )
    expected = model(given_headers, [])
    expected["x-aligneai-retry-count"] = str(retry_count)
    expected["idempotency-key"] = "idem-1"
    if stream:
        expected["accept"] = "text/event-stream"
    if body is None:
        expected.pop("content-type", None)
    assert type(request.headers) is Headers
    assert dict(request.headers) == expected  # one field per name, never two spellings


def test_requests_and_prepared_calls_hold_headers() -> None:
    options = ClientOptions(api_key=KEY, default_headers={"X-Team": "t"})
    base = base_headers(options, PLATFORM)
    assert type(base) is Headers and all(name == name.lower() for name in base)
    by_hand = Request("GET", "https://h/", {"X-A": "1", "x-a": "2"})
    assert type(by_hand.headers) is Headers and dict(by_hand.headers) == {"x-a": "1, 2"}
    for operation in (create_embeddings(inputs=["a"]), list_models()):
        call = prepare_call(options, base, operation, CallOptions(), idempotency_key="k")
        assert type(call.headers) is Headers
        # Content-Type goes when there is no body, once per call.
        assert ("content-type" in call.headers) == (operation.body is not None)
        flow = request_flow(call, clock=lambda: 0.0, wall_clock=lambda: 0.0, random=lambda: 0.5)
        send = next(flow)
        assert isinstance(send, Send) and type(send.request.headers) is Headers
        assert send.request.headers["X-Team"] == "t"
    plain = PreparedCall(
        method="GET",
        url="https://h/",
        headers={"Accept": "x"},
        body=None,
        stream=False,
        timeout=options.timeout,
        max_retries=0,
        max_response_bytes=1,
        idempotency_key=None,
    )
    assert type(plain.headers) is Headers and plain.headers["ACCEPT"] == "x"
    assert KEY not in repr(call) and KEY not in repr(send.request)
