"""Tests of aligneai.core.options: Timeout coercion, base URL validation, client options."""

from __future__ import annotations

import math
import string
from urllib.parse import urlsplit

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aligneai.core.errors import (
    APIError,
    InvalidArgumentTypeError,
    InvalidArgumentValueError,
    MissingAPIKeyError,
)
from aligneai.core.options import (
    DEFAULT_BASE_URL,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_MAX_RETRIES,
    DEFAULT_READ_TIMEOUT,
    ClientOptions,
    Timeout,
    resolve_options,
    validate_base_url,
)

KEY = "sk-SECRET-123"

positive_seconds = st.one_of(
    st.integers(min_value=1, max_value=10**6),
    st.floats(min_value=1e-9, max_value=1e9, allow_nan=False, allow_infinity=False),
)
bad_type_values = st.one_of(
    st.booleans(),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.just(object()),
    st.complex_numbers(max_magnitude=10),
)
bad_number_values = st.one_of(
    st.integers(max_value=0),
    st.floats(max_value=0.0),
    st.sampled_from([math.nan, math.inf, -math.inf]),
)

# A DNS label: letters, digits and inner hyphens (a bare "-" is no host name).
label = st.from_regex(r"[abcxyz][abcxyz019-]{0,6}[abcxyz019]|[abcxyz]", fullmatch=True)
host = st.one_of(
    st.tuples(label, st.sampled_from(["", ".com", ".aligne.ai"])).map("".join),
    st.sampled_from(["localhost", "127.0.0.1", "[::1]", "api.aligne.ai"]),
)
segment = st.builds(
    str.__add__,
    st.sampled_from("abcXYZ019_~-"),
    st.text(alphabet="abcXYZ019._~-", max_size=7),
)
base_path = st.lists(segment, max_size=3).map(lambda segs: "".join("/" + s for s in segs))


@st.composite
def valid_base_urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http", "https"]))
    port = draw(st.none() | st.integers(min_value=1, max_value=65535))
    trailing = draw(st.sampled_from(["", "/", "//"]))
    netloc = draw(host) + ("" if port is None else f":{port}")
    return f"{scheme}://{netloc}{draw(base_path)}{trailing}"


# --- Timeout ----------------------------------------------------------------------------------


def test_timeout_defaults() -> None:
    t = Timeout()
    assert (t.connect, t.read, t.total) == (DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT, None)
    assert (DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT) == (5.0, 60.0)


@given(positive_seconds)
def test_coerce_number_sets_read_and_caps_connect(seconds: float) -> None:
    t = Timeout.coerce(seconds)
    assert t.read == float(seconds)
    assert t.connect == min(float(seconds), 5.0)
    assert t.total is None
    assert isinstance(t.read, float) and isinstance(t.connect, float)


def test_coerce_none_keeps_connect_limit_and_waits_forever_on_read() -> None:
    t = Timeout.coerce(None)
    assert t == Timeout(connect=5.0, read=None, total=None)


def test_coerce_timeout_fills_in_the_defaults() -> None:
    for timeout in (Timeout(), Timeout(connect=1, read=None, total=9.5), Timeout(read=0.25)):
        assert Timeout.coerce(timeout) == timeout
    full = Timeout(connect=1, read=None, total=9.5)
    assert Timeout.coerce(full) is full  # nothing to fill in


@given(st.one_of(bad_type_values, bad_number_values), st.sampled_from(["timeout", "custom"]))
def test_coerce_bad_values_name_the_argument(value: object, argument: str) -> None:
    bad_type = isinstance(value, bool) or not isinstance(value, (int, float))
    error = InvalidArgumentTypeError if bad_type else InvalidArgumentValueError
    with pytest.raises(error) as info:
        Timeout.coerce(value, argument=argument)  # type: ignore[arg-type]
    assert isinstance(info.value, TypeError if bad_type else ValueError)
    assert isinstance(info.value, APIError)
    assert info.value.argument == argument
    assert str(info.value).startswith(f"{argument}:")


