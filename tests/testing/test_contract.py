"""The OpenAPI contract (core/openapi.json) against the server, the models and the strategies.

(a) every kind of answer the LocalServer gives validates against the documented schemas and
headers (and carries no undocumented field); (b) what aligneai.testing.strategies generates
validates and structures; (c) the strict converter round-trips generated models; (d) the
schemas and the attrs models (and the server's tables) have not drifted apart; (e) request
bodies built by the core's create_embeddings validate, and the request schema accepts exactly
the bodies the server accepts.
"""

from __future__ import annotations

import functools
import http.client
import json
import math
import socket
import typing
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import attrs
import cattrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, ValidationError

from aligneai.core.converter import default_converter, make_converter
from aligneai.core.embedding_stream import EmbeddingStreamDecoder
from aligneai.core.errors import APIStatusError
from aligneai.core.models import (
    CreateEmbeddingResponse,
    Embedding,
    EmbeddingStreamDone,
    Model,
    ModelList,
    Usage,
    WireModel,
)
from aligneai.core.operations import MAX_INPUTS, EncodingFormat, create_embeddings
from aligneai.core.response import ResponseHead, make_status_error
from aligneai.core.retry import parse_retry_after
from aligneai.core.sse import SSEDecoder
from aligneai.core.wire import EMBEDDING_REQUEST_FIELDS, ENCODING_FORMATS
from aligneai.testing import Fault, LocalServer, _api
from aligneai.testing import strategies as ast
from aligneai.testing.contract import load_openapi, schema_for, strict_converter

