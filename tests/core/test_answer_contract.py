"""The request/answer contract: one embedding per input, one length, finite numbers only.

Each broken answer is fed to every parser the client uses (``create`` in float and base64,
``create_matrix``, and the stream decoder, whole and event by event); all must raise
`APIResponseValidationError`. The expected verdicts come from a direct model of the contract
(sorted indexes equal ``range(n)``), not from the tracker under test.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aligneai.core.answer_contract import (
    AnswerContract,
    AnswerTracker,
    check_answer,
    model_problem,
    usage_problem,
)
from aligneai.core.converter import check_vector
from aligneai.core.embedding_stream import EmbeddingStreamDecoder, contract_of
from aligneai.core.errors import APIResponseValidationError
from aligneai.core.operations import (
    create_embedding_matrix,
    create_embeddings,
    list_models,
    retrieve_model,
)
from aligneai.core.request import Request, encode_json_body
from aligneai.core.response import ResponseHead

HEAD = ResponseHead(200, {"x-request-id": "req-1"})


def b64(vector: list[Any]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def answer(items: list[tuple[int, list[Any]]], fmt: str = "float") -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": v if fmt == "float" else b64(v)}
            for i, v in items
        ],
        "model": "m",
        "usage": {"prompt_tokens": 1, "total_tokens": 1},
    }


def request_for(body: Any) -> Request:
    return Request(
        method="POST", url="http://h/v1/embeddings", headers={}, body=encode_json_body(body)
    )


def sse(items: list[tuple[int, list[Any]]], fmt: str = "float") -> bytes:
    out = []
    for item in answer(items, fmt)["data"]:
        out.append(f"event: embedding\ndata: {json.dumps(item)}\n\n")
    done = {"object": "list", "model": "m", "usage": {"prompt_tokens": 1, "total_tokens": 1}}
    out.append(f"event: done\ndata: {json.dumps(done)}\n\n")
    return "".join(out).encode()


def run_stream(
    inputs: list[str], items: list[tuple[int, list[Any]]], fmt: str, dimensions: int | None,
    *, byte_by_byte: bool = False,
) -> list[Any]:  # fmt: skip
    op = create_embeddings(inputs=inputs, stream=True, dimensions=dimensions, encoding_format=fmt)
    decoder = EmbeddingStreamDecoder(HEAD, request_for(op.body))
    body = sse(items, fmt)
    chunks = [body[i : i + 1] for i in range(len(body))] if byte_by_byte else [body]
    got = [item for chunk in chunks for item in decoder.feed(chunk)]
    decoder.close()
    return got


def every_parser(
    inputs: list[str], items: list[tuple[int, list[Any]]], dimensions: int | None = None
) -> list[tuple[str, Any]]:
    """(name, thunk) for each way the client parses an answer to this request."""
    cases: list[tuple[str, Any]] = []
    for fmt in ("float", "base64"):
        op = create_embeddings(inputs=inputs, encoding_format=fmt, dimensions=dimensions)
        body = json.dumps(answer(items, fmt)).encode()
        assert op.parser is not None
        cases.append((f"create-{fmt}", lambda op=op, body=body: op.parser(HEAD, body)))
        for whole in (True, False):
            cases.append(
                (
                    f"stream-{fmt}-{'whole' if whole else 'bytes'}",
                    lambda fmt=fmt, whole=whole: run_stream(
                        inputs, items, fmt, dimensions, byte_by_byte=not whole
                    ),
                )
            )
    mop = create_embedding_matrix(inputs=inputs, dimensions=dimensions)
    mbody = json.dumps(answer(items, "base64")).encode()
    assert mop.parser is not None
    cases.append(("matrix", lambda: mop.parser(HEAD, mbody)))
    return cases


V = [0.5, -1.25, 3.0]

BROKEN = [
    # (inputs, items, dimensions, words the message must hold)
    (["a"], [], None, "no embedding"),
    (["a", "b"], [(0, V)], None, "index 1 is missing"),
    (["a", "b"], [(0, V), (2, V)], None, "outside 0..1"),
    (["a"], [(-1, V)], None, "index -1"),
    (["a", "b"], [(0, V), (0, V)], None, "more than once"),
    (["a", "b", "c"], [(2, V), (1, V), (2, V)], None, "more than once"),
    (["a", "b"], [(0, V), (1, V[:2])], None, "2 dimensions, not 3"),
    (["a"], [(0, [])], None, "empty"),
    (["a"], [(0, V)], 4, "not 4"),
    ("a", [(0, V), (1, V)], None, "outside 0..0"),
]


@pytest.mark.parametrize(("inputs", "items", "dimensions", "words"), BROKEN)
def test_every_parser_refuses_an_answer_that_breaks_the_contract(
    inputs: Any, items: list[tuple[int, list[Any]]], dimensions: int | None, words: str
) -> None:
    for name, parse in every_parser(
        inputs if isinstance(inputs, list) else [inputs], items, dimensions
    ):
        with pytest.raises(APIResponseValidationError) as info:
            parse()
        assert words in str(info.value), name
        assert info.value.status_code == 200 and info.value.request_id == "req-1", name


@pytest.mark.parametrize(
    "vector",
    [[0.5, True, 1.0], [False], [0.5, None], [0.5, "1.0"], [[0.5]], [{"x": 1}]],
    ids=["true", "false", "null", "string", "nested-list", "object"],
)
def test_only_numbers_pass_as_a_float_vector(vector: list[Any]) -> None:
    op = create_embeddings(inputs="a", encoding_format="float")
    body = json.dumps(answer([(0, vector)])).encode()
    with pytest.raises(APIResponseValidationError):
        op.parser(HEAD, body)  # type: ignore[misc]
    with pytest.raises(APIResponseValidationError):
        run_stream(["a"], [(0, vector)], "float", None)


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused(bad: str) -> None:
    # The stdlib json decoder accepts NaN and Infinity (orjson does not): either way, refused.
    usage = '"usage":{"prompt_tokens":1,"total_tokens":1}'
    body = f'{{"data":[{{"index":0,"embedding":[0.5,{bad}]}}],"model":"m",{usage}}}'.encode()
    op = create_embeddings(inputs="a", encoding_format="float")
    with pytest.raises(APIResponseValidationError):
        op.parser(HEAD, body)  # type: ignore[misc]
    for value in (math.nan, math.inf):
        b64_body = json.dumps(answer([(0, [0.5, value])], "base64")).encode()
        with pytest.raises(APIResponseValidationError):
            create_embeddings(inputs="a").parser(HEAD, b64_body)  # type: ignore[misc]
        with pytest.raises(APIResponseValidationError):
            create_embedding_matrix(inputs="a").parser(HEAD, b64_body)  # type: ignore[misc]


@given(st.data())
def test_any_permutation_passes_every_parser(data: st.DataObject) -> None:
    n = data.draw(st.integers(min_value=1, max_value=6), label="inputs")
    dims = data.draw(st.integers(min_value=1, max_value=4), label="dimensions")
    order = data.draw(st.permutations(range(n)), label="order")
    vectors = {i: [float(i) + j / 4 for j in range(dims)] for i in range(n)}
    items = [(i, vectors[i]) for i in order]
    asked = data.draw(st.sampled_from([None, dims]), label="asked")
    inputs = [f"t{i}" for i in range(n)]
    for name, parse in every_parser(inputs, items, asked):
        result = parse()
        if name == "matrix":
            assert result.matrix.tolist() == [vectors[i] for i in range(n)]
        elif name.startswith("create"):
            assert [(e.index, e.embedding) for e in result.data] == sorted(items)
        else:  # a stream hands items out in arrival order
            assert [(e.index, e.embedding) for e in result] == items


index_lists = st.lists(st.integers(min_value=-2, max_value=8), max_size=8)


@given(index_lists, st.none() | st.integers(min_value=1, max_value=7))
def test_tracker_accepts_exactly_the_permutations(indexes: list[int], inputs: int | None) -> None:
    n = len(indexes) if inputs is None else inputs
    is_permutation = bool(indexes) and sorted(indexes) == list(range(n))
    verdict = check_answer(AnswerContract(inputs=inputs), [(i, 3) for i in indexes])
    assert (verdict is None) == is_permutation, verdict


@given(
    st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=6),
    st.none() | st.integers(min_value=1, max_value=4),
)
def test_tracker_accepts_exactly_one_nonzero_length(lengths: list[int], asked: int | None) -> None:
    items = list(enumerate(lengths))
    expected_ok = 0 not in lengths and len(set(lengths) | ({asked} if asked else set())) == 1
    verdict = check_answer(AnswerContract(inputs=len(lengths), dimensions=asked), items)
    assert (verdict is None) == expected_ok, verdict


@given(index_lists)
def test_tracker_reports_as_early_as_the_items_allow(indexes: list[int]) -> None:
    # The first add() that fails is the first item that is out of range or a repeat.
    n = 5
    tracker = AnswerTracker(AnswerContract(inputs=n))
    seen: set[int] = set()
    for i in indexes:
        bad = not 0 <= i < n or i in seen
        assert (tracker.add(i, 2) is not None) == bad
        if bad:
            return
        seen.add(i)
    assert (tracker.finish() is None) == (seen == set(range(n)))


@given(
    st.one_of(
        st.text(max_size=3).map(lambda t: {"inputs": t}),
        st.lists(st.text(max_size=3), max_size=4).map(lambda t: {"inputs": t}),
        st.dictionaries(
            st.sampled_from(["inputs", "dimensions", "x"]), st.integers() | st.booleans()
        ),
        st.integers(),
    )
)
def test_contract_for_body(body: Any) -> None:
    contract = AnswerContract.for_body(body)
    inputs = body.get("inputs") if isinstance(body, dict) else None
    expected = 1 if isinstance(inputs, str) else len(inputs) if isinstance(inputs, list) else None
    assert contract.inputs == expected
    dims = body.get("dimensions") if isinstance(body, dict) else None
    assert contract.dimensions == (dims if type(dims) is int else None)


def test_contract_of_a_request() -> None:
    op = create_embeddings(inputs=["a", "b"], dimensions=8)
    assert contract_of(request_for(op.body)) == AnswerContract(inputs=2, dimensions=8)
    assert contract_of(None) == AnswerContract()
    bad = Request(method="POST", url="http://h/", headers={}, body=b"\xff not json")
    assert contract_of(bad) == AnswerContract()


numbers_ = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**60), 2**60)


@given(st.lists(numbers_, max_size=8), st.data())
def test_check_vector_refuses_exactly_the_non_numbers(
    vector: list[Any], data: st.DataObject
) -> None:
    check_vector(vector)  # all numbers: passes
    intruder = data.draw(
        st.sampled_from([True, False, None, "1", [1.0], math.nan, math.inf, -math.inf, 10**400])
    )
    at = data.draw(st.integers(min_value=0, max_value=len(vector)))
    with pytest.raises((TypeError, ValueError)):
        check_vector([*vector[:at], intruder, *vector[at:]])


def test_huge_but_finite_numbers_pass() -> None:
    # Their sum overflows to inf; each one is finite: the slow path must say so.
    check_vector([1e308, 1e308, -1e308])


# --- token counts and models ------------------------------------------------------------------


@given(st.integers(-3, 3), st.integers(-3, 3))
def test_usage_counts_must_not_be_negative(prompt: int, total: int) -> None:
    assert (usage_problem(prompt, total) is None) == (prompt >= 0 and total >= 0)


@given(st.text(max_size=3), st.integers(-2, 3))
def test_a_model_needs_an_id_and_a_dimension(model_id: str, dimensions: int) -> None:
    assert (model_problem(model_id, dimensions) is None) == (model_id != "" and dimensions >= 1)


def test_negative_usage_is_refused_by_every_embeddings_parser() -> None:
    payload = answer([(0, V)], "base64")
    payload["usage"] = {"prompt_tokens": -1, "total_tokens": 3}
    body = json.dumps(payload).encode()
    for op in (create_embeddings(inputs="a"), create_embedding_matrix(inputs="a")):
        with pytest.raises(APIResponseValidationError, match="negative token counts"):
            op.parser(HEAD, body)  # type: ignore[misc]
    decoder = EmbeddingStreamDecoder(HEAD, request_for(create_embeddings(inputs="a").body))
    done = {"object": "list", "model": "m", "usage": {"prompt_tokens": 1, "total_tokens": -5}}
    item = json.dumps(answer([(0, V)])["data"][0])
    stream = f"event: embedding\ndata: {item}\n\nevent: done\ndata: {json.dumps(done)}\n\n"
    with pytest.raises(APIResponseValidationError, match="negative token counts"):
        list(decoder.feed(stream.encode()))


@pytest.mark.parametrize(("model_id", "dimensions"), [("", 3), ("m", 0), ("m", -1)])
def test_models_answers_are_checked(model_id: str, dimensions: int) -> None:
    model = {
        "id": model_id,
        "object": "model",
        "created": 1,
        "owned_by": "o",
        "dimensions": dimensions,
    }
    for op, payload in (
        (retrieve_model("m"), model),
        (list_models(), {"object": "list", "data": [model]}),
    ):
        with pytest.raises(APIResponseValidationError, match="contract"):
            op.parser(HEAD, json.dumps(payload).encode())  # type: ignore[misc]
    good = {**model, "id": "m", "dimensions": 8}
    assert retrieve_model("m").parser(HEAD, json.dumps(good).encode()).dimensions == 8  # type: ignore[misc]
