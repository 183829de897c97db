"""Tests of aligneai.core.request (and core.system): URLs, headers, per-attempt requests."""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aligneai.core._version import __version__
from aligneai.core.headers import Headers
from aligneai.core.options import ClientOptions, Timeout, validate_base_url
from aligneai.core.request import (
    PlatformInfo,
    Request,
    base_headers,
    build_request,
    canonicalize_headers,
    encode_json_body,
    join_url,
    merge_headers,
    pop_header,
    redact_headers,
    set_header,
)
from aligneai.core.system import current_platform

KEY = "sk-SECRET-123"
PLATFORM = PlatformInfo(os="Linux", arch="x86_64", runtime="CPython", runtime_version="3.11.7")

label = st.text(alphabet="abcxyz019-", min_size=1, max_size=8)
host = st.one_of(
    st.tuples(label, st.sampled_from(["", ".com", ".aligne.ai"])).map("".join),
    st.sampled_from(["localhost", "127.0.0.1", "[::1]"]),
)
segment = st.builds(
    str.__add__,
    st.sampled_from("abcXYZ019_~-"),
    st.text(alphabet="abcXYZ019._~-", max_size=7),
)


@st.composite
def base_urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http", "https"]))
    port = draw(st.none() | st.integers(min_value=1, max_value=65535))
    segments = draw(st.lists(segment, max_size=3))
    path = "".join("/" + s for s in segments) or draw(st.sampled_from(["", "/v1"]))
    netloc = draw(host) + ("" if port is None else f":{port}")
    return validate_base_url(f"{scheme}://{netloc}{path}{draw(st.sampled_from(['', '/']))}")


def remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4, as servers and urllib3 apply it."""
    out: list[str] = []
    for seg in path.split("/")[1:]:
        if seg == "..":
            if out:
                out.pop()
        elif seg != ".":
            out.append(seg)
    trailing = "/" if path.endswith(("/.", "/..")) else ""
    return "/" + "/".join(out) + trailing


# --- join_url ---------------------------------------------------------------------------------


@given(
    base_urls(),
    st.one_of(
        st.text(max_size=20).map(lambda t: (False, t)),
        st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=3).map(
            lambda segs: (True, "/" + "/".join(quote(s, safe="") for s in segs))
        ),
    ),
)
def test_join_url_keeps_the_base_path_for_any_path(base: str, case: tuple[bool, str]) -> None:
    quoted, path = case
    url = join_url(base, path)
    assert url.startswith(base + "/")
    assert url == base + "/" + path.lstrip("/")
    base_path = urlsplit(base).path
    assert urlsplit(url).path.startswith(base_path + "/")
    if quoted:
        # paths as the operations build them: every segment percent-quoted; the base path
        # then also survives dot-segment removal ("." and ".." are tested in test_operations)
        parts = urlsplit(url)
        assert (parts.query, parts.fragment) == ("", "")
        if not any(s in (".", "..") for s in path.split("/")):
            assert remove_dot_segments(parts.path).startswith(base_path + "/")


def test_join_url_examples() -> None:
    assert join_url("https://api.aligne.ai/v1", "/embeddings") == (
        "https://api.aligne.ai/v1/embeddings"
    )
    assert join_url("https://api.aligne.ai/v1/", "models") == "https://api.aligne.ai/v1/models"
    assert join_url("http://localhost:8000", "/models") == "http://localhost:8000/models"


@given(
    st.sampled_from(["https://api.aligne.ai/v1", "http://localhost:8000"]),
    st.dictionaries(
        st.text(min_size=1, max_size=6),
        st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=6)),
        max_size=4,
    ),
)
def test_join_url_query(base: str, query: dict[str, object]) -> None:
    url = join_url(base, "/models", query)
    expected = [
        (k, "true" if v is True else "false" if v is False else str(v))
        for k, v in query.items()
        if v is not None
    ]
    assert url.startswith(base + "/models")
    if expected:
        assert parse_qsl(urlsplit(url).query, keep_blank_values=True) == expected
    else:
        assert url == base + "/models"


# --- headers ----------------------------------------------------------------------------------


def test_base_headers_content() -> None:
    headers = base_headers(ClientOptions(api_key=KEY), PLATFORM)
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert headers["User-Agent"] == f"aligneai-python/{__version__}"
    assert headers["Accept"] == "application/json"
    assert headers["Content-Type"] == "application/json"
    assert headers["X-AligneAI-Lang"] == "python"
    assert headers["X-AligneAI-Package-Version"] == __version__
    assert headers["X-AligneAI-OS"] == "Linux"
    assert headers["X-AligneAI-Arch"] == "x86_64"
    assert headers["X-AligneAI-Runtime"] == "CPython"
    assert headers["X-AligneAI-Runtime-Version"] == "3.11.7"


# Not Idempotency-Key: a key names one call, and default_headers refuse it (see test_options).
standard_names = st.sampled_from(
    ["Authorization", "User-Agent", "Accept", "X-AligneAI-Lang", "X-Custom", "Content-Type"]
)
header_names = st.one_of(
    standard_names.flatmap(lambda n: st.sampled_from([n, n.lower(), n.upper()])),
    st.builds(str.__add__, st.sampled_from("aXz"), st.text(alphabet="abXY09-", max_size=10)),
)
header_values = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12)


def last_by_lower_name(items: list[tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """The expected winner per case-insensitive name: the last (name, value) given."""
    return {name.lower(): (name, value) for name, value in items}


@given(st.dictionaries(header_names, header_values, max_size=4))
def test_base_headers_are_unique_and_defaults_win(default: dict[str, str]) -> None:
    options = ClientOptions(api_key=KEY, default_headers=default)
    headers = base_headers(options, PLATFORM)
    plain = base_headers(ClientOptions(api_key=KEY), PLATFORM)
    # one spelling per name: a header sent twice under two spellings is ambiguous
    lowered = [name.lower() for name in headers]
    assert len(lowered) == len(set(lowered)), headers
    winners = last_by_lower_name(list(default.items()))
    # Names compare case-insensitively (HTTP); the client respells the headers it sets per
    # attempt (Accept, Content-Type, ...) canonically, whatever spelling the caller used.
    by_lower = {name.lower(): value for name, value in headers.items()}
    for name, value in winners.values():
        assert by_lower[name.lower()] == value
    for name, value in plain.items():
        if name.lower() not in winners:
            assert headers[name] == value
    assert len(headers) == len({*(k.lower() for k in plain), *winners})
    if "authorization" not in winners:
        assert headers["Authorization"] == f"Bearer {KEY}"


names = st.sampled_from(["Accept", "accept", "ACCEPT", "X-Id", "x-id", "Idempotency-Key"])


@given(
    st.lists(st.tuples(names, header_values), max_size=5),
    st.lists(st.tuples(names, header_values), max_size=5),
)
def test_deprecated_set_merge_and_pop_header_still_work(
    start: list[tuple[str, str]], extra: list[tuple[str, str]]
) -> None:
    # Headers.merged replaces them (tests/core/test_headers_merged.py); they warn, and work.
    with pytest.warns(DeprecationWarning, match="Headers"):
        headers = dict(last_by_lower_name(start).values())
        merged = dict(headers)
        merge_headers(merged, dict(extra))
        expected = last_by_lower_name([*headers.items(), *dict(extra).items()])
        assert merged == dict(expected.values())
        for lower, (_, value) in expected.items():
            copy_ = dict(merged)
            assert pop_header(copy_, lower.upper()) == value
            assert all(k.lower() != lower for k in copy_)
            set_header(copy_, "X-New", "v")
            set_header(copy_, "x-new", "w")
            assert [k for k in copy_ if k.lower() == "x-new"] == ["x-new"]
            assert copy_["x-new"] == "w"
        assert pop_header(dict(merged), "Absent") is None
        spelled = {"accept": "a", "CONTENT-TYPE": "b", "X-Other": "c"}
        canonicalize_headers(spelled)
        assert spelled == {"Accept": "a", "Content-Type": "b", "X-Other": "c"}


@given(
    st.dictionaries(
        st.one_of(header_names, st.sampled_from(["Cookie", "x-api-key", "PROXY-AUTHORIZATION"])),
        header_values,
        max_size=6,
    )
)
def test_redact_headers(headers: dict[str, str]) -> None:
    redacted = redact_headers(headers)
    assert list(redacted) == list(headers)
    secret = {"authorization", "proxy-authorization", "cookie", "x-api-key"}
    for name, value in headers.items():
        assert redacted[name] == ("***" if name.lower() in secret else value)
    assert redact_headers(headers) is not headers


# --- build_request / Request ------------------------------------------------------------------


@given(
    method=st.sampled_from(["GET", "POST"]),
    body=st.none() | st.binary(max_size=20),
    retry_count=st.integers(min_value=0, max_value=10),
    idempotency_key=st.none() | st.uuids().map(str),
    stream=st.booleans(),
)
def test_build_request(
    method: str, body: bytes | None, retry_count: int, idempotency_key: str | None, stream: bool
) -> None:
    headers = base_headers(ClientOptions(api_key=KEY), PLATFORM)
    before = dict(headers)
    timeout = Timeout(total=3)
    req = build_request(
        method=method,
        url="https://api.aligne.ai/v1/embeddings",
        headers=headers,
        body=body,
        timeout=timeout,
        retry_count=retry_count,
        idempotency_key=idempotency_key,
        stream=stream,
    )
    assert headers == before  # the call's headers are not mutated
    assert req.headers["X-AligneAI-Retry-Count"] == str(retry_count)
    assert req.headers.get("Idempotency-Key") == idempotency_key
    assert ("Idempotency-Key" in req.headers) == (idempotency_key is not None)
    assert req.headers["Accept"] == ("text/event-stream" if stream else "application/json")
    assert ("Content-Type" in req.headers) == (body is not None)
    assert req.headers["Authorization"] == f"Bearer {KEY}"
    assert (req.method, req.body, req.timeout, req.stream) == (method, body, timeout, stream)
    assert KEY not in repr(req)
    assert "***" in repr(req)


def test_request_repr_hides_every_secret_header() -> None:
    req = Request(
        "POST",
        "https://api.aligne.ai/v1/embeddings",
        {"authorization": f"Bearer {KEY}", "Cookie": KEY, "X-Api-Key": KEY, "X-Other": "ok"},
        body=b"{}",
    )
    assert KEY not in repr(req)
    assert "x-other" in repr(req) and "https://api.aligne.ai/v1/embeddings" in repr(req)
    assert isinstance(req.headers, Headers) and req.headers["X-OTHER"] == "ok"


def test_a_pickled_request_carries_no_credentials() -> None:
    import pickle

    req = Request(
        "POST",
        "https://api.aligne.ai/v1/embeddings",
        {"Authorization": f"Bearer {KEY}", "x-api-key": KEY, "X-Trace": "t"},
        body=b"{}",
        timeout=Timeout(total=3),
        stream=True,
    )
    clone = pickle.loads(pickle.dumps(req))
    assert KEY not in repr(pickle.dumps(req))
    assert clone.headers == {"Authorization": "***", "x-api-key": "***", "X-Trace": "t"}
    assert (clone.method, clone.url, clone.body, clone.timeout, clone.stream) == (
        req.method,
        req.url,
        req.body,
        req.timeout,
        req.stream,
    )


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
json_objects = st.dictionaries(
    st.text(max_size=6),
    st.one_of(json_scalars, st.lists(json_scalars, max_size=3)),
    max_size=4,
)


@given(json_objects)
def test_encode_json_body_round_trips_compactly(body: dict[str, object]) -> None:
    import json

    encoded = encode_json_body(body)
    assert isinstance(encoded, bytes)
    assert json.loads(encoded) == body
    assert b"\n" not in encoded
    assert encode_json_body({"a": [1, 2]}) == b'{"a":[1,2]}'
    assert encode_json_body({"t": "é"}) == '{"t":"é"}'.encode()


def test_current_platform_describes_the_interpreter() -> None:
    import platform

    info = current_platform()
    assert info.runtime == platform.python_implementation()
    assert info.runtime_version == platform.python_version()
    assert info.os and info.arch
    headers = base_headers(ClientOptions(api_key=KEY), info)
    assert headers["X-AligneAI-Runtime-Version"] == platform.python_version()


@pytest.mark.parametrize("stream", [False, True])
def test_get_request_without_body_has_no_content_type(stream: bool) -> None:
    req = build_request(
        method="GET",
        url="https://api.aligne.ai/v1/models",
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        body=None,
        timeout=Timeout(),
        retry_count=0,
        idempotency_key=None,
        stream=stream,
    )
    assert "Content-Type" not in req.headers
    assert "Idempotency-Key" not in req.headers
