"""Tests of aligneai.core.models, .converter and .parsing: the models and the wire contract."""

from __future__ import annotations

import base64
import copy
import json
import pickle
import struct
from typing import Any

import attrs
import cattrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aligneai.core import parsing
from aligneai.core.converter import decode_base64_vector, default_converter
from aligneai.core.errors import APIError, APIResponseValidationError
from aligneai.core.models import (
    CreateEmbeddingResponse,
    Embedding,
    EmbeddingStreamDone,
    Model,
    ModelList,
    Usage,
    WireModel,
)
from aligneai.core.parsing import parse_json, parse_model, structure
from aligneai.core.response import ResponseHead
from aligneai.testing.contract import strict_converter

MODEL_CLASSES = [Usage, Embedding, CreateEmbeddingResponse, EmbeddingStreamDone, Model, ModelList]

ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
finite = st.floats(allow_nan=False, allow_infinity=False)
f32 = st.floats(allow_nan=False, allow_infinity=False, width=32)
vectors = st.lists(finite, max_size=8)
texts = st.text(max_size=10)


def to_base64(floats: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(floats)}f", *floats)).decode("ascii")


usages = st.builds(Usage, prompt_tokens=ints, total_tokens=ints)
embeddings = st.builds(Embedding, object=texts, index=ints, embedding=vectors)
responses = st.builds(
    CreateEmbeddingResponse,
    object=texts,
    # The converter orders data by index, as the API does: generate them in that order.
    data=st.lists(vectors, max_size=4).map(
        lambda vs: [Embedding(index=i, embedding=v) for i, v in enumerate(vs)]
    ),
    model=texts,
    usage=usages,
)
stream_dones = st.builds(EmbeddingStreamDone, object=texts, model=texts, usage=usages)
models = st.builds(Model, id=texts, object=texts, created=ints, owned_by=texts, dimensions=ints)
model_lists = st.builds(ModelList, object=texts, data=st.lists(models, max_size=4))
any_model = st.one_of(usages, embeddings, responses, stream_dones, models, model_lists)


def assert_plain(value: Any) -> None:
    """The unstructured form holds only plain dicts, lists and scalars."""
    assert not isinstance(value, WireModel)
    if isinstance(value, dict):
        assert type(value) is dict
        for v in value.values():
            assert_plain(v)
    elif isinstance(value, list):
        assert type(value) is list
        for v in value:
            assert_plain(v)


# --- round trips ------------------------------------------------------------------------------


@given(any_model)
def test_converter_json_pickle_and_copy_round_trips(model: WireModel) -> None:
    for conv in (default_converter(), strict_converter()):
        raw = conv.unstructure(model)
        assert_plain(raw)
        again = conv.structure(raw, type(model))
        assert again == model and type(again) is type(model) and dict(again) == dict(model)
    as_dict = model.to_dict()
    assert_plain(as_dict)
    assert json.loads(json.dumps(model)) == as_dict
    # to_dict walks the fields itself (the models do not import the converter): same result
    assert as_dict == default_converter().unstructure(model)
    assert json.loads(model.to_json(indent=2)) == as_dict
    # and back through the client's parser
    assert parse_model(ResponseHead(200, {}), json.dumps(model).encode(), type(model)) == model
    for protocol in (0, pickle.HIGHEST_PROTOCOL):
        clone = pickle.loads(pickle.dumps(model, protocol=protocol))
        assert type(clone) is type(model)
        assert clone == model and dict(clone) == dict(model)
    deep = copy.deepcopy(model)
    assert type(deep) is type(model) and deep == model and dict(deep) == dict(model)
    for field in attrs.fields(type(model)):
        value = getattr(model, field.name)
        if isinstance(value, list):
            assert getattr(deep, field.name) is not value
            assert deep[field.name] is getattr(deep, field.name)
    assert copy.copy(model) is model


# --- the dict view ----------------------------------------------------------------------------


MUTATIONS = [
    ("setitem", lambda m: m.__setitem__("x", 1)),
    ("setitem existing", lambda m: m.__setitem__(next(iter(m)), "changed")),
    ("delitem", lambda m: m.__delitem__(next(iter(m)))),
    ("clear", lambda m: m.clear()),
    ("pop", lambda m: m.pop(next(iter(m)))),
    ("popitem", lambda m: m.popitem()),
    ("setdefault", lambda m: m.setdefault("x", 1)),
    ("update", lambda m: m.update({"x": 1})),
    ("update kwargs", lambda m: m.update(x=1)),
    ("ior", lambda m: m.__ior__({"x": 1})),
]


