"""Issue 12 item 4: bad input gives our error, naming the argument, before anything is sent.

Every case runs on both clients (the `api` fixture). Before the fix these raised a raw
`UnicodeEncodeError`, `TypeError` or `ValueError` from the encoder or http.client, or were
sent (the async client sent non-Latin-1 headers, ``extra_query={"a": {"x": 1}}`` went out as
``a=x``, ``base_url="http://exa mple.com/v1"`` was accepted).
"""

from __future__ import annotations

import inspect
import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pytest

from aligneai import InvalidArgumentError, InvalidArgumentTypeError, InvalidArgumentValueError

V = TypeError, ValueError

CALL_CASES: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    # (id, create() keyword arguments, builtin, the argument named)
    ("lone-surrogate", {"inputs": "a\ud800b"}, ValueError, "inputs"),
    ("lone-surrogate-item", {"inputs": ["ok", "a\udfffb"]}, ValueError, "inputs[1]"),
    ("model-surrogate", {"inputs": "a", "model": "m\ud800"}, ValueError, "model"),
    ("emoji-header", {"inputs": "a", "extra_headers": {"X-Mood": "\U0001f600"}}, ValueError,
     "extra_headers"),
    ("curly-quotes-header", {"inputs": "a", "extra_headers": {"Authorization": "\u201csk\u201d"}},
     ValueError, "extra_headers"),
    ("crlf-injection", {"inputs": "a", "extra_headers": {"X-A": "1\r\nX-Injected: 1"}},
     ValueError, "extra_headers"),
    ("bare-lf", {"inputs": "a", "extra_headers": {"X-A": "1\nX-Injected: 1"}}, ValueError,
     "extra_headers"),
    ("header-name-space", {"inputs": "a", "extra_headers": {"X A": "1"}}, ValueError,
     "extra_headers"),
    ("content-length-header", {"inputs": "a", "extra_headers": {"Content-Length": "5"}},
     ValueError, "extra_headers"),
    ("transfer-encoding-header", {"inputs": "a", "extra_headers": {"transfer-encoding": "chunked"}},
     ValueError, "extra_headers"),
    ("connection-header", {"inputs": "a", "extra_headers": {"Connection": "close"}}, ValueError,
     "extra_headers"),
    ("header-value-int", {"inputs": "a", "extra_headers": {"X-A": 1}}, TypeError, "extra_headers"),
    ("extra-body-object", {"inputs": "a", "extra_body": {"k": object()}}, TypeError,
     "extra_body['k']"),
    ("extra-body-nan", {"inputs": "a", "extra_body": {"k": float("nan")}}, ValueError,
     "extra_body['k']"),
    ("extra-body-inf-nested", {"inputs": "a", "extra_body": {"k": {"d": [1, float("inf")]}}},
     ValueError, "extra_body['k']['d'][1]"),
    ("extra-body-set", {"inputs": "a", "extra_body": {"k": {1, 2}}}, TypeError, "extra_body['k']"),
    ("extra-body-bytes", {"inputs": "a", "extra_body": {"k": b"x"}}, TypeError, "extra_body['k']"),
    ("extra-body-int-key", {"inputs": "a", "extra_body": {"k": {1: "x"}}}, TypeError,
     "extra_body['k']"),
    ("extra-body-surrogate", {"inputs": "a", "extra_body": {"k": ["\ud800"]}}, ValueError,
     "extra_body['k'][0]"),
    ("extra-body-huge-int", {"inputs": "a", "extra_body": {"k": 2**70}}, ValueError,
     "extra_body['k']"),
    ("extra-body-shadows-inputs", {"inputs": "a", "extra_body": {"inputs": ["b"]}}, ValueError,
     "extra_body['inputs']"),
    ("extra-body-shadows-dimensions", {"inputs": "a", "extra_body": {"dimensions": 0}},
     ValueError, "extra_body['dimensions']"),
    ("extra-query-mapping", {"inputs": "a", "extra_query": {"a": {"x": 1}}}, TypeError,
     "extra_query['a']"),
    ("extra-query-nested-list", {"inputs": "a", "extra_query": {"a": [1, [2]]}}, TypeError,
     "extra_query['a'][1]"),
    ("extra-query-nan", {"inputs": "a", "extra_query": {"a": float("nan")}}, ValueError,
     "extra_query['a']"),
    ("extra-query-object", {"inputs": "a", "extra_query": {"a": object()}}, TypeError,
     "extra_query['a']"),
    ("extra-query-surrogate", {"inputs": "a", "extra_query": {"a": "\ud800"}}, ValueError,
     "extra_query['a']"),
    ("dimensions-bool", {"inputs": "a", "dimensions": True}, TypeError, "dimensions"),
    ("dimensions-float", {"inputs": "a", "dimensions": 8.0}, TypeError, "dimensions"),
    ("dimensions-numpy-float", {"inputs": "a", "dimensions": np.float64(8)}, TypeError,
     "dimensions"),
    ("dimensions-numpy-bool", {"inputs": "a", "dimensions": np.bool_(True)}, TypeError,
     "dimensions"),
    ("dimensions-numpy-zero", {"inputs": "a", "dimensions": np.int32(0)}, ValueError,
     "dimensions"),
    ("timeout-nan", {"inputs": "a", "timeout": float("nan")}, ValueError, "timeout"),
    ("timeout-inf", {"inputs": "a", "timeout": float("inf")}, ValueError, "timeout"),
    ("timeout-negative", {"inputs": "a", "timeout": -1}, ValueError, "timeout"),
    ("timeout-overflows-sockets", {"inputs": "a", "timeout": 1e10}, ValueError, "timeout"),
    ("timeout-bool", {"inputs": "a", "timeout": True}, TypeError, "timeout"),
    ("max-retries-float", {"inputs": "a", "max_retries": 1.0}, TypeError, "max_retries"),
    ("max-retries-bool", {"inputs": "a", "max_retries": True}, TypeError, "max_retries"),
    ("max-retries-negative-numpy", {"inputs": "a", "max_retries": np.int64(-1)}, ValueError,
     "max_retries"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "builtin", "argument"),
    [case[1:] for case in CALL_CASES],
    ids=[case[0] for case in CALL_CASES],
)
def test_bad_call_arguments(
    api: Any, kwargs: dict[str, Any], builtin: type[Exception], argument: str
) -> None:
    for call in (api.client.embeddings.create, api.client.embeddings.with_raw_response.create):
        with pytest.raises(builtin) as info:
            call(**kwargs)
        assert isinstance(info.value, InvalidArgumentError)
        assert info.value.argument == argument
        assert str(info.value).startswith(f"{argument}: ")
    if "inputs" in kwargs and "extra_body" not in kwargs:
        with pytest.raises(builtin):
            api.client.embeddings.create(stream=True, **kwargs)
    assert api.server.count == 0


