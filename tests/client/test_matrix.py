"""``embeddings.create_matrix``: base64 vectors decoded straight into one float32 matrix."""

from __future__ import annotations

import asyncio
import base64
import json
from array import array
from collections.abc import Iterator

import numpy as np
import pytest

from aligneai import (
    AligneAI,
    APIResponseValidationError,
    AsyncAligneAI,
    EmbeddingMatrix,
    InvalidArgumentError,
)
from aligneai.testing import Fault, LocalServer

ONE = base64.b64encode(bytes(4)).decode()  # one float32
TWO = base64.b64encode(bytes(8)).decode()  # two float32
TEXTS = ["the cat sat on the mat", "a cat sat on a mat", "stock markets fell sharply"]


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer() as running:
        yield running


@pytest.fixture(autouse=True)
def _reset(server: LocalServer) -> None:
    server.reset()


def _sync(server: LocalServer, **kwargs: object) -> EmbeddingMatrix:
    with AligneAI(api_key="k", base_url=server.url, max_retries=0) as client:
        return client.embeddings.create_matrix(**kwargs)  # type: ignore[arg-type]


def _async(server: LocalServer, **kwargs: object) -> EmbeddingMatrix:
    async def run() -> EmbeddingMatrix:
        async with AsyncAligneAI(api_key="k", base_url=server.url, max_retries=0) as client:
            return await client.embeddings.create_matrix(**kwargs)  # type: ignore[arg-type]

    return asyncio.run(run())


@pytest.fixture(params=[_sync, _async], ids=["sync", "async"])
def call(request: pytest.FixtureRequest, server: LocalServer):  # type: ignore[no-untyped-def]
    return lambda **kwargs: request.param(server, **kwargs)


def test_matrix_equals_the_list_response(call, server: LocalServer) -> None:  # type: ignore[no-untyped-def]
    result = call(inputs=TEXTS, dimensions=64)
    with AligneAI(api_key="k", base_url=server.url) as client:
        lists = client.embeddings.create(inputs=TEXTS, dimensions=64, encoding_format="float")
    assert isinstance(result, EmbeddingMatrix)
    assert result.matrix.dtype == np.float32
    assert result.matrix.shape == (3, 64)
    assert len(result) == 3
    np.testing.assert_array_equal(result.matrix, np.array(lists.to_numpy(), dtype=np.float32))
    assert result.model == lists.model
    assert result.usage == lists.usage
    assert server.requests[0].json["encoding_format"] == "base64"
    assert result.to_dict()["data"][2]["embedding"] == lists.data[2].embedding


def test_rows_follow_the_index_even_when_the_answer_is_shuffled(call, server: LocalServer) -> None:  # type: ignore[no-untyped-def]
    vectors = [array("f", [float(i), float(i) + 0.5]) for i in range(4)]
    items = [
        {"object": "embedding", "index": i, "embedding": base64.b64encode(v.tobytes()).decode()}
        for i, v in enumerate(vectors)
    ]
    body = {
        "object": "list",
        "data": [items[2], items[0], items[3], items[1]],
        "model": "m",
        "usage": {"prompt_tokens": 4, "total_tokens": 4},
    }
    server.enqueue(Fault.status(200, body=json.dumps(body)))
    result = call(inputs=["a", "b", "c", "d"])
    assert result.matrix.tolist() == [list(v) for v in vectors]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([{"index": 0, "embedding": ONE}, {"index": 0, "embedding": ONE}], "more than once"),
        ([{"index": 0, "embedding": ONE}, {"index": 1, "embedding": TWO}], "dimensions"),
        ([{"index": 0, "embedding": "AAAA"}], "3 bytes"),
        ([{"index": 0, "embedding": [0.5]}], "contract"),
    ],
    ids=["duplicate-index", "ragged", "not-float32", "float-json"],
)
def test_a_malformed_answer_is_a_validation_error(call, server: LocalServer, data, message) -> None:  # type: ignore[no-untyped-def]
    body = {
        "object": "list",
        "data": data,
        "model": "m",
        "usage": {"prompt_tokens": 1, "total_tokens": 1},
    }
    server.enqueue(Fault.status(200, body=json.dumps(body)))
    with pytest.raises(APIResponseValidationError, match=message):
        call(inputs=["a"] * len(data))


NAN = base64.b64encode(array("f", [float("nan")]).tobytes()).decode()


@pytest.mark.parametrize(
    ("inputs", "data", "dimensions", "message"),
    [
        (["a", "b"], [{"index": 0, "embedding": ONE}], None, "index 1 is missing"),
        (["a"], [], None, "no embedding"),
        (["a", "b"], [{"index": 0, "embedding": ONE}, {"index": 2, "embedding": ONE}], None,
         "outside 0..1"),
        (["a"], [{"index": -1, "embedding": ONE}], None, "index -1"),
        (["a"], [{"index": 0, "embedding": ""}], None, "empty"),
        (["a"], [{"index": 0, "embedding": TWO}], 3, "not 3"),
        (["a"], [{"index": 0, "embedding": NAN}], None, "NaN"),
    ],
    ids=["one-for-two", "no-data", "index-too-high", "negative-index", "empty-vector",
         "wrong-dimensions", "nan"],
)  # fmt: skip
def test_an_answer_that_breaks_the_request_contract_is_refused(  # type: ignore[no-untyped-def]
    call, server: LocalServer, inputs, data, dimensions, message
) -> None:
    # Before the contract checks, one item for two inputs gave a (1, 1) matrix.
    body = {
        "object": "list",
        "data": data,
        "model": "m",
        "usage": {"prompt_tokens": 1, "total_tokens": 1},
    }
    server.enqueue(Fault.status(200, body=json.dumps(body)))
    with pytest.raises(APIResponseValidationError, match=message):
        call(inputs=inputs, dimensions=dimensions)


def test_bad_input_is_rejected_before_sending(call, server: LocalServer) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgumentError, match="inputs"):
        call(inputs=[])
    with pytest.raises(InvalidArgumentError, match="extra_body"):
        call(inputs=["a"], extra_body={"encoding_format": "float"})
    assert server.requests == []