@given(any_model)
def test_dict_view_mirrors_the_fields_and_is_read_only(model: WireModel) -> None:
    names = [f.name for f in attrs.fields(type(model))]
    assert sorted(model) == sorted(names)
    for name in names:
        assert model[name] is getattr(model, name)
    before = dict(model)
    for name, mutate in MUTATIONS:
        with pytest.raises(TypeError, match="read-only"):
            mutate(model)
        assert dict(model) == before, name
    # to_dict is a deep, independent copy
    first = model.to_dict()
    first["injected"] = 1
    for value in first.values():
        if isinstance(value, list):
            value.append("x")
    assert "injected" not in model
    assert model.to_dict() == json.loads(json.dumps(model))
    evolved = attrs.evolve(model)
    assert evolved == model and dict(evolved) == dict(model)


def test_in_place_or_operator_is_blocked() -> None:
    usage = Usage(prompt_tokens=1, total_tokens=2)
    target = usage
    with pytest.raises(TypeError):
        target |= {"prompt_tokens": 5}
    assert usage["prompt_tokens"] == 1 and usage.prompt_tokens == 1
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        usage.prompt_tokens = 3  # type: ignore[misc]


# --- strict vs lenient ------------------------------------------------------------------------

extra_keys = st.text(min_size=1, max_size=8).filter(
    lambda k: (
        k
        not in {
            "object",
            "index",
            "embedding",
            "data",
            "model",
            "usage",
            "id",
            "created",
            "owned_by",
            "dimensions",
            "prompt_tokens",
            "total_tokens",
        }
    )
)


def _nested_dicts(raw: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(raw, dict):
        found.append(raw)
        for v in raw.values():
            found.extend(_nested_dicts(v))
    elif isinstance(raw, list):
        for v in raw:
            found.extend(_nested_dicts(v))
    return found


def _forbidden_keys(exc: BaseException) -> set[str]:
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return set(exc.extra_fields)
    keys: set[str] = set()
    for sub in getattr(exc, "exceptions", ()):
        keys |= _forbidden_keys(sub)
    return keys


@given(any_model, extra_keys, st.data())
def test_strict_rejects_unknown_fields_default_ignores(
    model: WireModel, key: str, data: st.DataObject
) -> None:
    raw = model.to_dict()
    target = data.draw(st.sampled_from(_nested_dicts(raw)), label="object with the extra field")
    target[key] = data.draw(st.one_of(st.none(), ints, texts), label="extra value")
    assert default_converter().structure(raw, type(model)) == model
    with pytest.raises(cattrs.BaseValidationError) as info:
        strict_converter().structure(raw, type(model))
    assert key in _forbidden_keys(info.value)
    head = ResponseHead(200, {"x-request-id": "r"})
    with pytest.raises(APIResponseValidationError) as err:
        structure(head, raw, type(model), converter=strict_converter())
    assert err.value.request_id == "r" and err.value.status_code == 200


# --- base64 vectors ---------------------------------------------------------------------------


@given(st.lists(st.floats(width=32), max_size=32))
def test_base64_decodes_to_the_float32_values(floats: list[float]) -> None:
    packed = struct.pack(f"<{len(floats)}f", *floats)
    decoded = decode_base64_vector(base64.b64encode(packed).decode("ascii"))
    assert len(decoded) == len(floats)
    assert struct.pack(f"<{len(decoded)}f", *decoded) == packed  # bit for bit, NaN included
    finite_only = [f for f in floats if f == f]
    assert decode_base64_vector(to_base64(finite_only)) == finite_only


@given(st.lists(f32, min_size=1, max_size=6), st.lists(st.lists(f32, max_size=6), max_size=3))
def test_base64_and_float_answers_parse_to_the_same_model(
    first: list[float], more: list[list[float]]
) -> None:
    vectors_ = [first, *more]

    def answer(encode: Any) -> bytes:
        return json.dumps(
            {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": i, "embedding": encode(v)}
                    for i, v in enumerate(vectors_)
                ],
                "model": "aligne-embed-1",
                "usage": {"prompt_tokens": 3, "total_tokens": 3},
            }
        ).encode()

    head = ResponseHead(200, {})
    as_floats = parse_model(head, answer(list), CreateEmbeddingResponse)
    as_b64 = parse_model(head, answer(to_base64), CreateEmbeddingResponse)
    assert as_b64 == as_floats
    assert [e.embedding for e in as_b64.data] == vectors_


