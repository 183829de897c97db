"""Successful calls of both clients against a loopback server: what is sent, what comes back.

Every test here runs twice, against `AligneAI` and `AsyncAligneAI` (see the `api` fixture).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import platform

import pytest
from werkzeug.wrappers import Response

import aligneai
from aligneai import (
    APIError,
    APIResponseValidationError,
    APIStatusError,
    CreateEmbeddingResponse,
    Embedding,
    MissingAPIKeyError,
    Model,
    ModelList,
    NotFoundError,
    RawResponse,
    ResponseTooLargeError,
    Usage,
)
from aligneai.transports.urllib3_transport import Urllib3Transport

# -- the request body ------------------------------------------------------------------------


def test_string_input_default_body(api, server):
    server.reply_embeddings(vectors=[[1.0, 2.0]], fmt="base64")

    api.client.embeddings.create(inputs="hello world")

    assert server.json_bodies() == [{"inputs": "hello world", "encoding_format": "base64"}]
    request = server.requests[0]
    assert request.method == "POST"
    assert request.path == "/v1/embeddings"
    assert request.headers["Content-Type"] == "application/json"


def test_list_input_model_and_dimensions_are_sent(api, server):
    server.reply_embeddings(fmt="float")

    api.client.embeddings.create(
        inputs=["a", "b", "c"], model="aligne-embed-2", dimensions=3, encoding_format="float"
    )

    assert server.json_bodies() == [
        {
            "inputs": ["a", "b", "c"],
            "model": "aligne-embed-2",
            "dimensions": 3,
            "encoding_format": "float",
        }
    ]


def test_tuple_input_is_sent_as_a_list(api, server):
    server.reply_embeddings()

    api.client.embeddings.create(inputs=("a", "b", "c"))

    assert server.json_bodies()[0]["inputs"] == ["a", "b", "c"]


def test_non_ascii_input_round_trips(api, server):
    server.reply_embeddings(vectors=[[1.0]])

    api.client.embeddings.create(inputs=["héllo ✓ 漢字"])

    assert server.json_bodies()[0]["inputs"] == ["héllo ✓ 漢字"]


# -- the response ----------------------------------------------------------------------------


def test_base64_and_float_answers_give_the_same_floats(api, server, wire):
    server.reply_embeddings(fmt="base64")
    from_base64 = api.client.embeddings.create(inputs=["a", "b", "c"])
    server.httpserver.clear()
    server.reply_embeddings(fmt="float")
    from_float = api.client.embeddings.create(inputs=["a", "b", "c"], encoding_format="float")

    assert [item.embedding for item in from_base64.data] == wire.VECTORS
    assert [item.embedding for item in from_float.data] == wire.VECTORS
    assert all(type(x) is float for item in from_base64.data for x in item.embedding)


def test_response_fields(api, server):
    server.reply_embeddings(model="aligne-embed-1", tokens=9)

    response = api.client.embeddings.create(inputs=["a", "b", "c"])

    assert isinstance(response, CreateEmbeddingResponse)
    assert response.object == "list"
    assert response.model == "aligne-embed-1"
    assert response.usage == Usage(prompt_tokens=9, total_tokens=9)
    assert all(isinstance(item, Embedding) for item in response.data)
    assert [item.object for item in response.data] == ["embedding"] * 3


@pytest.mark.parametrize("fmt", ["float", "base64"])
def test_data_is_ordered_by_index_when_the_server_shuffles_it(api, server, wire, fmt):
    server.reply_embeddings(order=[2, 0, 1], fmt=fmt)

    response = api.client.embeddings.create(inputs=["a", "b", "c"])

    assert [item.index for item in response.data] == [0, 1, 2]
    assert [item.embedding for item in response.data] == wire.VECTORS


def test_json_dumps_to_dict_and_to_json(api, server, wire):
    server.reply_embeddings(fmt="base64", order=[1, 0, 2], tokens=4)

    response = api.client.embeddings.create(inputs=["a", "b", "c"])

    expected = wire.embeddings_payload(tokens=4)  # the float form, in index order
    assert json.loads(json.dumps(response)) == expected
    assert json.loads(response.to_json()) == expected
    plain = response.to_dict()
    assert plain == expected
    assert type(plain) is dict
    assert type(plain["data"][0]) is dict
    plain["data"][0]["embedding"][0] = 99.0  # a deep copy: the response is unchanged
    assert response.data[0].embedding[0] == wire.VECTORS[0][0]


def test_unknown_response_fields_are_ignored(api, server, wire):
    payload = wire.embeddings_payload()
    payload["system_fingerprint"] = "fp_1"
    payload["data"][0]["extra"] = True
    server.reply("/embeddings", wire.json_response(payload))

    response = api.client.embeddings.create(inputs=["a", "b", "c"])

    assert [item.embedding for item in response.data] == wire.VECTORS


# -- models ----------------------------------------------------------------------------------


def test_models_list(api, server, wire):
    payload = {
        "object": "list",
        "data": [wire.model_payload("m-small", 256), wire.model_payload("m-large", 3072)],
    }
    server.reply("/models", wire.json_response(payload))

    models = api.client.models.list()

    assert isinstance(models, ModelList)
    assert [(m.id, m.dimensions) for m in models.data] == [("m-small", 256), ("m-large", 3072)]
    assert all(isinstance(m, Model) for m in models.data)
    request = server.requests[0]
    assert request.method == "GET"
    assert request.path == "/v1/models"
    assert request.get_data() == b""


def test_models_retrieve(api, server, wire):
    server.reply("/models/aligne-embed-1", wire.json_response(wire.model_payload()))

    model = api.client.models.retrieve("aligne-embed-1")

    assert model == Model(
        id="aligne-embed-1", created=1700000000, owned_by="aligneai", dimensions=3
    )
    assert server.requests[0].method == "GET"


def test_models_retrieve_quotes_a_slash_in_the_id(api, server, wire):
    # werkzeug decodes %2F in the path it matches, so check the raw request line too.
    server.reply("/models/org/my model", wire.json_response(wire.model_payload("org/my model")))

    model = api.client.models.retrieve("org/my model")

    assert model.id == "org/my model"
    assert server.requests[0].environ["RAW_URI"] == "/v1/models/org%2Fmy%20model"


def test_models_retrieve_unknown_id_raises_not_found(api, server, wire):
    body = wire.error_payload("no such model", "not_found_error", "model_not_found", "model")
    server.reply("/models/nope", wire.json_response(body, 404))

    with pytest.raises(NotFoundError) as info:
        api.client.models.retrieve("nope")

    assert info.value.code == "model_not_found"
    assert server.count == 1


# -- headers ---------------------------------------------------------------------------------


def _check_common_headers(headers) -> None:
    assert headers["Authorization"] == "Bearer sk-test-key-123"
    assert headers["User-Agent"] == f"aligneai-python/{aligneai.__version__}"
    assert headers["X-AligneAI-Lang"] == "python"
    assert headers["X-AligneAI-Package-Version"] == aligneai.__version__
    assert headers["X-AligneAI-OS"] == platform.system()
    assert headers["X-AligneAI-Arch"] == platform.machine()
    assert headers["X-AligneAI-Runtime"] == platform.python_implementation()
    assert headers["X-AligneAI-Runtime-Version"] == platform.python_version()
    assert headers["X-AligneAI-Retry-Count"] == "0"
    assert headers["Accept"] == "application/json"


def test_headers_on_post_and_get(api, server, wire):
    server.reply_embeddings()
    server.reply("/models", wire.json_response({"object": "list", "data": []}))

    api.client.embeddings.create(inputs="a")
    api.client.models.list()

    post, get = server.requests
    _check_common_headers(post.headers)
    _check_common_headers(get.headers)
    assert post.headers["Idempotency-Key"].startswith("aligneai-")
    assert "Idempotency-Key" not in get.headers
    assert "Content-Type" not in get.headers


def test_idempotency_key_differs_between_calls(api, server):
    server.reply_embeddings()

    api.client.embeddings.create(inputs="a")
    api.client.embeddings.create(inputs="a")

    keys = [request.headers["Idempotency-Key"] for request in server.requests]
    assert len(keys) == 2
    assert keys[0] != keys[1]


def test_default_headers_and_extras_reach_the_server(api, server):
    server.reply_embeddings()
    client = api.make(default_headers={"X-Team": "search", "X-Env": "test"})

    client.embeddings.create(
        inputs=["a", "b", "c"],
        extra_headers={"X-Trace": "t-1", "X-Env": "override"},
        extra_query={"tenant": "acme", "debug": True},
        extra_body={"user": "u-42", "truncate": "end"},
    )

    request = server.requests[0]
    assert request.headers["X-Team"] == "search"
    assert request.headers["X-Trace"] == "t-1"
    assert request.headers.getlist("X-Env") == ["override"]
    assert request.args.to_dict() == {"tenant": "acme", "debug": "true"}
    body = server.json_bodies()[0]
    assert body["user"] == "u-42"
    assert body["truncate"] == "end"
    assert body["inputs"] == ["a", "b", "c"]
    _check_common_headers(request.headers)


@pytest.mark.parametrize(
    ("default_headers", "extra_headers", "name", "expected"),
    [
        ({"X-Team": "search"}, {"x-team": "ranking"}, "X-Team", "ranking"),
        ({"x-team": "search"}, {"X-Team": "ranking"}, "X-Team", "ranking"),
        (None, {"Idempotency-Key": "my-key-1"}, "Idempotency-Key", "my-key-1"),
        (None, {"idempotency-key": "my-key-1"}, "Idempotency-Key", "my-key-1"),
        ({"user-agent": "my-app/2"}, None, "User-Agent", "my-app/2"),
    ],
    ids=["extra-lower", "default-lower", "idempotency-key", "idempotency-key-lower", "ua"],
)
def test_caller_headers_replace_others_whatever_their_case(
    api, server, default_headers, extra_headers, name, expected
):
    # HTTP header names are case-insensitive: a caller's value must replace the one it names,
    # not be sent next to it (the WSGI server joins repeated headers with a comma).
    server.reply_embeddings()
    client = api.make(default_headers=default_headers)

    client.embeddings.create(inputs="a", extra_headers=extra_headers)

    assert server.requests[0].headers.getlist(name) == [expected]


def test_default_authorization_header_is_sent_once(api, server):
    server.reply_embeddings()
    client = api.make(default_headers={"authorization": "Bearer other"})

    client.embeddings.create(inputs="a")

    values = server.requests[0].headers.getlist("Authorization")
    assert len(values) == 1
    assert "," not in values[0]


def test_extra_query_on_get(api, server, wire):
    server.reply("/models", wire.json_response({"object": "list", "data": []}))

    api.client.models.list(extra_query={"owned_by": "aligneai"}, extra_headers={"X-A": "1"})

    assert server.requests[0].args.to_dict() == {"owned_by": "aligneai"}
    assert server.requests[0].headers["X-A"] == "1"


def test_with_options_default_headers_leave_the_original_unchanged(api, server):
    server.reply_embeddings()
    base = api.make(default_headers={"X-Team": "search"})
    derived = base.with_options(default_headers={"X-Extra": "yes"})

    derived.embeddings.create(inputs="a")
    base.embeddings.create(inputs="a")

    first, second = server.requests
    assert first.headers["X-Team"] == "search"
    assert first.headers["X-Extra"] == "yes"
    assert second.headers["X-Team"] == "search"
    assert "X-Extra" not in second.headers


# -- bad input raises before anything is sent ------------------------------------------------

BAD_CALLS = [
    (dict(inputs=[]), ValueError, "inputs"),
    (dict(inputs=None), TypeError, "inputs"),
    (dict(inputs=""), ValueError, "inputs"),
    (dict(inputs=[1]), TypeError, "inputs[0]"),
    (dict(inputs=["ok", ""]), ValueError, "inputs[1]"),
    (dict(inputs=b"bytes"), TypeError, "inputs"),
    (dict(inputs=["x"] * 2049), ValueError, "inputs"),
    (dict(inputs="a", dimensions=0), ValueError, "dimensions"),
    (dict(inputs="a", dimensions=True), TypeError, "dimensions"),
    (dict(inputs="a", dimensions="3"), TypeError, "dimensions"),
    (dict(inputs="a", encoding_format="hex"), ValueError, "encoding_format"),
    (dict(inputs="a", model=""), ValueError, "model"),
    (dict(inputs="a", model=7), TypeError, "model"),
    (dict(inputs="a", timeout=-1), ValueError, "timeout"),
    (dict(inputs="a", timeout="5"), TypeError, "timeout"),
    (dict(inputs="a", max_retries=-1), ValueError, "max_retries"),
    (dict(inputs="a", max_retries=1.5), TypeError, "max_retries"),
    (dict(inputs="a", extra_headers={"X-A": "1\r\nX-Evil: 1"}), ValueError, "extra_headers"),
    (dict(inputs="a", extra_body=["not", "a", "mapping"]), TypeError, "extra_body"),
    (dict(inputs="a", extra_query="a=1"), TypeError, "extra_query"),
]


@pytest.mark.parametrize(
    ("kwargs", "builtin", "argument"),
    BAD_CALLS,
    ids=[f"{a}-{i}" for i, (_, _, a) in enumerate(BAD_CALLS)],
)
def test_bad_call_arguments_raise_before_sending(api, server, kwargs, builtin, argument):
    server.reply_embeddings()

    with pytest.raises(APIError) as info:
        api.client.embeddings.create(**kwargs)

    assert isinstance(info.value, builtin)
    assert isinstance(info.value, aligneai.InvalidArgumentError)
    assert info.value.argument == argument
    assert argument in str(info.value)
    assert server.count == 0


def test_inputs_at_the_limit_are_accepted(api, server, wire):
    server.reply_embeddings(vectors=[[1.0]] * 2048)

    response = api.client.embeddings.create(inputs=["x"] * 2048)

    assert len(response.data) == 2048
    assert len(server.json_bodies()[0]["inputs"]) == 2048


BAD_CLIENTS = [
    (dict(base_url="ftp://x"), ValueError, "base_url"),
    (dict(base_url="not a url"), ValueError, "base_url"),
    (dict(base_url="http://user:pw@127.0.0.1/v1"), ValueError, "base_url"),
    # urlsplit silently strips TAB/CR/LF: these must be refused, not cleaned up.
    (dict(base_url="http://127.0.0.1/v1\r\nX-Injected: 1"), ValueError, "base_url"),
    (dict(base_url="http://127.0.0.1/v\n1"), ValueError, "base_url"),
    (dict(base_url="http://127.0.0.1/\tv1"), ValueError, "base_url"),
    (dict(base_url="http://127.0.0.1/v1\x00"), ValueError, "base_url"),
    (dict(base_url="http://127.0.0.1/v1\x7f"), ValueError, "base_url"),
    (dict(timeout=-1), ValueError, "timeout"),
    (dict(timeout=0), ValueError, "timeout"),
    (dict(max_retries=-1), ValueError, "max_retries"),
    (dict(max_retries="2"), TypeError, "max_retries"),
    (dict(api_key=""), ValueError, "api_key"),
    (dict(api_key=123), TypeError, "api_key"),
    (dict(default_headers={"X-A": 1}), TypeError, "default_headers"),
]


@pytest.mark.parametrize(
    ("kwargs", "builtin", "argument"),
    BAD_CLIENTS,
    ids=[f"{a}-{i}" for i, (_, _, a) in enumerate(BAD_CLIENTS)],
)
def test_bad_client_arguments_raise_at_construction(api, server, kwargs, builtin, argument):
    with pytest.raises(APIError) as info:
        api.make(**kwargs)

    assert isinstance(info.value, builtin)
    assert info.value.argument == argument
    assert str(info.value).startswith(argument + ":")
    assert server.count == 0


@pytest.mark.parametrize(
    ("model_id", "builtin"), [("", ValueError), ("  ", ValueError), (None, TypeError)]
)
def test_bad_model_id_raises_before_sending(api, server, model_id, builtin):
    with pytest.raises(APIError) as info:
        api.client.models.retrieve(model_id)

    assert isinstance(info.value, builtin)
    assert "model_id" in str(info.value)
    assert server.count == 0


def test_with_options_rejects_bad_values(api, server):
    with pytest.raises(APIError) as info:
        api.client.with_options(max_retries=-1)
    assert isinstance(info.value, ValueError)
    assert "max_retries" in str(info.value)
    with pytest.raises(APIError) as info:
        api.client.with_options(timeout=-1)
    assert isinstance(info.value, ValueError)
    assert "timeout" in str(info.value)


# -- settings from the environment -----------------------------------------------------------


def test_missing_api_key(api, no_env):
    with pytest.raises(MissingAPIKeyError) as info:
        api.make(api_key=None)

    assert isinstance(info.value, APIError)
    assert "ALIGNEAI_API_KEY" in str(info.value)


def test_empty_api_key_env_counts_as_missing(api, no_env):
    no_env.setenv("ALIGNEAI_API_KEY", "")

    with pytest.raises(MissingAPIKeyError):
        api.make(api_key=None)


def test_api_key_and_base_url_from_the_environment(api, server, no_env):
    no_env.setenv("ALIGNEAI_API_KEY", "sk-from-env")
    no_env.setenv("ALIGNEAI_BASE_URL", server.base_url)
    server.reply_embeddings()

    client = api.make(api_key=None, base_url=None)
    client.embeddings.create(inputs="a")

    assert client.base_url == server.base_url
    assert server.count == 1
    assert server.requests[0].headers["Authorization"] == "Bearer sk-from-env"


def test_explicit_arguments_win_over_the_environment(api, server, no_env):
    no_env.setenv("ALIGNEAI_API_KEY", "sk-from-env")
    no_env.setenv("ALIGNEAI_BASE_URL", "http://127.0.0.1:9/v1")
    server.reply_embeddings()

    api.make().embeddings.create(inputs="a")

    assert server.requests[0].headers["Authorization"] == "Bearer sk-test-key-123"


def test_base_url_trailing_slash(api, server):
    server.reply_embeddings()

    client = api.make(base_url=server.base_url + "/")
    client.embeddings.create(inputs="a")

    assert server.requests[0].path == "/v1/embeddings"


# -- raw responses ---------------------------------------------------------------------------


def test_raw_response_after_two_503s(api, server, wire):
    server.sequence(
        "/embeddings",
        [
            wire.json_response(wire.error_payload(), 503),
            wire.json_response(wire.error_payload(), 503),
            wire.json_response(wire.embeddings_payload(), 200, {"x-request-id": "req_ok"}),
        ],
    )

    raw = api.client.embeddings.with_raw_response.create(inputs=["a", "b", "c"])

    assert isinstance(raw, RawResponse)
    assert raw.status_code == 200
    assert raw.headers["x-request-id"] == "req_ok"
    assert raw.headers["content-type"] == "application/json"
    assert raw.request_id == "req_ok"
    assert raw.retries_taken == 2
    assert raw.elapsed > 0
    assert json.loads(raw.content) == wire.embeddings_payload()
    parsed = raw.parse()
    assert isinstance(parsed, CreateEmbeddingResponse)
    assert [item.embedding for item in parsed.data] == wire.VECTORS
    assert raw.parse() is parsed
    assert server.count == 3
    assert len(api.sleeps) == 2


def test_raw_response_first_try(api, server, wire):
    server.reply_embeddings()

    raw = api.client.embeddings.with_raw_response.create(inputs="a", extra_body={"x": 1})

    assert raw.retries_taken == 0
    assert raw.request_id is None
    assert "RawResponse 200" in repr(raw)
    assert server.json_bodies()[0]["x"] == 1


def test_raw_response_parse_reports_a_contract_violation(api, server, wire):
    server.reply("/embeddings", wire.json_response({"object": "list"}))

    raw = api.client.embeddings.with_raw_response.create(inputs="a")

    assert raw.status_code == 200
    with pytest.raises(APIResponseValidationError):
        raw.parse()


# -- a 2xx that breaks the contract ----------------------------------------------------------

BAD_SUCCESS_BODIES = [
    pytest.param(b"<html>hello</html>", "text/html", id="html"),
    pytest.param(b"", "application/json", id="empty"),
    pytest.param(b'{"object": "list", "data": [', "application/json", id="truncated-json"),
    pytest.param(b"[]", "application/json", id="json-array"),
    pytest.param(
        json.dumps({"object": "list", "data": [], "model": "m"}).encode(),
        "application/json",
        id="no-usage",
    ),
    pytest.param(
        json.dumps(
            {
                "object": "list",
                "data": [{"object": "embedding", "index": "0", "embedding": [1.0]}],
                "model": "m",
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            }
        ).encode(),
        "application/json",
        id="index-as-string",
    ),
    pytest.param(
        json.dumps(
            {
                "object": "list",
                "data": [{"object": "embedding", "index": 0, "embedding": ["x"]}],
                "model": "m",
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            }
        ).encode(),
        "application/json",
        id="vector-of-strings",
    ),
    pytest.param(
        json.dumps(
            {
                "object": "list",
                "data": [{"object": "embedding", "index": 0, "embedding": "AAA"}],
                "model": "m",
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            }
        ).encode(),
        "application/json",
        id="bad-base64",
    ),
]


@pytest.mark.parametrize(("body", "content_type"), BAD_SUCCESS_BODIES)
def test_success_that_breaks_the_contract(api, server, body, content_type):
    server.reply(
        "/embeddings",
        Response(body, status=200, content_type=content_type, headers={"x-request-id": "r1"}),
    )

    with pytest.raises(APIResponseValidationError) as info:
        api.client.embeddings.create(inputs="a")

    assert info.value.status_code == 200
    assert info.value.request_id == "r1"
    assert server.count == 1  # never retried


def test_models_list_that_breaks_the_contract(api, server, wire):
    server.reply("/models", wire.json_response({"object": "list", "data": [{"id": 1}]}))

    with pytest.raises(APIResponseValidationError):
        api.client.models.list()


# -- transport details ---------------------------------------------------------------------


def test_gzip_encoded_answer(api, server, wire):
    body = gzip.compress(json.dumps(wire.embeddings_payload()).encode())
    server.reply(
        "/embeddings",
        Response(body, content_type="application/json", headers={"Content-Encoding": "gzip"}),
    )

    response = api.client.embeddings.create(inputs=["a", "b", "c"])

    assert [item.embedding for item in response.data] == wire.VECTORS


def test_redirects_are_not_followed(api, server, wire):
    server.reply(
        "/embeddings",
        Response(b"", status=307, headers={"Location": "http://127.0.0.1:9/v1/embeddings"}),
    )

    with pytest.raises(APIStatusError) as info:
        api.client.embeddings.create(inputs="a")

    assert info.value.status_code == 307
    assert server.count == 1


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_response_larger_than_max_response_bytes(api, server, wire, declared):
    body = json.dumps(wire.embeddings_payload()).encode()
    if declared:
        server.reply("/embeddings", Response(body, content_type="application/json"))
    else:
        server.reply(
            "/embeddings",
            lambda _request: Response(
                iter([body[:50], body[50:]]), content_type="application/json"
            ),
        )
    client = api.make(max_response_bytes=100)

    with pytest.raises(ResponseTooLargeError):
        client.embeddings.create(inputs=["a", "b", "c"])

    assert server.count == 1
    # The client still works afterwards.
    assert api.make(max_response_bytes=len(body)).embeddings.create(inputs=["a", "b", "c"]).model


# -- lifecycle -------------------------------------------------------------------------------


def test_many_calls_on_one_client(api, server):
    server.reply_embeddings()

    for _ in range(5):
        api.client.embeddings.create(inputs="a")

    assert server.count == 5


def test_repr_hides_the_api_key(api):
    assert "sk-test-key-123" not in repr(api.client.raw if api.kind == "async" else api.client)


def test_sync_client_as_a_context_manager(server, wire, monkeypatch):
    server.reply_embeddings()
    closes = []
    original = Urllib3Transport.close

    def spy(self):
        closes.append(self)
        original(self)

    monkeypatch.setattr(Urllib3Transport, "close", spy)

    with aligneai.AligneAI(api_key="k", base_url=server.base_url) as client:
        assert client.embeddings.create(inputs="a").model == "aligne-embed-1"
        assert closes == []

    # Leaving the block closed the client's own pool (test_sync_lifecycle.py's
    # test_with_block_closes_the_pool sees its kept-alive connection closed).
    assert closes == [client._transport]


def test_async_client_as_a_context_manager_and_across_runs(server, wire):
    server.reply_embeddings()
    client = aligneai.AsyncAligneAI(api_key="k", base_url=server.base_url)
    sessions = []

    async def once() -> str:
        model = (await client.embeddings.create(inputs="a")).model
        sessions.append(client._transport.session)
        return model

    async def twice() -> list[str]:
        async with client:
            models = [await once(), await once()]
            assert not sessions[-1].closed
        # Leaving the block closed the aiohttp session (inside the loop that used it).
        assert sessions[-1].closed
        assert client._transport.session is None
        return models

    # A client created outside any loop works across consecutive asyncio.run() calls.
    assert asyncio.run(once()) == "aligne-embed-1"
    assert asyncio.run(twice()) == ["aligne-embed-1"] * 2
    assert server.count == 3
    # The first run's session was closed when its loop ended; the second run got a new one.
    assert sessions[0] is not sessions[1] and sessions[1] is sessions[2]
    assert sessions[0].closed