DOC = load_openapi()
SCHEMAS: dict[str, Any] = DOC["components"]["schemas"]
MODEL_CLASSES: dict[str, type[WireModel]] = {
    cls.__name__: cls
    for cls in (Usage, Embedding, CreateEmbeddingResponse, EmbeddingStreamDone, Model, ModelList)
}
KEY = "sk-contract"
# The module must stay fast (~15 s): each property gets a quarter of the profile's examples.
QUICK = settings(max_examples=max(10, settings().max_examples // 4))


def _resolve(ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = DOC
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _closed(node: Any) -> Any:
    """The schema with every object closed: catches fields the contract does not document."""
    if isinstance(node, dict):
        closed = {key: _closed(value) for key, value in node.items()}
        if "properties" in node:
            closed["additionalProperties"] = False
        return closed
    if isinstance(node, list):
        return [_closed(item) for item in node]
    return node


@functools.cache
def validator(name: str, closed: bool = False) -> Draft202012Validator:
    schema = schema_for(name)
    if closed:
        schema = _closed(schema)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _component(schema: dict[str, Any]) -> str:
    return str(schema["$ref"]).rsplit("/", 1)[-1]


def strip_unknown(instance: Any, schema: Any) -> Any:
    """Drop every field the schema does not document, recursively."""
    if "$ref" in schema:
        return strip_unknown(instance, _resolve(schema["$ref"]))
    if isinstance(instance, dict) and "properties" in schema:
        props = schema["properties"]
        return {k: strip_unknown(v, props[k]) for k, v in instance.items() if k in props}
    if isinstance(instance, list) and "items" in schema:
        return [strip_unknown(item, schema["items"]) for item in instance]
    return instance


def is_float32(vector: list[float]) -> bool:
    return array("f", vector).tolist() == vector


# -- the document itself ----------------------------------------------------------------------


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_document_basics() -> None:
    assert DOC["openapi"].startswith("3.1.")
    assert DOC["jsonSchemaDialect"] == "https://json-schema.org/draft/2020-12/schema"
    assert DOC["servers"][0]["url"] == "https://api.aligne.ai/v1"
    bearer = DOC["components"]["securitySchemes"]["bearerAuth"]
    assert (bearer["type"], bearer["scheme"]) == ("http", "bearer")
    assert DOC["security"] == [{"bearerAuth": []}]
    assert set(DOC["paths"]) == {"/embeddings", "/models", "/models/{model_id}"}
    for ref in _refs(DOC):
        _resolve(ref)  # every reference resolves
    assert load_openapi() is not load_openapi()  # fresh copies: callers may mutate them


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_component_schemas_are_valid_and_self_contained(name: str) -> None:
    schema = schema_for(name)
    Draft202012Validator.check_schema(schema)
    assert not [ref for ref in _refs(schema) if not ref.startswith("#/$defs/")]
    # Open on answers (clients ignore unknown fields), closed on the one request body.
    assert SCHEMAS[name]["additionalProperties"] is (name != "EmbeddingRequest")


def test_schema_for_unknown_name() -> None:
    with pytest.raises(KeyError, match="EmbeddingRequest"):
        schema_for("Nope")


# -- (a) the local server's answers -----------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def media_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip()


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(api_key=KEY, max_body_bytes=1 << 20) as running:
        yield running


def _http(
    server: LocalServer,
    method: str,
    path: str,
    body: object = None,
    *,
    key: str | None = KEY,
    auth: str | None = None,
) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        headers = {"Content-Type": "application/json"}
        if auth is not None:
            headers["Authorization"] = auth
        elif key is not None:
            headers["Authorization"] = f"Bearer {key}"
        raw = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        conn.request(method, path, body=raw, headers=headers)
        response = conn.getresponse()
        return Answer(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
    finally:
        conn.close()


def _raw(server: LocalServer, request: bytes) -> Answer:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return Answer(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )


def _response_object(operation: tuple[str, str] | None, status: int) -> dict[str, Any]:
    """The documented response for this status (routing errors: the shared components)."""
    if operation is None:
        name = "MethodNotAllowed" if status == 405 else "NotFound"
        found: dict[str, Any] = DOC["components"]["responses"][name]
        return found
    responses = DOC["paths"][operation[0]][operation[1]]["responses"]
    for key in (str(status), f"{status // 100}XX", "default"):
        if key in responses:
            response: dict[str, Any] = responses[key]
            return _resolve(response["$ref"]) if "$ref" in response else response
    raise AssertionError(f"status {status} is not documented for {operation}")


def check_answer(answer: Answer, operation: tuple[str, str] | None) -> list[tuple[str, Any]]:
    """Validate status, headers and body against the document; return the decoded body."""
    documented = _response_object(operation, answer.status)
    for name, header in documented.get("headers", {}).items():
        header = _resolve(header["$ref"]) if "$ref" in header else header
        if header.get("required"):
            assert name in answer.headers, f"missing documented header {name!r}"
        if name in answer.headers:
            Draft202012Validator(header["schema"]).validate(answer.headers[name])
    media = documented["content"].get(answer.media_type)
    assert media is not None, f"{answer.media_type!r} is not documented for {answer.status}"
    if answer.media_type == "application/json":
        payload = json.loads(answer.body)
        name = _component(media["schema"])
        validator(name).validate(payload)
        validator(name, closed=True).validate(payload)  # the server adds nothing undocumented
        return [("json", payload)]
    assert answer.media_type == "text/event-stream"
    decoder = SSEDecoder()
    events = [*decoder.feed(answer.body)]
    decoder.close()
    decoded = []
    for event in events:
        data = json.loads(event.data)
        name = _component(media["x-sse-events"][event.event])
        validator(name).validate(data)
        validator(name, closed=True).validate(data)
        decoded.append((event.event, data))
    kinds = [kind for kind, _ in decoded]
    assert kinds[-1] in ("done", "error")
    assert set(kinds[:-1]) <= {"embedding"}
    return decoded


EMBED = ("/embeddings", "post")
LIST = ("/models", "get")
RETRIEVE = ("/models/{model_id}", "get")

SUCCESS_CASES = [
    ("float", {"inputs": "hello world"}, "float", None),
    ("float-list", {"inputs": ["a", "b c"], "encoding_format": "float"}, "float", None),
    ("dimensions", {"inputs": ["a b", "c"], "dimensions": 8}, "float", 8),
    (
        "base64",
        {"inputs": ["x", "y"], "encoding_format": "base64", "model": "aligne-embed-large"},
        "base64",
        1536,
    ),
    ("base64-dims", {"inputs": "x", "encoding_format": "base64", "dimensions": 5}, "base64", 5),
]


@pytest.mark.parametrize(
    ("body", "encoding", "dims"), [c[1:] for c in SUCCESS_CASES], ids=[c[0] for c in SUCCESS_CASES]
)
def test_server_embeddings_json(
    server: LocalServer, body: dict[str, Any], encoding: str, dims: int | None
) -> None:
    answer = _http(server, "POST", "/v1/embeddings", body)
    assert answer.status == 200
    [(_, payload)] = check_answer(answer, EMBED)
    count = 1 if isinstance(body["inputs"], str) else len(body["inputs"])
    assert [item["index"] for item in payload["data"]] == list(range(count))
    assert all(
        isinstance(item["embedding"], list) is (encoding == "float") for item in payload["data"]
    )
    parsed = strict_converter().structure(payload, CreateEmbeddingResponse)
    assert all(len(item.embedding) == (dims or 384) for item in parsed.data)


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_server_embeddings_stream(server: LocalServer, encoding: str) -> None:
    body = {"inputs": ["one", "two", "three"], "encoding_format": encoding, "dimensions": 6}
    events = check_answer(_http(server, "POST", "/v1/embeddings", {**body, "stream": True}), EMBED)
    assert [kind for kind, _ in events] == ["embedding"] * 3 + ["done"]
    [(_, plain)] = check_answer(_http(server, "POST", "/v1/embeddings", body), EMBED)
    assert [data for kind, data in events if kind == "embedding"] == plain["data"]
    assert events[-1][1] == {"object": "list", "model": plain["model"], "usage": plain["usage"]}


def test_server_stream_error_event(server: LocalServer) -> None:
    server.enqueue(Fault.sse_error(503, after_items=1))
    body = {"inputs": ["a", "b"], "stream": True}
    events = check_answer(_http(server, "POST", "/v1/embeddings", body), EMBED)
    assert [kind for kind, _ in events] == ["embedding", "error"]
    assert events[-1][1]["status"] == 503


def test_server_models(server: LocalServer) -> None:
    [(_, listing)] = check_answer(_http(server, "GET", "/v1/models"), LIST)
    assert {m["id"] for m in listing["data"]} == set(_api.MODELS)
    strict_converter().structure(listing, ModelList)
    for model_id in _api.MODELS:
        [(_, model)] = check_answer(_http(server, "GET", f"/v1/models/{model_id}"), RETRIEVE)
        assert strict_converter().structure(model, Model).id == model_id


TOO_MANY = ["x"] * (MAX_INPUTS + 1)
# POST /v1/embeddings bodies the server refuses: (id, body, status, code).
EMBED_ERRORS: list[tuple[str, object, int, str]] = [
    ("invalid-json", b"{", 400, "invalid_json"),
    ("not-object", [], 400, "invalid_type"),
    ("inputs-type", {"inputs": 3}, 400, "invalid_type"),
    ("item-type", {"inputs": [1]}, 400, "invalid_type"),
    ("null-model", {"inputs": "a", "model": None}, 400, "invalid_type"),
    ("unknown", {"inputs": "a", "foo": 1}, 400, "unknown_parameter"),
    ("missing", {"model": "m"}, 400, "missing_required_parameter"),
    ("encoding", {"inputs": "a", "encoding_format": "hex"}, 400, "invalid_value"),
    ("dims-zero", {"inputs": "a", "dimensions": 0}, 400, "invalid_value"),
    ("stream-type", {"inputs": "a", "stream": "yes"}, 400, "invalid_type"),
    ("model", {"inputs": "a", "model": "nope"}, 404, "model_not_found"),
    ("empty-list", {"inputs": []}, 422, "empty_inputs"),
    ("empty-input", {"inputs": ["a", ""]}, 422, "empty_input"),
    ("too-many", {"inputs": TOO_MANY}, 422, "too_many_inputs"),
    ("dims-large", {"inputs": "a", "dimensions": 385}, 422, "dimensions_too_large"),
    ("too-large", {"inputs": "x" * (1 << 20)}, 413, "request_too_large"),
]
# Other refusals: (id, method, path, auth, operation, status, code); routing errors (unknown
# path, wrong method) belong to no operation.
OTHER_ERRORS: list[tuple[str, str, str, dict[str, Any], tuple[str, str] | None, int, str]] = [
    ("no-key", "GET", "/v1/models", {"key": None}, LIST, 401, "missing_api_key"),
    ("basic", "GET", "/v1/models/x", {"auth": "Basic abc"}, RETRIEVE, 401, "missing_api_key"),
    ("bad-key", "POST", "/v1/embeddings", {"key": "sk-wrong"}, EMBED, 401, "invalid_api_key"),
    ("path", "GET", "/v1/nope", {}, None, 404, "not_found"),
    ("no-prefix", "GET", "/models", {}, None, 404, "not_found"),
    ("model", "GET", "/v1/models/nope", {}, RETRIEVE, 404, "model_not_found"),
    ("get-embeddings", "GET", "/v1/embeddings", {}, None, 405, "method_not_allowed"),
    ("post-models", "POST", "/v1/models", {}, None, 405, "method_not_allowed"),
    ("delete-model", "DELETE", "/v1/models/x", {}, None, 405, "method_not_allowed"),
]


def _check_error(answer: Answer, operation: tuple[str, str] | None, status: int, code: str) -> None:
    assert answer.status == status
    [(_, payload)] = check_answer(answer, operation)
    assert payload["error"]["code"] == code
    if status == 405:
        assert answer.headers["allow"] in ("GET", "POST")
    if status == 401:
        assert answer.headers["www-authenticate"] == "Bearer"
    error = make_status_error(ResponseHead(status, answer.headers), answer.body)
    assert (error.status_code, error.code, error.type) == (status, code, payload["error"]["type"])


@pytest.mark.parametrize(
    ("body", "status", "code"), [c[1:] for c in EMBED_ERRORS], ids=[c[0] for c in EMBED_ERRORS]
)
def test_server_embedding_errors(server: LocalServer, body: object, status: int, code: str) -> None:
    _check_error(_http(server, "POST", "/v1/embeddings", body), EMBED, status, code)


@pytest.mark.parametrize(
    ("method", "path", "auth", "operation", "status", "code"),
    [c[1:] for c in OTHER_ERRORS],
    ids=[c[0] for c in OTHER_ERRORS],
)
def test_server_other_errors(
    server: LocalServer,
    method: str,
    path: str,
    auth: dict[str, Any],
    operation: tuple[str, str] | None,
    status: int,
    code: str,
) -> None:
    answer = _http(server, method, path, {"inputs": "a"} if method == "POST" else None, **auth)
    _check_error(answer, operation, status, code)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /v1/a b HTTP/1.1\r\nHost: x\r\n\r\n", 400),  # http.server's own error path
        (b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n", 400),
    ],
    ids=["request-line", "bad-framing"],
)
def test_server_protocol_errors(server: LocalServer, request_bytes: bytes, status: int) -> None:
    answer = _raw(server, request_bytes)
    assert answer.status == status
    check_answer(answer, EMBED)


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "FROB", "PROPFIND"])
@pytest.mark.parametrize(
    ("path", "allowed"),
    [("/v1/models", "GET"), ("/v1/models/x", "GET"), ("/v1/embeddings", "POST")],
)
def test_any_other_method_on_a_known_path_is_405_with_allow(
    server: LocalServer, method: str, path: str, allowed: str
) -> None:
    """Not http.server's 501: the API has no method it does not know, only paths (issue #12)."""
    answer = _raw(server, f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert answer.status == 405
    assert answer.headers["allow"] == allowed
    [(_, payload)] = check_answer(answer, None)
    assert payload["error"]["code"] == "method_not_allowed"
    elsewhere = _raw(server, f"{method} /v1/nowhere HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert elsewhere.status == 404


RATE_LIMIT_HEADERS = {
    f"x-ratelimit-{what}-{kind}"
    for what in ("limit", "remaining", "reset")
    for kind in ("requests", "tokens")
}


def test_rate_limited_server_answers_follow_the_contract() -> None:
    """Limiter, token cap and their headers (issue #11), checked against the document."""
    # A clock that never moves: nothing refills, so the second request is always refused.
    with LocalServer(
        api_key=KEY,
        requests_per_minute=6,
        tokens_per_minute=600,
        max_request_tokens=50,
        clock=lambda: 0.0,
    ) as limited:
        answers = [
            (_http(limited, "POST", "/v1/embeddings", {"inputs": "a b"}), EMBED, 200),
            (
                _http(limited, "POST", "/v1/embeddings", {"inputs": " ".join(["w"] * 51)}),
                EMBED,
                400,
            ),
            (_http(limited, "POST", "/v1/embeddings", {"inputs": "a"}), EMBED, 429),
            (_http(limited, "POST", "/v1/embeddings", {"inputs": "a", "stream": True}), EMBED, 429),
            (_http(limited, "GET", "/v1/models"), LIST, 429),
            (_http(limited, "GET", "/v1/models/x"), RETRIEVE, 429),
            (_http(limited, "GET", "/v1/nowhere"), None, 404),
            (_http(limited, "PUT", "/v1/models"), None, 405),
            (_http(limited, "GET", "/v1/models", key=None), LIST, 401),
        ]
        for answer, operation, status in answers:
            assert answer.status == status
            [(_, payload)] = check_answer(answer, operation)
            assert set(answer.headers) & RATE_LIMIT_HEADERS == RATE_LIMIT_HEADERS
            documented = _response_object(operation, status)["headers"]
            assert set(documented) >= RATE_LIMIT_HEADERS, status
            if status == 429:
                assert payload["error"]["code"] == "rate_limit_exceeded"
                assert {"retry-after", "retry-after-ms"} <= set(answer.headers)
        assert answers[1][0].headers["x-ratelimit-remaining-tokens"] == "98"  # not charged
        assert json.loads(answers[1][0].body)["error"]["code"] == "request_too_large"


@QUICK
@given(
    data=st.data(),
    requests=st.sampled_from([True, False, None]),
    tokens=st.sampled_from([True, False, None]),
    retry=st.booleans(),
)
def test_rate_limit_headers_strategy(
    data: st.DataObject, requests: bool | None, tokens: bool | None, retry: bool
) -> None:
    headers = data.draw(ast.rate_limit_headers(requests=requests, tokens=tokens, retry=retry))
    documented = _response_object(EMBED, 429)["headers"]
    for name, value in headers.items():
        Draft202012Validator(_resolve(documented[name]["$ref"])["schema"]).validate(value)
    for kind, wanted in (("requests", requests), ("tokens", tokens)):
        names = {name for name in RATE_LIMIT_HEADERS if name.endswith("-" + kind)}
        present = names & set(headers)
        assert present in (set(), names)
        if wanted is not None:
            assert bool(present) is wanted
        if present:
            limit = int(headers[f"x-ratelimit-limit-{kind}"])
            assert 0 <= int(headers[f"x-ratelimit-remaining-{kind}"]) <= limit
    if retry:
        wait = parse_retry_after(headers, now=0.0)
        assert wait is not None
        assert wait == int(headers["retry-after-ms"]) / 1000
        assert int(headers["retry-after"]) == math.ceil(wait)
    else:
        assert "retry-after" not in headers


def test_sse_schema_describes_each_event() -> None:
    """OpenAPI 3.1 tools apply a text/event-stream `schema` to each parsed event."""
    media = DOC["paths"]["/embeddings"]["post"]["responses"]["200"]["content"]["text/event-stream"]
    alternatives = media["schema"]["oneOf"]
    by_event = {
        alt["properties"]["event"]["const"]: alt["properties"]["data"]["contentSchema"]
        for alt in alternatives
    }
    assert by_event == media["x-sse-events"]
    for alt in alternatives:
        assert alt["properties"]["data"]["contentMediaType"] == "application/json"
        assert alt["required"] == ["event", "data"]


@pytest.mark.parametrize(
    "fault",
    [
        Fault.status(503),
        Fault.status(500, should_retry=False),
        Fault.status(429, retry_after=2, retry_after_ms=1500, should_retry=True),
        Fault.status(429, retry_after="Wed, 21 Oct 2015 07:28:00 GMT"),
        Fault.status(409),
    ],
    ids=["503", "500", "429-seconds", "429-date", "409"],
)
def test_server_injected_statuses(server: LocalServer, fault: Fault) -> None:
    server.enqueue(fault)
    answer = _http(server, "GET", "/v1/models")
    assert answer.status == fault.status_code
    check_answer(answer, LIST)


# -- (b) the strategies' payloads -------------------------------------------------------------


ENCODINGS: st.SearchStrategy[EncodingFormat] = st.sampled_from(["float", "base64"])


@QUICK
@given(data=st.data(), encoding=ENCODINGS, extra_fields=st.booleans(), shuffled=st.booleans())
def test_payload_strategy(
    data: st.DataObject, encoding: EncodingFormat, extra_fields: bool, shuffled: bool
) -> None:
    payload = data.draw(
        ast.create_embedding_payloads(encoding, shuffled=shuffled, extra_fields=extra_fields)
    )
    validator("CreateEmbeddingResponse").validate(payload)
    known = strip_unknown(payload, SCHEMAS["CreateEmbeddingResponse"])
    validator("CreateEmbeddingResponse", closed=True).validate(known)
    typed = strict_converter().structure(known, CreateEmbeddingResponse)
    assert [item.index for item in typed.data] == list(range(len(payload["data"])))
    assert all(is_float32(item.embedding) for item in typed.data)
    assert default_converter().structure(payload, CreateEmbeddingResponse) == typed
    if extra_fields:  # the extras are really unknown, and strictness really notices them
        assert known != payload
        assert not validator("CreateEmbeddingResponse", closed=True).is_valid(payload)
        with pytest.raises(cattrs.ClassValidationError):
            strict_converter().structure(payload, CreateEmbeddingResponse)
    else:
        assert known == payload


@QUICK
@given(response=ast.create_embedding_responses())
def test_base64_and_float_payloads_agree(response: CreateEmbeddingResponse) -> None:
    as_float = strict_converter().structure(ast.to_wire(response), CreateEmbeddingResponse)
    as_base64 = strict_converter().structure(
        ast.to_wire(response, "base64"), CreateEmbeddingResponse
    )
    assert as_float == as_base64 == response


@QUICK
@given(data=st.data(), size=st.integers(1, 64), bounded=st.booleans())
def test_vector_strategy(data: st.DataObject, size: int, bounded: bool) -> None:
    vector = data.draw(ast.embedding_vectors(size, bounded=bounded))
    assert len(vector) == size
    assert all(math.isfinite(value) for value in vector)
    assert is_float32(vector)
    if bounded:
        assert all(-1.0 <= value <= 1.0 for value in vector)


@QUICK
@given(data=st.data(), encoding=ENCODINGS)
def test_embedding_item_strategy(data: st.DataObject, encoding: EncodingFormat) -> None:
    item = data.draw(ast.embeddings(encoding=encoding))
    validator("Embedding", closed=True).validate(item)
    assert isinstance(item["embedding"], str if encoding == "base64" else list)
    typed = strict_converter().structure(item, Embedding)
    assert is_float32(typed.embedding)


@QUICK
@given(data=st.data())
def test_error_payload_strategy(data: st.DataObject) -> None:
    status = data.draw(st.integers(400, 599), label="status")
    extra_fields = data.draw(st.booleans(), label="extra_fields")
    payload = data.draw(ast.error_payloads(status, extra_fields=extra_fields))
    validator("ErrorResponse").validate(payload)
    validator("ErrorResponse", closed=True).validate(
        strip_unknown(payload, SCHEMAS["ErrorResponse"])
    )
    error = make_status_error(ResponseHead(status), json.dumps(payload).encode())
    assert isinstance(error, APIStatusError)
    assert (error.message, error.type, error.code, error.param) == tuple(
        payload["error"][k] for k in ("message", "type", "code", "param")
    )


@QUICK
@given(body=ast.embedding_request_bodies(stream=None))
def test_request_body_strategy(body: dict[str, Any]) -> None:
    validator("EmbeddingRequest").validate(body)
    parsed = _api.parse_embedding_request(json.dumps(body).encode())  # the server takes it
    assert parsed.stream is body.get("stream", False)


@QUICK
@given(value=ast.inputs(), text=ast.texts())
def test_input_strategies(value: str | list[str], text: str) -> None:
    validator("EmbeddingRequest").validate({"inputs": value})
    validator("EmbeddingRequest").validate({"inputs": text})


@QUICK
@given(data=st.data(), encoding=ENCODINGS, error=st.booleans())
def test_sse_stream_strategy(data: st.DataObject, encoding: EncodingFormat, error: bool) -> None:
    stream = data.draw(ast.sse_streams(encoding_format=encoding, error=error))
    media = DOC["paths"]["/embeddings"]["post"]["responses"]["200"]["content"]["text/event-stream"]
    for kind, payload in stream.events:
        validator(_component(media["x-sse-events"][kind]), closed=True).validate(payload)
    # A generic SSE parser sees exactly the generated events...
    sse = SSEDecoder()
    parsed = [(e.event, json.loads(e.data)) for e in sse.feed(stream.body)]
    sse.close()
    assert parsed == list(stream.events)
    # ...and the client's stream decoder, fed in arbitrary chunks, the expected items.
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream.body)), max_size=4), label="cuts"))
    chunks = [stream.body[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream.body)])]
    decoder = EmbeddingStreamDecoder(ResponseHead(200))
    items: list[Embedding] = []
    if error:
        assert stream.error is not None
        with pytest.raises(APIStatusError) as info:
            for chunk in chunks:
                items += decoder.feed(chunk)
        assert info.value.status_code == stream.error["status"]
        assert info.value.code == stream.error["error"]["code"]
    else:
        for chunk in chunks:
            items += decoder.feed(chunk)
        decoder.close()
        assert decoder.done == stream.done
        assert stream.response is not None
        assert [item.index for item in stream.response.data] == list(range(len(items)))
    assert items == list(stream.items)