@pytest.mark.parametrize("value", ["AAA=", "AAAAAAA=", "AAAAAAAAAAAAAA==", "é"])
def test_invalid_base64_vectors(value: str) -> None:
    with pytest.raises(ValueError):
        decode_base64_vector(value)


def test_bad_base64_in_a_response_is_a_validation_error() -> None:
    body = json.dumps(
        {
            "data": [{"index": 0, "embedding": "AAA="}],
            "model": "m",
            "usage": {"prompt_tokens": 1, "total_tokens": 1},
        }
    ).encode()
    with pytest.raises(APIResponseValidationError) as info:
        parse_model(ResponseHead(200, {}), body, CreateEmbeddingResponse)
    assert "body.data" in info.value.message and "embedding" in info.value.message


# --- parse_model on any input -----------------------------------------------------------------

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), ints, finite, texts),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(texts, c, max_size=3),
    max_leaves=8,
)


def fuzzed(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(valid, valid, json_values)


def wire_dicts(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Mostly-valid wire objects: any field may be missing or of the wrong type."""
    return st.fixed_dictionaries({}, optional={k: fuzzed(v) for k, v in fields.items()})


wire_usage = wire_dicts({"prompt_tokens": ints, "total_tokens": ints})
wire_embedding = wire_dicts(
    {
        "object": st.just("embedding"),
        "index": ints,
        "embedding": st.one_of(vectors, st.lists(f32, max_size=4).map(to_base64), texts),
    }
)
wire_model = wire_dicts(
    {"id": texts, "object": texts, "created": ints, "owned_by": texts, "dimensions": ints}
)
WIRE = {
    Usage: wire_usage,
    Embedding: wire_embedding,
    CreateEmbeddingResponse: wire_dicts(
        {
            "object": texts,
            "data": st.lists(wire_embedding, max_size=3),
            "model": texts,
            "usage": wire_usage,
        }
    ),
    EmbeddingStreamDone: wire_dicts({"object": texts, "model": texts, "usage": wire_usage}),
    Model: wire_model,
    ModelList: wire_dicts({"object": texts, "data": st.lists(wire_model, max_size=3)}),
}


@st.composite
def bodies_for(draw: st.DrawFn, cls: type[WireModel]) -> bytes:
    choice = draw(st.integers(min_value=0, max_value=3))
    if choice == 0:
        return draw(st.binary(max_size=40))
    if choice == 1:
        return json.dumps(draw(json_values)).encode()
    doc = draw(WIRE[cls])
    raw = json.dumps(doc).encode()
    if choice == 3 and raw:
        cut = draw(st.integers(min_value=0, max_value=len(raw) - 1))
        return raw[:cut]
    return raw


@st.composite
def any_2xx_input(draw: st.DrawFn) -> tuple[ResponseHead, bytes, type[WireModel]]:
    cls = draw(st.sampled_from(MODEL_CLASSES))
    status = draw(st.integers(min_value=200, max_value=299))
    headers = draw(st.dictionaries(st.sampled_from(["x-request-id", "content-type"]), texts))
    return ResponseHead(status, headers), draw(bodies_for(cls)), cls


@given(any_2xx_input())
def test_parse_model_returns_the_model_or_a_validation_error(
    case: tuple[ResponseHead, bytes, type[WireModel]],
) -> None:
    head, body, cls = case
    try:
        result = parse_model(head, body, cls)
    except APIResponseValidationError as err:
        assert isinstance(err, APIError)
        assert err.status_code == head.status_code
        assert err.request_id == head.headers.get("x-request-id")
        assert err.message and len(err.message) < 1200
        return
    assert type(result) is cls
    # whatever parsed is a faithful model: its wire form survives a second trip
    assert parse_model(head, json.dumps(result).encode(), cls) == result
    if isinstance(result, CreateEmbeddingResponse):
        assert [e.index for e in result.data] == sorted(e.index for e in result.data)


@given(st.binary(max_size=2000))
def test_parse_json_failure_keeps_a_bounded_body(body: bytes) -> None:
    head = ResponseHead(201, {"x-request-id": "req"})
    try:
        value = parse_json(head, body)
    except APIResponseValidationError as err:
        assert err.body == body[:1024]
        assert err.status_code == 201 and err.request_id == "req"
        assert "not valid JSON" in err.message
    else:
        assert value == json.loads(body.decode("utf-8"))


@pytest.mark.parametrize("backend", ["default", "stdlib-json"])
@pytest.mark.parametrize("cls", [Usage, CreateEmbeddingResponse], ids=lambda c: c.__name__)
def test_deeply_nested_2xx_body_is_a_validation_error(
    monkeypatch: pytest.MonkeyPatch, backend: str, cls: type[WireModel]
) -> None:
    # Without orjson (an optional extra), json.loads raises RecursionError on deep nesting;
    # parse_json catches only ValueError/TypeError, so the RecursionError escapes.
    if backend == "stdlib-json":
        monkeypatch.setattr(parsing, "loads", json.loads)
    with pytest.raises(APIResponseValidationError):
        parse_model(ResponseHead(200, {}), b"[" * 100_000, cls)


@pytest.mark.parametrize(
    ("cls", "doc", "where"),
    [
        (Usage, {"prompt_tokens": "3", "total_tokens": 3}, "prompt_tokens"),
        (Usage, {"prompt_tokens": 3.5, "total_tokens": 3}, "prompt_tokens"),
        (Usage, {"prompt_tokens": True, "total_tokens": 3}, "prompt_tokens"),
        (Usage, {"prompt_tokens": 3}, "total_tokens"),
        (Model, {"id": 5, "created": 1, "owned_by": "o", "dimensions": 3}, "id"),
        (Embedding, {"index": 0, "embedding": ["a"]}, "embedding"),
        (Embedding, {"index": 0, "embedding": [[1.0]]}, "embedding"),
        (Embedding, {"index": 0, "embedding": {"0": 1.0}}, "embedding"),
        (Embedding, {"index": 0, "embedding": None}, "embedding"),
        (ModelList, {"data": {"id": "m"}}, "data"),
        (CreateEmbeddingResponse, {"data": [], "model": "m", "usage": None}, "usage"),
    ],
)
def test_type_drift_is_reported(cls: type[WireModel], doc: dict[str, Any], where: str) -> None:
    with pytest.raises(APIResponseValidationError) as info:
        parse_model(ResponseHead(200, {}), json.dumps(doc).encode(), cls)
    assert where in info.value.message
    assert info.value.body == doc


@given(st.permutations(list(range(6))))
def test_data_is_ordered_by_index(order: list[int]) -> None:
    doc = {
        "data": [{"index": i, "embedding": [float(i)]} for i in order],
        "model": "m",
        "usage": {"prompt_tokens": 1, "total_tokens": 1},
    }
    result = parse_model(ResponseHead(200, {}), json.dumps(doc).encode(), CreateEmbeddingResponse)
    assert [e.index for e in result.data] == list(range(6))
    assert [e.embedding for e in result.data] == [[float(i)] for i in range(6)]
    assert result.object == "list" and result.data[0].object == "embedding"


@pytest.mark.parametrize("rows", [[], [[0.5, -1.0, 2.0]], [[1.0, 2.0], [3.0, 4.0]]])
def test_to_numpy(rows: list[list[float]]) -> None:
    import numpy as np

    response = CreateEmbeddingResponse(
        data=[Embedding(index=i, embedding=r) for i, r in enumerate(rows)],
        model="m",
        usage=Usage(prompt_tokens=0, total_tokens=0),
    )
    matrix = response.to_numpy()
    assert matrix.dtype == np.float32
    assert matrix.shape == ((len(rows), len(rows[0])) if rows else (0, 0))
    assert matrix.tolist() == rows
    assert response.to_numpy(dtype="float64").dtype == np.float64


# --- to_numpy's dtype (issue 12 item 4: bad input gives our error, naming the argument) --------


@pytest.mark.parametrize(
    ("dtype", "builtin"),
    [("int32", ValueError), ("bool", ValueError), ("U4", ValueError), ("not-a-dtype", TypeError),
     (object(), TypeError)],
)  # fmt: skip
def test_to_numpy_refuses_a_dtype_that_is_not_floating_point(
    dtype: object, builtin: type[Exception]
) -> None:
    from aligneai.core.errors import InvalidArgumentError

    response = CreateEmbeddingResponse(
        data=[Embedding(index=0, embedding=[0.5, 1.5])],
        model="m",
        usage=Usage(prompt_tokens=1, total_tokens=1),
    )
    with pytest.raises(builtin) as info:
        response.to_numpy(dtype=dtype)
    assert isinstance(info.value, InvalidArgumentError) and info.value.argument == "dtype"
    assert response.to_numpy(dtype="float64").tolist() == [[0.5, 1.5]]