CLIENT_CASES: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    ("api-key-curly-quotes", {"api_key": "\u201csk-abc\u201d"}, ValueError, "api_key"),
    ("api-key-emoji", {"api_key": "sk-\U0001f600"}, ValueError, "api_key"),
    ("api-key-space", {"api_key": "sk-abc "}, ValueError, "api_key"),
    ("api-key-crlf", {"api_key": "sk\r\nX: 1"}, ValueError, "api_key"),
    ("default-headers-emoji", {"default_headers": {"X-A": "\U0001f600"}}, ValueError,
     "default_headers"),
    ("default-headers-latin1", {"default_headers": {"X-A": "caf\u00e9"}}, ValueError,
     "default_headers"),
    ("default-headers-crlf", {"default_headers": {"X-A": "a\r\nb: c"}}, ValueError,
     "default_headers"),
    ("base-url-space-in-host", {"base_url": "http://exa mple.com/v1"}, ValueError, "base_url"),
    ("base-url-space-in-path", {"base_url": "http://example.com/v 1"}, ValueError, "base_url"),
    ("base-url-empty-label", {"base_url": "http://example..com/v1"}, ValueError, "base_url"),
    ("base-url-bad-char", {"base_url": "http://exa$mple.com/v1"}, ValueError, "base_url"),
    ("base-url-bad-ipv6", {"base_url": "http://[::g]/v1"}, ValueError, "base_url"),
    ("base-url-non-ascii-host", {"base_url": "http://b\u00fccher.de/v1"}, ValueError, "base_url"),
    ("base-url-port-0", {"base_url": "http://localhost:0/v1"}, ValueError, "base_url"),
    ("timeout-overflows-sockets", {"timeout": 1e12}, ValueError, "timeout"),
    ("max-retries-float", {"max_retries": 2.0}, TypeError, "max_retries"),
    ("max-response-bytes-float", {"max_response_bytes": 1e6}, TypeError, "max_response_bytes"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "builtin", "argument"),
    [case[1:] for case in CLIENT_CASES],
    ids=[case[0] for case in CLIENT_CASES],
)
def test_bad_client_arguments(
    api: Any, kwargs: dict[str, Any], builtin: type[Exception], argument: str
) -> None:
    with pytest.raises(builtin) as info:
        api.make(**kwargs)
    assert isinstance(info.value, (InvalidArgumentTypeError, InvalidArgumentValueError))
    assert info.value.argument == argument
    # The key (or a header value, which may be a credential) never appears in the message.
    for value in (kwargs.get("api_key"), *(kwargs.get("default_headers") or {}).values()):
        if value:
            assert value not in str(info.value)
    if "default_headers" in kwargs or "timeout" in kwargs or "max_retries" in kwargs:
        with pytest.raises(builtin):
            api.client.with_options(**kwargs)
    assert api.server.count == 0