# -- (c) strict round trips -------------------------------------------------------------------

TYPED_STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    "Usage": ast.usages(),
    "Embedding": ast.embeddings(),
    "CreateEmbeddingResponse": ast.create_embedding_responses(),
    "EmbeddingStreamDone": ast.embedding_stream_dones(),
    "Model": ast.models(),
    "ModelList": ast.model_lists(),
}


@functools.cache
def strict() -> cattrs.Converter:
    return make_converter(strict=True)  # a fresh one, not the cached strict_converter()


@pytest.mark.parametrize("name", sorted(TYPED_STRATEGIES))
@QUICK
@given(data=st.data())
def test_strict_round_trip(name: str, data: st.DataObject) -> None:
    model = data.draw(TYPED_STRATEGIES[name])
    cls = MODEL_CLASSES[name]
    assert type(model) is cls
    wire = strict().unstructure(model)
    validator(name, closed=True).validate(wire)
    validator(name, closed=True).validate(model)  # the dict view is the wire form too
    assert strict().structure(wire, cls) == model
    assert strict().structure(json.loads(json.dumps(model)), cls) == model


@QUICK
@given(response=ast.create_embedding_responses(shuffled=True))
def test_strict_structure_orders_shuffled_data(response: CreateEmbeddingResponse) -> None:
    parsed = strict().structure(strict().unstructure(response), CreateEmbeddingResponse)
    assert parsed.data == sorted(response.data, key=lambda item: item.index)
    assert attrs.evolve(parsed, data=response.data) == response


