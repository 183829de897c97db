"""Issue 12 item 3, end to end: an answer that breaks the contract of its request is refused.

Each case is served by the loopback server to both clients (the `api` fixture), through
``create`` in both encodings, ``create(stream=True)`` and ``create_matrix``: every one must
raise `APIResponseValidationError`, and a valid answer must still pass.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from aligneai import APIResponseValidationError

V = [0.5, -1.25, 3.0]


def _items(wire: Any, pairs: list[tuple[int, list[Any]]], fmt: str) -> list[dict[str, Any]]:
    return [wire.embedding_item(i, v, fmt) for i, v in pairs]


def _serve(api: Any, wire: Any, pairs: list[tuple[int, list[Any]]], how: str) -> None:
    if how == "stream":
        events = "".join(wire.sse_event("embedding", item) for item in _items(wire, pairs, "float"))
        api.server.reply("/embeddings", wire.sse_response(events + wire.sse_done()))
        return
    fmt = "float" if how == "float" else "base64"
    payload = {
        "object": "list",
        "data": _items(wire, pairs, fmt),
        "model": "m",
        "usage": {"prompt_tokens": 1, "total_tokens": 1},
    }
    api.server.reply("/embeddings", wire.json_response(payload))


def _call(api: Any, how: str, inputs: list[str], dimensions: int | None) -> Any:
    embeddings = api.client.embeddings
    if how == "stream":
        return list(embeddings.create(inputs=inputs, dimensions=dimensions, stream=True))
    if how == "matrix":
        return embeddings.create_matrix(inputs=inputs, dimensions=dimensions)
    return embeddings.create(inputs=inputs, dimensions=dimensions, encoding_format=how)


HOWS = ["float", "base64", "stream", "matrix"]


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize(
    ("inputs", "pairs", "dimensions"),
    [
        (["a"], [], None),
        (["a", "b"], [(0, V)], None),
        (["a", "b"], [(0, V), (5, V)], None),
        (["a", "b"], [(1, V), (1, V)], None),
        (["a", "b"], [(0, V), (1, V[:2])], None),
        (["a"], [(0, [])], None),
        (["a"], [(0, V)], 2),
    ],
    ids=["empty-data", "one-for-two", "index-out-of-range", "duplicate", "ragged", "empty-vector",
         "dimensions"],
)  # fmt: skip
def test_a_broken_answer_raises(
    api: Any, wire: Any, how: str, inputs: list[str], pairs: Any, dimensions: int | None
) -> None:
    _serve(api, wire, pairs, how)
    with pytest.raises(APIResponseValidationError, match="contract"):
        _call(api, how, inputs, dimensions)


@pytest.mark.parametrize("how", ["float", "stream"])
def test_a_vector_holding_true_raises(api: Any, wire: Any, how: str) -> None:
    _serve(api, wire, [(0, [0.5, True, 1.0])], how)
    with pytest.raises(APIResponseValidationError):
        _call(api, how, ["a"], None)


@pytest.mark.parametrize("how", HOWS)
def test_a_valid_shuffled_answer_passes(api: Any, wire: Any, how: str) -> None:
    vectors = {0: [0.5, 1.0], 1: [0.25, -2.0], 2: [1.5, 0.0]}
    _serve(api, wire, [(2, vectors[2]), (0, vectors[0]), (1, vectors[1])], how)
    result = _call(api, how, ["a", "b", "c"], 2)
    if how == "matrix":
        assert result.matrix.tolist() == [vectors[0], vectors[1], vectors[2]]
    elif how == "stream":
        assert [(e.index, e.embedding) for e in result] == [(i, vectors[i]) for i in (2, 0, 1)]
    else:
        assert [e.embedding for e in result.data] == [vectors[0], vectors[1], vectors[2]]
    assert json.loads(api.server.requests[-1].get_data())["dimensions"] == 2