@pytest.mark.parametrize("value", [10**400, -(10**400)], ids=["1e400", "-1e400"])
def test_coerce_huge_int_is_a_value_error_not_overflow(value: int) -> None:
    # float(10**400) raises OverflowError; the validator must report it as a bad argument.
    with pytest.raises(InvalidArgumentValueError) as info:
        Timeout.coerce(value)
    assert info.value.argument == "timeout"


@pytest.mark.parametrize(
    ("kwargs", "argument", "error"),
    [
        ({"connect": None}, "timeout.connect", InvalidArgumentTypeError),
        ({"connect": "5"}, "timeout.connect", InvalidArgumentTypeError),
        ({"connect": True}, "timeout.connect", InvalidArgumentTypeError),
        ({"connect": 0}, "timeout.connect", InvalidArgumentValueError),
        ({"connect": math.inf}, "timeout.connect", InvalidArgumentValueError),
        ({"read": "60"}, "timeout.read", InvalidArgumentTypeError),
        ({"read": -1}, "timeout.read", InvalidArgumentValueError),
        ({"read": math.nan}, "timeout.read", InvalidArgumentValueError),
        ({"total": False}, "timeout.total", InvalidArgumentTypeError),
        ({"total": 0.0}, "timeout.total", InvalidArgumentValueError),
        ({"total": -math.inf}, "timeout.total", InvalidArgumentValueError),
    ],
)
def test_timeout_fields_are_validated(
    kwargs: dict[str, object], argument: str, error: type[Exception]
) -> None:
    with pytest.raises(error) as info:
        Timeout(**kwargs)  # type: ignore[arg-type]
    assert info.value.argument == argument  # type: ignore[attr-defined]
    assert argument in str(info.value)


@given(
    st.builds(
        Timeout,
        connect=positive_seconds,
        read=st.none() | positive_seconds,
        total=st.none() | positive_seconds,
    ),
    st.floats(min_value=-10, max_value=1e6, allow_nan=False),
)
def test_within_never_exceeds_remaining(timeout: Timeout, remaining: float) -> None:
    assert timeout.within(None) is timeout
    limited = timeout.within(remaining)
    bound = max(remaining, 1e-3)
    assert limited.total == bound
    assert limited.connect == min(timeout.connect, bound)
    assert limited.read is not None and limited.read <= bound
    if timeout.read is not None:
        assert limited.read == min(timeout.read, bound)


# --- validate_base_url ------------------------------------------------------------------------


@given(valid_base_urls())
def test_valid_urls_are_accepted_without_trailing_slash(url: str) -> None:
    result = validate_base_url(url)
    assert result == url.rstrip("/")
    assert not result.endswith("/")
    parts, original = urlsplit(result), urlsplit(url)
    assert (parts.scheme, parts.hostname, parts.port) == (
        original.scheme,
        original.hostname,
        original.port,
    )


@pytest.mark.parametrize("scheme", ["ftp", "ws", "wss", "file", "h", "httpx", "sftp"])
def test_non_http_schemes_are_rejected(scheme: str) -> None:
    with pytest.raises(InvalidArgumentValueError) as info:
        validate_base_url(f"{scheme}://api.aligne.ai/v1")
    assert info.value.argument == "base_url"


@pytest.mark.parametrize(
    "url",
    [
        "",
        "api.aligne.ai/v1",
        "/v1",
        "https://",
        "https:///v1",
        "https://user:pw@api.aligne.ai/v1",
        "https://user@api.aligne.ai",
        "https://api.aligne.ai/v1?x=1",
        "https://api.aligne.ai/v1#frag",
        "https://api.aligne.ai:99999/v1",
        "https://api.aligne.ai:port/v1",
        "https://[::1/v1",
    ],
)
def test_invalid_urls_are_rejected(url: str) -> None:
    with pytest.raises(InvalidArgumentValueError) as info:
        validate_base_url(url, "my_url")
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith("my_url:")


@pytest.mark.parametrize("url", ["https://api.aligne.ai/v1?", "https://api.aligne.ai/v1#"])
def test_empty_query_or_fragment_marker_is_rejected(url: str) -> None:
    # urlsplit reports an empty query/fragment for a bare "?" / "#", but join_url would then
    # put the operation path into the query: "https://api.aligne.ai/v1?/embeddings".
    with pytest.raises(InvalidArgumentValueError):
        validate_base_url(url)