# -- (d) drift between the schemas, the models and the server ---------------------------------


def _schema_types(schema: dict[str, Any]) -> set[str]:
    if "$ref" in schema:
        return _schema_types(_resolve(schema["$ref"]))
    if "const" in schema:
        return {"string"} if isinstance(schema["const"], str) else {"other"}
    alternatives = schema.get("oneOf") or schema.get("anyOf")
    if alternatives:
        return set().union(*(_schema_types(alternative) for alternative in alternatives))
    kind = schema["type"]
    return {kind} if isinstance(kind, str) else set(kind)


def _python_types(annotation: Any) -> set[str]:
    if typing.get_origin(annotation) is list:
        return {"array"}
    if attrs.has(annotation):
        return {"object"}
    return {{int: "integer", str: "string", float: "number"}[annotation]}


# The one place where the wire allows more than the model's type: base64 vectors.
WIRE_ONLY = {("Embedding", "embedding"): {"string"}}


@pytest.mark.parametrize("name", sorted(MODEL_CLASSES))
def test_schema_matches_model(name: str) -> None:
    cls: Any = MODEL_CLASSES[name]
    schema = SCHEMAS[name]
    fields = {field.name: field for field in attrs.fields(cls)}
    hints = typing.get_type_hints(cls)
    assert set(schema["properties"]) == set(fields)
    mandatory = {n for n, f in fields.items() if f.default is attrs.NOTHING}
    assert mandatory <= set(schema["required"]), "the model requires what the contract may omit"
    assert set(schema["required"]) == set(fields)  # the API always sends every field
    for field_name, field in fields.items():
        prop = schema["properties"][field_name]
        if field.default is not attrs.NOTHING:
            assert prop.get("const") == field.default, field_name
        expected = _python_types(hints[field_name])
        assert _schema_types(prop) - expected == WIRE_ONLY.get((name, field_name), set())
        assert expected <= _schema_types(prop)
        item_type = typing.get_args(hints[field_name])
        if item_type and attrs.has(item_type[0]):
            assert _component(prop["items"]) == item_type[0].__name__
        elif item_type:
            array_schema = next(s for s in prop.get("oneOf", [prop]) if s.get("type") == "array")
            assert array_schema["items"]["type"] == "number"


