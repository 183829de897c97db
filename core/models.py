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
import types
from typing import TYPE_CHECKING, Any, Callable, NoReturn

import attrs

from ._builders import layout_twin

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
    # attrs.fields() costs tens of microseconds: look the names up once per class, and read
    # all values with one C-level attrgetter (to_dict).
    fields: Any = attrs.fields(cls)
    names = tuple(a.name for a in fields)
    getter = operator.attrgetter(*names)
    if len(names) == 1:
        return names, lambda obj: (getter(obj),)
    return names, getter


def _make_filler(cls: type) -> Callable[[Any], None]:
    """A function that fills the dict view of a ``cls`` instance from its fields, in order.

    Generated per class (as attrs generates ``__init__``): one ``dict.__init__`` call with a
    keyword per field costs about a third of a generic ``update(zip(names, values))``, and a
    model is built per vector.
    """
    names = [a.name for a in attrs.fields(cls)]
    if not all(name.isidentifier() and not name.startswith("_") for name in names):
        # Not expected of a model: the generic way (the generated code needs plain names).
        def fill_generic(self: Any) -> None:
            dict.__init__(self, ((name, getattr(self, name)) for name in names))

        return fill_generic
    arguments = ", ".join(f"{name}=self.{name}" for name in names)
    namespace: dict[str, Any] = {}
    # The source holds the class's attrs field names only (checked to be plain identifiers).
    exec(f"def fill(self, _init=dict.__init__):\n    _init(self, {arguments})\n", namespace)
    fill: Callable[[Any], None] = namespace["fill"]
    return fill


# One filler per model class, made on its first instance.
_fillers: dict[type, Callable[[Any], None]] = {}


def _slot(cls: type, name: str) -> Any:
    """The slot descriptor that stores field ``name`` of ``cls``, or None if it has none."""
    for klass in cls.__mro__:
        if name in klass.__dict__:
            found = klass.__dict__[name]
            return found if isinstance(found, types.MemberDescriptorType) else None
    return None


def _make_builder(cls: type) -> Callable[..., Any]:
    """A constructor of ``cls`` from every field by keyword, for values already checked.

    The parser's fast path builds a model per vector from values it has checked for their
    exact types: this sets the slots and fills the dict view directly (a third of the cost
    of the attrs ``__init__`` and its ``__attrs_post_init__``), giving an instance equal in
    every way to ``cls(**fields)``. A class whose fields convert or validate gets ``cls``.
    """
    fields: Any = attrs.fields(cls)
    plain = all(
        a.converter is None
        and a.validator is None
        and a.name.isidentifier()
        and not a.name.startswith("_")
        for a in fields
    )
    names = [a.name for a in fields]
    # The slots' descriptors (a field of a parent class has its slot there).
    slots = {name: _slot(cls, name) for name in names}
    if not plain or None in slots.values():
        return cls
    keywords = ", ".join(f"{name}={name}" for name in names)
    twin = layout_twin(cls)
    namespace: dict[str, Any] = {"_new": dict.__new__, "_init": dict.__init__, "_cls": cls}
    if twin is not None:
        # A plain dict subclass of the same layout (see `layout_twin`): created with its
        # dict view filled in one C call, its slots set by plain stores, then made ``cls``.
        namespace["_twin"] = twin
        lines = [f"def build(*, {', '.join(names)}):", f"    self = _twin({keywords})"]
        lines += [f"    self.{name} = {name}" for name in names]
        lines += ["    self.__class__ = _cls", "    return self"]
    else:
        namespace.update({f"_set_{name}": slot.__set__ for name, slot in slots.items()})
        lines = [f"def build(*, {', '.join(names)}):", "    self = _new(_cls)"]
        lines += [f"    _set_{name}(self, {name})" for name in names]
        lines += [f"    _init(self, {keywords})", "    return self"]
    exec("\n".join(lines) + "\n", namespace)  # attrs field names only, checked above
    build: Callable[..., Any] = namespace["build"]
    return build


class WireModel(dict):  # type: ignore[type-arg]  # the dict view is untyped JSON by design
    """Base of all models: a read-only dict of the model's wire form, kept in sync with its fields.

    Use the typed attributes in code; the dict view exists so that the standard library's
    ``json.dumps`` accepts a model as it is. Mutating the dict raises `TypeError`.
    """

    # Models are weak-referenceable through this slot of their base, not one attrs would add
    # after their fields: that layout lets the parser's builders fill them fast (layout_twin).
    __slots__ = ("__weakref__",)

    def __attrs_post_init__(self) -> None:
        cls = type(self)
        fill = _fillers.get(cls)
        if fill is None:
            fill = _fillers[cls] = _make_filler(cls)
        fill(self)

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


# Constructors for the parser's fast path (see `_make_builder`).
build_embedding = _make_builder(Embedding)
build_usage = _make_builder(Usage)
build_embedding_response = _make_builder(CreateEmbeddingResponse)