@given(st.sampled_from(["https://api.aligne.ai", "http://localhost:8000/v1"]), st.text(max_size=8))
def test_accepted_urls_never_hide_control_characters(url: str, suffix: str) -> None:
    # urlsplit silently drops tab/CR/LF before parsing, so the check must look at the raw text:
    # an accepted URL must not carry control characters (header injection) or ?/# markers.
    candidate = url.rstrip("/") + "/" + suffix
    try:
        result = validate_base_url(candidate)
    except InvalidArgumentValueError:
        return
    assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in result), repr(result)
    assert "?" not in result and "#" not in result


CONTROL_CHARACTERS = ["\r", "\n", "\t", "\x00", "\x0b", "\x0c", "\x1b", "\x1f", "\x7f"]


@pytest.mark.parametrize("char", CONTROL_CHARACTERS, ids=ascii)
@pytest.mark.parametrize(
    "template",
    [
        "https://api.aligne.ai/v1{c}",
        "https://api.aligne.ai/{c}v1",
        "https://api.{c}aligne.ai/v1",
        "https://api.aligne.ai/v1{c}X-Injected: 1",
        "{c}https://api.aligne.ai/v1",
    ],
)
def test_control_characters_are_rejected_not_stripped(template: str, char: str) -> None:
    # urlsplit silently drops tab/CR/LF: a validator that parsed first and returned the parsed
    # URL would "accept" these. The raw text must be refused, naming the argument.
    url = template.format(c=char)
    with pytest.raises(InvalidArgumentValueError) as info:
        validate_base_url(url)
    assert info.value.argument == "base_url"
    if not template.startswith("{c}"):  # a leading one already fails as "not an http(s) URL"
        assert "control characters" in str(info.value)
    with pytest.raises(InvalidArgumentValueError) as info:
        ClientOptions(api_key=KEY, base_url=url)
    assert info.value.argument == "base_url"


@pytest.mark.parametrize("value", [None, 443, b"https://api.aligne.ai", ["https://x"]])
def test_non_str_url_is_a_type_error(value: object) -> None:
    with pytest.raises(InvalidArgumentTypeError) as info:
        validate_base_url(value)
    assert info.value.argument == "base_url"


# --- ClientOptions ----------------------------------------------------------------------------

api_keys = st.text(alphabet=string.ascii_letters + string.digits + "-_.~+/=", min_size=6).map(
    lambda s: "sk-" + s
)


@given(api_keys, st.sampled_from([None, "http://localhost:8000", "https://eu.aligne.ai/v1"]))
def test_client_options_repr_never_shows_the_key(key: str, url: str | None) -> None:
    options = ClientOptions(api_key=key, base_url=url or DEFAULT_BASE_URL)
    assert key not in repr(options)
    assert key not in str(options)
    assert "api_key='***'" in repr(options)
    assert options.api_key == key


def test_client_options_defaults() -> None:
    o = ClientOptions(api_key=KEY)
    assert o.base_url == DEFAULT_BASE_URL == "https://api.aligne.ai/v1"
    assert o.timeout == Timeout()
    assert o.max_retries == DEFAULT_MAX_RETRIES == 2
    assert o.max_response_bytes == DEFAULT_MAX_RESPONSE_BYTES
    assert dict(o.default_headers) == {}


