"""Regressions of issue #12 items 9-11: the local server as a faithful counterpart of the API."""

from __future__ import annotations

import http.client
import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aligneai.core.errors import InvalidArgumentTypeError, InvalidArgumentValueError
from aligneai.testing import Fault, LocalServer, cosine_similarity, embed

KEY = "sk-hardening"


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(api_key=KEY) as running:
        yield running


@pytest.fixture(autouse=True)
def _clean(server: LocalServer) -> Iterator[None]:
    server.reset()
    yield
    server.reset()


def _call(server: LocalServer, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        raw = None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=raw, headers={"Authorization": f"Bearer {KEY}"})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        conn.close()


# -- item 9: a schema-valid `dimensions: 63.0` ------------------------------------------------


@pytest.mark.parametrize("dimensions", [63.0, 1.0, 384.0])
def test_integral_float_dimensions_are_the_integer(server: LocalServer, dimensions: float) -> None:
    status, payload = _call(
        server, "POST", "/v1/embeddings", {"inputs": "a b", "dimensions": dimensions}
    )
    assert status == 200, payload
    assert len(payload["data"][0]["embedding"]) == int(dimensions)


@pytest.mark.parametrize(
    ("dimensions", "status", "code"),
    [
        (63.5, 400, "invalid_type"),
        (0.0, 400, "invalid_value"),
        (385.0, 422, "dimensions_too_large"),
    ],
)
def test_other_float_dimensions_are_refused(
    server: LocalServer, dimensions: float, status: int, code: str
) -> None:
    answer = _call(server, "POST", "/v1/embeddings", {"inputs": "a", "dimensions": dimensions})
    assert answer[0] == status
    assert answer[1]["error"]["code"] == code


# -- item 11: fault paths relative to the base URL --------------------------------------------


@pytest.mark.parametrize(
    ("fault_path", "request_path"),
    [
        ("/models", "/v1/models"),
        ("/v1/models", "/v1/models"),
        ("/embeddings", "/v1/embeddings"),
        ("/models/aligne-embed-large", "/v1/models/aligne-embed-large"),
        ("/v1/models/nope", "/v1/models/nope"),
    ],
)
def test_enqueue_path_relative_to_the_base_url_matches(
    server: LocalServer, fault_path: str, request_path: str
) -> None:
    server.enqueue(Fault.status(503), path=fault_path)
    other = "/v1/models/x" if request_path != "/v1/models/x" else "/v1/models"
    assert _call(server, "GET", other)[0] != 503  # another endpoint does not take it
    method = "POST" if request_path.endswith("embeddings") else "GET"
    body = {"inputs": "a"} if method == "POST" else None
    assert _call(server, method, request_path, body)[0] == 503
    assert server.pending_faults == 0


@pytest.mark.parametrize(
    "path", ["/nowhere", "/v1/nowhere", "/v1", "/", "/models/", "/embeddings?x=1", "/v2/models"]
)
def test_enqueue_refuses_a_path_no_request_can_take(server: LocalServer, path: str) -> None:
    with pytest.raises(InvalidArgumentValueError, match="path") as info:
        server.enqueue(Fault.status(503), path=path)
    assert info.value.argument == "path"
    assert repr(path) in str(info.value)
    assert server.pending_faults == 0  # nothing half-enqueued


def test_enqueue_path_must_be_a_string(server: LocalServer) -> None:
    with pytest.raises(InvalidArgumentTypeError) as info:
        server.enqueue(Fault.none(), path=b"/models")  # type: ignore[arg-type]
    assert info.value.argument == "path"


# -- item 10: every text gets a unit vector ---------------------------------------------------

SHORT_TEXTS = ["0", "1", "a", "Z", "é", "_", "-", ".", " ", "\n", "\x00", "0 0", "00", "\U0001f600"]


@pytest.mark.parametrize("text", SHORT_TEXTS)
@pytest.mark.parametrize("dims", [1, 2, 3, 8, 64, 384, 1536])
def test_short_texts_get_unit_vectors(text: str, dims: int) -> None:
    vector = embed(text, dims)
    assert any(vector)
    assert math.isclose(math.fsum(x * x for x in vector), 1.0, rel_tol=1e-6)
    assert math.isclose(cosine_similarity(vector, vector), 1.0, rel_tol=1e-6)  # never NaN


def test_short_texts_through_the_server_are_unit_vectors(server: LocalServer) -> None:
    for encoding in ("float", "base64"):
        body = {"inputs": SHORT_TEXTS, "encoding_format": encoding}
        status, payload = _call(server, "POST", "/v1/embeddings", body)
        assert status == 200
        if encoding == "float":
            for item in payload["data"]:
                norm = math.fsum(x * x for x in item["embedding"])
                assert math.isclose(norm, 1.0, rel_tol=1e-6)


@settings(deadline=None, max_examples=300)
@given(text=st.text(min_size=1, max_size=3), dims=st.integers(1, 1536))
def test_any_short_text_any_size_is_unit_length(text: str, dims: int) -> None:
    vector = embed(text, dims)
    assert math.isclose(math.fsum(x * x for x in vector), 1.0, rel_tol=1e-5)
    assert embed(text, dims) == vector  # deterministic