def test_request_schema_matches_server_and_core() -> None:
    request = SCHEMAS["EmbeddingRequest"]
    assert set(request["properties"]) == EMBEDDING_REQUEST_FIELDS
    assert request["required"] == ["inputs"]
    formats = request["properties"]["encoding_format"]["enum"]
    assert formats == list(ENCODING_FORMATS) == list(typing.get_args(EncodingFormat))
    batch = request["properties"]["inputs"]["oneOf"][1]
    assert batch["maxItems"] == MAX_INPUTS == _api.MAX_INPUTS
    # `dimensions` is bounded per model: one if/then rule per model of the server's table.
    bounds = {}
    for rule in request["allOf"]:
        condition = rule["if"]
        alternatives = condition.get("anyOf", [condition])
        [named] = [a for a in alternatives if "properties" in a]
        model_id = named["properties"]["model"]["const"]
        bounds[model_id] = rule["then"]["properties"]["dimensions"]["maximum"]
        if "anyOf" in condition:  # the rule that also covers an omitted `model`
            assert model_id == _api.DEFAULT_MODEL
    assert bounds == {model.id: model.dimensions for model in _api.MODELS.values()}
    error = SCHEMAS["Error"]
    assert set(error["properties"]) == set(_api.error_payload(400, "m")["error"])
    # Each status the server types specially is documented explicitly (it never sends 403/409).
    statuses = set(_api.ERROR_TYPES)
    assert statuses - {403, 409} <= {
        int(s) for s in DOC["paths"]["/embeddings"]["post"]["responses"] if s.isdigit()
    }


