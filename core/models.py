"""Typed models of the API's answers (attrs classes that are also read-only JSON dicts).

Each model is an attrs class for typed attribute access (``response.data[0].embedding``) and, at
the same time, a read-only ``dict`` holding its wire form, so ``json.dumps(response)`` works as
the product's README promises, with no conversion step. The dict shares the attribute values
(the same lists), so the second view costs a few small dicts, not a copy of the vectors.
"""

from __future__ import annotations

import functools
import json
import operator
from typing import TYPE_CHECKING, Any, Callable, NoReturn

import attrs

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "CreateEmbeddingResponse",
    "Embedding",
    "EmbeddingStreamDone",
    "Model",
    "ModelList",
    "Usage",
    "WireModel",
]


@functools.cache
def _wire_fields(cls: type) -> tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]:
    # attrs.fields() costs tens of microseconds, and a model is built per vector: look the
    # names up once per class, and read all values with one C-level attrgetter.
    fields: Any = attrs.fields(cls)
    names = tuple(a.name for a in fields)
    getter = operator.attrgetter(*names)
    if len(names) == 1:
        return names, lambda obj: (getter(obj),)
    return names, getter


class WireModel(dict):  # type: ignore[type-arg]  # the dict view is untyped JSON by design
    """Base of all models: a read-only dict of the model's wire form, kept in sync with its fields.

    Use the typed attributes in code; the dict view exists so that the standard library's
    ``json.dumps`` accepts a model as it is. Mutating the dict raises `TypeError`.
    """

    __slots__ = ()

    def __attrs_post_init__(self) -> None:
        names, values = _wire_fields(type(self))
        dict.update(self, zip(names, values(self)))

    def _read_only(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError(f"{type(self).__name__} is read-only; use attrs.evolve() to change it")

    __setitem__ = _read_only
    __delitem__ = _read_only
    __ior__ = _read_only
    clear = _read_only
    pop = _read_only
    popitem = _read_only
    setdefault = _read_only
    update = _read_only

    def __reduce__(self) -> tuple[Any, ...]:
        # dict subclasses pickle by replaying __setitem__, which is blocked: rebuild from fields.
        return (_rebuild_model, (type(self), dict(self)))

    def __copy__(self) -> WireModel:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> WireModel:
        import copy

        return _rebuild_model(type(self), {k: copy.deepcopy(v, memo) for k, v in self.items()})

    def to_dict(self) -> dict[str, Any]:
        """The wire form as plain dicts and lists (a deep copy, safe to mutate)."""
        # Walks the fields itself rather than asking the converter: the converter is built on
        # the models, so the models must not depend on it.
        names, values = _wire_fields(type(self))
        return {name: _plain(value) for name, value in zip(names, values(self))}

    def to_json(self, *, indent: int | None = None) -> str:
        """The wire form as a JSON string."""
        return json.dumps(self, indent=indent, ensure_ascii=False)


def _rebuild_model(cls: type[WireModel], fields: dict[str, Any]) -> WireModel:
    return cls(**fields)


def _plain(value: Any) -> Any:
    """``value`` with models turned into plain dicts and lists copied (the wire form)."""
    if isinstance(value, WireModel):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        # A model's list holds models (data) or numbers (a vector: one C-level copy).
        if value and isinstance(value[0], WireModel):
            return [item.to_dict() for item in value]
        return list(value)
    return value


@attrs.frozen(kw_only=True)
class Usage(WireModel):
    """Token counts for one call."""

    prompt_tokens: int
    total_tokens: int


@attrs.frozen(kw_only=True)
class Embedding(WireModel):
    """One embedding vector and the position of its input in the request."""

    object: str = "embedding"
    index: int
    embedding: list[float]


@attrs.frozen(kw_only=True)
class CreateEmbeddingResponse(WireModel):
    """The answer to ``embeddings.create``: one `Embedding` per input, ordered by ``index``."""

    object: str = "list"
    data: list[Embedding]
    model: str
    usage: Usage

    def to_numpy(self, dtype: Any = "float32") -> np.ndarray[Any, Any]:
        """All embeddings as one ``(len(data), dimensions)`` numpy matrix (needs numpy)."""
        from ._numpy import require_numpy

        np_ = require_numpy()
        try:
            kind = np_.dtype(dtype).kind
        except TypeError as exc:
            from .errors import InvalidArgumentTypeError

            raise InvalidArgumentTypeError("dtype", f"not a numpy dtype: {exc}") from None
        if kind != "f":
            from .errors import InvalidArgumentValueError

            raise InvalidArgumentValueError(
                "dtype", f"expected a floating-point dtype (float16/32/64), got {dtype!r}"
            )
        matrix: np.ndarray[Any, Any]
        if not self.data:
            matrix = np_.zeros((0, 0), dtype=dtype)
        else:
            matrix = np_.array([item.embedding for item in self.data], dtype=dtype)
        return matrix


@attrs.frozen(kw_only=True)
class EmbeddingStreamDone(WireModel):
    """The final event of an embeddings stream: the model and token usage."""

    object: str = "list"
    model: str
    usage: Usage


@attrs.frozen(kw_only=True)
class Model(WireModel):
    """An embedding model the API offers."""

    id: str
    object: str = "model"
    created: int
    owned_by: str
    dimensions: int


@attrs.frozen(kw_only=True)
class ModelList(WireModel):
    """The answer to ``models.list``."""

    object: str = "list"
    data: list[Model]
