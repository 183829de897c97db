"""The models' generated dict-view fillers and fast-path builders (issue #16).

A model built by `build_embedding` & co. (the parser's fast path) or by the attrs constructor
(whose ``__attrs_post_init__`` fills the dict view with a generated filler) must be the same
value in every observable way as one whose dict view is written out by hand here: fields,
dict view (content and key order), equality, repr, JSON, pickle.
"""

from __future__ import annotations

import json
import pickle
from typing import Any

import attrs
from hypothesis import given
from hypothesis import strategies as st

from aligneai.core import models
from aligneai.core.models import CreateEmbeddingResponse, Embedding, Usage, WireModel

ints = st.integers(min_value=0, max_value=2**63 - 1)
texts = st.text(max_size=10)
vectors = st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=8)


def assert_same_model(built: WireModel, expected_fields: dict[str, Any], cls: type) -> None:
    assert type(built) is cls
    # The dict view: exactly the wire fields, in the order the API documents.
    assert list(built.items()) == list(expected_fields.items())
    for name, value in expected_fields.items():
        assert getattr(built, name) is value  # shared, not copied
    assert json.loads(json.dumps(built)) == json.loads(json.dumps(expected_fields))
    assert pickle.loads(pickle.dumps(built)) == built


@given(kind=texts, index=ints, vector=vectors)
def test_build_embedding_equals_the_constructor(kind: str, index: int, vector: list[float]) -> None:
    fields = {"object": kind, "index": index, "embedding": vector}
    built = models.build_embedding(object=kind, index=index, embedding=vector)
    assert_same_model(built, fields, Embedding)
    constructed = Embedding(object=kind, index=index, embedding=vector)
    assert_same_model(constructed, fields, Embedding)
    assert built == constructed
    assert repr(built) == repr(constructed)


@given(prompt=ints, total=ints, kind=texts, model=texts, vectors=st.lists(vectors, max_size=3))
def test_build_response_equals_the_constructor(
    prompt: int, total: int, kind: str, model: str, vectors: list[list[float]]
) -> None:
    usage = models.build_usage(prompt_tokens=prompt, total_tokens=total)
    assert_same_model(usage, {"prompt_tokens": prompt, "total_tokens": total}, Usage)
    data = [
        models.build_embedding(object="embedding", index=i, embedding=v)
        for i, v in enumerate(vectors)
    ]
    fields = {"object": kind, "data": data, "model": model, "usage": usage}
    built = models.build_embedding_response(**fields)
    assert_same_model(built, fields, CreateEmbeddingResponse)
    constructed = CreateEmbeddingResponse(
        object=kind,
        data=[Embedding(index=i, embedding=v) for i, v in enumerate(vectors)],
        model=model,
        usage=Usage(prompt_tokens=prompt, total_tokens=total),
    )
    assert built == constructed
    assert built.to_dict() == constructed.to_dict()
    assert attrs.evolve(built, model="other") == attrs.evolve(constructed, model="other")


def test_a_built_model_is_frozen_and_read_only() -> None:
    built = models.build_embedding(object="embedding", index=0, embedding=[1.0])
    try:
        built.index = 1  # type: ignore[misc]
    except attrs.exceptions.FrozenInstanceError:
        pass
    else:  # pragma: no cover - the assertion
        raise AssertionError("a built model accepted an attribute change")
    try:
        built["index"] = 1
    except TypeError:
        pass
    else:  # pragma: no cover
        raise AssertionError("a built model's dict view accepted a change")
    assert built.index == 0 and built["index"] == 0


def test_a_class_whose_fields_convert_or_validate_keeps_its_own_constructor() -> None:
    @attrs.frozen(kw_only=True)
    class Converted(WireModel):
        count: int = attrs.field(converter=int)

    @attrs.frozen(kw_only=True)
    class Validated(WireModel):
        count: int = attrs.field(validator=attrs.validators.instance_of(int))

    assert models._make_builder(Converted) is Converted
    assert models._make_builder(Validated) is Validated
    assert dict(Converted(count="3")) == {"count": 3}  # type: ignore[arg-type]


def test_a_subclass_with_more_fields_fills_its_whole_dict_view() -> None:
    # The filler is made per class: a subclass never reuses its parent's (fewer fields).
    @attrs.frozen(kw_only=True)
    class Tagged(Usage):
        tag: str

    assert dict(Usage(prompt_tokens=1, total_tokens=2)) == {"prompt_tokens": 1, "total_tokens": 2}
    tagged = Tagged(prompt_tokens=1, total_tokens=2, tag="t")
    assert list(tagged.items()) == [("prompt_tokens", 1), ("total_tokens", 2), ("tag", "t")]
    built = models._make_builder(Tagged)(prompt_tokens=1, total_tokens=2, tag="t")
    assert built == tagged and list(built.items()) == list(tagged.items())


def test_the_parsers_builders_fill_a_layout_twin() -> None:
    # The fast construction (issue #16): a plain twin class filled, then turned into the model.
    for build in (models.build_embedding, models.build_usage, models.build_embedding_response):
        assert "_twin" in build.__code__.co_names


def test_models_stay_weak_referenceable() -> None:
    import gc
    import weakref

    built = models.build_embedding(object="embedding", index=0, embedding=[1.0])
    normal = Embedding(object="embedding", index=0, embedding=[1.0])
    refs = [weakref.ref(built), weakref.ref(normal)]
    assert [ref() for ref in refs] == [built, normal]
    del built, normal
    gc.collect()
    assert [ref() for ref in refs] == [None, None]