# -- (e) request bodies -----------------------------------------------------------------------


@QUICK
@given(
    inputs=ast.inputs(),
    model=st.none() | st.text(min_size=1, max_size=20),
    encoding_format=st.sampled_from([None, "float", "base64"]),
    # At most the smallest model's size: the schema bounds `dimensions` by the model.
    dimensions=st.none() | st.integers(1, 384),
    stream=st.booleans(),
)
def test_create_embeddings_body_validates(
    inputs: str | list[str],
    model: str | None,
    encoding_format: str | None,
    dimensions: int | None,
    stream: bool,
) -> None:
    operation = create_embeddings(
        inputs=inputs,
        model=model,
        encoding_format=encoding_format,
        dimensions=dimensions,
        stream=stream,
    )
    assert operation.body is not None
    validator("EmbeddingRequest").validate(dict(operation.body))
    assert json.loads(json.dumps(operation.body)) == operation.body


def test_create_embeddings_extra_body_leaves_the_contract() -> None:
    body = create_embeddings(inputs="a", extra_body={"user": "u1"}).body
    assert body is not None
    with pytest.raises(ValidationError, match="user"):
        validator("EmbeddingRequest").validate(dict(body))


# Values around the edges of each field: some valid, most not.
CANDIDATES: dict[str, list[Any]] = {
    "inputs": [
        "ok",
        ["ok", "b"],
        "",
        [],
        [""],
        ["a", ""],
        [1],
        None,
        3,
        {"a": "b"},
        True,
        TOO_MANY,
    ],
    "model": ["aligne-embed-large", "", "nope", None, 3, True, []],
    "encoding_format": ["float", "base64", "hex", "FLOAT", None, 1],
    "dimensions": [1, 10**9, 0, -1, 1.5, "8", True, None, 8.0, 63.0, 0.0, 1e400, -2.0],
    "stream": [True, False, None, "yes", 1, 0],
    "foo": [1],
}