def _run(api: Any, value: Any) -> Any:
    # The harness drives the async facades it knows; a newer one (models.with_raw_response)
    # may hand back a coroutine: run it on the harness's loop.
    return api.loop.run_until_complete(value) if inspect.isawaitable(value) else value


def test_bad_model_ids(api: Any) -> None:
    for call in (api.client.models.retrieve, api.client.models.with_raw_response.retrieve):
        with pytest.raises(InvalidArgumentValueError) as info:
            _run(api, call("m\ud800"))
        assert info.value.argument == "model_id"
    assert api.server.count == 0


def test_numpy_integers_are_accepted_like_ints(api: Any, wire: Any) -> None:
    api.server.reply("/embeddings", wire.json_response(wire.embeddings_payload([[0.5, 1.0]])))
    client = api.make(max_retries=np.int64(1), max_response_bytes=np.int32(1 << 20))
    client.embeddings.create(inputs="a", dimensions=np.int64(2), max_retries=np.uint8(0))
    assert json.loads(api.server.requests[-1].get_data())["dimensions"] == 2
    assert type(json.loads(api.server.requests[-1].get_data())["dimensions"]) is int


def test_query_lists_are_repeated_parameters(api: Any, wire: Any) -> None:
    api.server.reply("/embeddings", wire.json_response(wire.embeddings_payload([[0.5, 1.0]])))
    api.client.embeddings.create(
        inputs="a",
        extra_query={"tag": ["x", "y"], "flag": [True, False], "n": np.int16(3), "none": None},
        extra_body={"meta": {"ids": (1, 2), "score": np.float32(0.5), "ok": np.bool_(True)}},
    )
    request = api.server.requests[-1]
    assert parse_qsl(urlsplit(request.url).query) == [
        ("tag", "x"), ("tag", "y"), ("flag", "true"), ("flag", "false"), ("n", "3"),
    ]  # fmt: skip
    assert json.loads(request.get_data())["meta"] == {"ids": [1, 2], "score": 0.5, "ok": True}


def test_printable_ascii_header_values_and_names_pass(api: Any, wire: Any) -> None:
    api.server.reply("/embeddings", wire.json_response(wire.embeddings_payload([[0.5, 1.0]])))
    value = "".join(chr(c) for c in range(0x21, 0x7F)) + " \tz"
    api.client.embeddings.create(inputs="a", extra_headers={"X-All-Token!#$%&'*+.^`|~": value})
    assert api.server.requests[-1].headers["X-All-Token!#$%&'*+.^`|~"] == value