@pytest.mark.parametrize(
    ("kwargs", "argument", "error"),
    [
        ({"api_key": None}, "api_key", InvalidArgumentTypeError),
        ({"api_key": b"sk"}, "api_key", InvalidArgumentTypeError),
        ({"api_key": ""}, "api_key", InvalidArgumentValueError),
        ({"api_key": "   "}, "api_key", InvalidArgumentValueError),
        ({"api_key": "sk-1\r\nX-Evil: 1"}, "api_key", InvalidArgumentValueError),
        ({"api_key": "sk\0"}, "api_key", InvalidArgumentValueError),
        ({"api_key": KEY, "max_retries": -1}, "max_retries", InvalidArgumentValueError),
        ({"api_key": KEY, "max_retries": True}, "max_retries", InvalidArgumentTypeError),
        ({"api_key": KEY, "max_retries": 2.0}, "max_retries", InvalidArgumentTypeError),
        (
            {"api_key": KEY, "max_response_bytes": 0},
            "max_response_bytes",
            InvalidArgumentValueError,
        ),
        (
            {"api_key": KEY, "max_response_bytes": "1"},
            "max_response_bytes",
            InvalidArgumentTypeError,
        ),
        ({"api_key": KEY, "base_url": "ftp://x"}, "base_url", InvalidArgumentValueError),
        ({"api_key": KEY, "default_headers": [("a", "b")]}, "default_headers", TypeError),
        ({"api_key": KEY, "default_headers": {"a": 1}}, "default_headers", TypeError),
        ({"api_key": KEY, "default_headers": {"a": "b\r\nc: d"}}, "default_headers", ValueError),
        ({"api_key": KEY, "default_headers": {"a:b": "c"}}, "default_headers", ValueError),
        ({"api_key": KEY, "default_headers": {"": "c"}}, "default_headers", ValueError),
    ],
)
def test_client_options_validation(
    kwargs: dict[str, object], argument: str, error: type[Exception]
) -> None:
    with pytest.raises(error) as info:
        ClientOptions(**kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, APIError)
    assert info.value.argument == argument  # type: ignore[attr-defined]
    assert KEY not in str(info.value)


def test_replace_validates_like_the_constructor() -> None:
    o = ClientOptions(api_key=KEY)
    assert o.replace(max_retries=5).max_retries == 5
    assert o.replace(max_retries=5).api_key == KEY
    with pytest.raises(InvalidArgumentValueError):
        o.replace(max_retries=-3)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        o.max_retries = 3  # type: ignore[misc]


# --- resolve_options --------------------------------------------------------------------------


def _resolve(**overrides: object) -> ClientOptions:
    kwargs: dict[str, object] = {
        "api_key": None,
        "base_url": None,
        "timeout": Timeout(),
        "max_retries": 2,
        "default_headers": None,
        "max_response_bytes": DEFAULT_MAX_RESPONSE_BYTES,
        "environ": {},
    }
    kwargs.update(overrides)
    return resolve_options(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("environ", [{}, {"ALIGNEAI_API_KEY": ""}, {"OTHER": "x"}])
def test_missing_key_names_the_environment_variable(environ: dict[str, str]) -> None:
    with pytest.raises(MissingAPIKeyError) as info:
        _resolve(environ=environ)
    assert "ALIGNEAI_API_KEY" in str(info.value)


def test_environment_fallbacks_and_precedence() -> None:
    env = {"ALIGNEAI_API_KEY": "sk-env", "ALIGNEAI_BASE_URL": "http://localhost:8000/v1/"}
    o = _resolve(environ=env)
    assert (o.api_key, o.base_url) == ("sk-env", "http://localhost:8000/v1")
    o = _resolve(environ=env, api_key=KEY, base_url="https://eu.aligne.ai/v2")
    assert (o.api_key, o.base_url) == (KEY, "https://eu.aligne.ai/v2")
    o = _resolve(environ={"ALIGNEAI_API_KEY": "sk-env", "ALIGNEAI_BASE_URL": ""})
    assert o.base_url == DEFAULT_BASE_URL


@given(st.one_of(st.none(), positive_seconds, bad_type_values, bad_number_values))
def test_resolve_coerces_or_rejects_the_timeout(value: object) -> None:
    try:
        expected = Timeout.coerce(value)  # type: ignore[arg-type]
    except (InvalidArgumentTypeError, InvalidArgumentValueError):
        with pytest.raises((InvalidArgumentTypeError, InvalidArgumentValueError)) as info:
            _resolve(api_key=KEY, timeout=value)
        assert info.value.argument == "timeout"  # type: ignore[attr-defined]
    else:
        assert _resolve(api_key=KEY, timeout=value).timeout == expected