@st.composite
def near_valid_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body = draw(ast.embedding_request_bodies(stream=None))
    for key in draw(st.lists(st.sampled_from(sorted(CANDIDATES)), max_size=2, unique=True)):
        if draw(st.booleans()) and key in body:
            del body[key]
        else:
            body[key] = draw(st.sampled_from(CANDIDATES[key]))
    return body


def _server_accepts_shape(body: dict[str, Any]) -> bool:
    try:
        _api.parse_embedding_request(json.dumps(body).encode())
    except _api.ApiError as exc:
        if exc.code != "model_not_found":
            return False
    else:
        return True
    # Well-shaped bodies the server still refuses for what it serves: an unknown model (the
    # schema does not list the models). The 404 comes before the 422 checks of the inputs, so
    # ask again with a known model; only its bound on `dimensions` is not the schema's (the
    # schema bounds `dimensions` by the known models only).
    try:
        _api.parse_embedding_request(json.dumps({**body, "model": "aligne-embed-large"}).encode())
    except _api.ApiError as exc:
        return exc.code == "dimensions_too_large"
    return True


def test_request_schema_agrees_with_server_on_each_edge_value() -> None:
    disagreements = []
    for key, values in CANDIDATES.items():
        for value in values:
            body = {"inputs": value} if key == "inputs" else {"inputs": "ok", key: value}
            if validator("EmbeddingRequest").is_valid(body) is not _server_accepts_shape(body):
                disagreements.append(body)
    assert disagreements == []


@QUICK
@given(body=near_valid_bodies())
def test_request_schema_accepts_what_the_server_accepts(body: dict[str, Any]) -> None:
    """The schema and the server agree on every body's shape (the model's existence aside)."""
    assert validator("EmbeddingRequest").is_valid(body) is _server_accepts_shape(body)
