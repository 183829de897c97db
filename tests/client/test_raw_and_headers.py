"""Issue 12 item 12 at run time: raw responses of every resource, headers read in any case.

Both clients (the `api` fixture). Before the fix ``client.models`` had no ``with_raw_response``
and ``raw.headers.get("Content-Type")`` was None (a plain dict with lower-case keys).
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

import aligneai
from aligneai import APIStatusError, CreateEmbeddingResponse, Headers, Model, ModelList, RawResponse


def _run(api: Any, value: Any) -> Any:
    # The harness drives the async facades it knows; a newer one (models.with_raw_response)
    # may hand back a coroutine: run it on the harness's loop.
    return api.loop.run_until_complete(value) if inspect.isawaitable(value) else value


def test_raw_create_headers_ignore_case(api: Any, wire: Any) -> None:
    payload = wire.embeddings_payload([[0.5, 1.0]])
    api.server.reply("/embeddings", wire.json_response(payload, headers={"X-Request-ID": "r-1"}))
    raw = api.client.embeddings.with_raw_response.create(inputs="a")
    assert isinstance(raw, RawResponse) and isinstance(raw.headers, Headers)
    assert raw.headers.get("Content-Type") == raw.headers["content-type"] == "application/json"
    assert "CONTENT-TYPE" in raw.headers
    assert raw.headers["X-Request-Id"] == raw.request_id == "r-1"
    assert isinstance(raw.parse(), CreateEmbeddingResponse)


def test_raw_models_list_and_retrieve(api: Any, wire: Any) -> None:
    api.server.reply(
        "/models", wire.json_response({"object": "list", "data": [wire.model_payload()]})
    )
    api.server.reply("/models/aligne-embed-1", wire.json_response(wire.model_payload()))
    raw = api.client.models.with_raw_response
    listed = _run(api, raw.list(extra_headers={"X-Trace": "t"}))
    one = _run(api, raw.retrieve("aligne-embed-1"))
    assert listed.status_code == one.status_code == 200
    assert isinstance(listed.parse(), ModelList) and listed.parse().data[0].id == "aligne-embed-1"
    assert isinstance(one.parse(), Model) and one.parse() == listed.parse().data[0]
    assert one.headers.get("Content-Type") == "application/json"
    assert api.server.requests[0].headers["X-Trace"] == "t"


def test_raw_create_matrix(api: Any, wire: Any) -> None:
    payload = wire.embeddings_payload([[0.5, 1.0], [0.25, -2.0]], fmt="base64")
    api.server.reply("/embeddings", wire.json_response(payload))
    raw = api.client.embeddings.with_raw_response.create_matrix(inputs=["a", "b"])
    assert raw.status_code == 200 and raw.headers.get("Content-Type") == "application/json"
    assert raw.parse().matrix.tolist() == [[0.5, 1.0], [0.25, -2.0]]


def test_status_error_headers_ignore_case(api: Any, wire: Any) -> None:
    api.server.reply(
        "/embeddings",
        wire.json_response(
            wire.error_payload(), status=429, headers={"Retry-After": "120", "X-Request-ID": "r-9"}
        ),
    )
    with pytest.raises(APIStatusError) as info:
        api.make(max_retries=0).embeddings.create(inputs="a")
    err = info.value
    assert isinstance(err.headers, Headers)
    assert err.headers.get("Retry-After") == err.headers["retry-after"] == "120"
    assert err.request_id == "r-9"
    assert err.response is not None and err.response.headers.get("X-REQUEST-ID") == "r-9"


@pytest.mark.parametrize("flag", [False, True])
def test_stream_given_as_a_plain_bool(api: Any, wire: Any, flag: bool) -> None:
    vectors = [[0.5, 1.0]]
    if flag:
        api.server.reply("/embeddings", wire.sse_response(wire.sse_body(vectors)))
    else:
        api.server.reply("/embeddings", wire.json_response(wire.embeddings_payload(vectors)))
    result = api.client.embeddings.create(inputs="a", stream=flag)
    items = list(result) if flag else result.data
    assert [item.embedding for item in items] == vectors
    assert isinstance(result, CreateEmbeddingResponse) != flag


def test_headers_is_exported() -> None:
    assert aligneai.Headers is Headers
