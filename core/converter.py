"""The cattrs converter between the API's JSON and the models, with fast, checked hooks.

cattrs' default structuring of ``list[float]`` visits every float in Python, which costs tens of
milliseconds on a large answer; the vector hook below checks a whole vector with one C-level
pass instead. Scalars are checked by type (an ``int`` field rejects ``"3"`` and ``3.5``) so that
a drifting server is reported instead of silently coerced.
"""

from __future__ import annotations

import binascii
import math
import sys
import warnings
from array import array
from functools import cache
from operator import attrgetter
from typing import Any, Callable, TypeVar

import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from .models import (
    CreateEmbeddingResponse,
    Embedding,
    EmbeddingStreamDone,
    Model,
    ModelList,
    Usage,
    WireModel,
)

__all__ = [
    "check_finite",
    "check_vector",
    "decode_base64_vector",
    "default_converter",
    "fast_converter",
    "make_converter",
    "strict_converter",
]

T = TypeVar("T")

#: True on a big-endian machine (the wire's float32 vectors are little-endian).
BIG_ENDIAN = sys.byteorder == "big"
_MODELS: tuple[type[WireModel], ...] = (
    Usage,
    Embedding,
    CreateEmbeddingResponse,
    EmbeddingStreamDone,
    Model,
    ModelList,
)


def decode_base64_vector(value: str) -> list[float]:
    """Decode the wire's base64 vector (little-endian float32) to a list of floats."""
    try:
        raw = binascii.a2b_base64(value)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"embedding is not valid base64: {exc}") from None
    if len(raw) % 4:
        raise ValueError(f"base64 embedding has {len(raw)} bytes, not a multiple of 4")
    floats = array("f", raw)
    if BIG_ENDIAN:  # pragma: no cover - the wire is little-endian
        floats.byteswap()
    return floats.tolist()


# JSON numbers decode to exactly these; `true` decodes to bool, which is an int subclass, so the
# check is on the exact type.
_NUMBER_TYPES = frozenset({float, int})


def check_vector(value: list[Any]) -> None:
    """Raise `TypeError` unless ``value`` holds only numbers, `ValueError` for NaN or infinity.

    bool is not a number here (JSON's ``true`` is not). Both checks run in C (a set of
    ``map(type, ...)``, then ``sum``): for a 3072-number vector they cost about a tenth of what
    ``json.loads`` spent decoding it (75 us against 950 us).
    """
    if not _NUMBER_TYPES.issuperset(map(type, value)):
        bad = next(v for v in value if type(v) not in _NUMBER_TYPES)
        raise TypeError(f"expected a list of numbers, got a {type(bad).__name__} ({bad!r:.20})")
    check_finite(value)


def check_finite(value: list[Any]) -> None:
    """Raise `ValueError` if a number of ``value`` (all numbers) is NaN or infinite."""
    try:
        finite = math.isfinite(sum(value))
    except OverflowError:  # an int beyond the float range
        finite = False
    # A finite sum proves every term finite; otherwise look (huge finite terms may overflow).
    if not finite and not all(map(_finite, value)):
        raise ValueError("expected finite numbers, got NaN or an infinity")


def _finite(number: float) -> bool:
    try:
        return math.isfinite(number)
    except OverflowError:
        return False


def _structure_vector(value: Any, _: Any) -> list[float]:
    if type(value) is list:
        check_vector(value)
        return value
    if isinstance(value, str):
        vector = decode_base64_vector(value)
        check_finite(vector)  # float32 values: numbers by construction
        return vector
    raise TypeError(f"expected a list of numbers or a base64 string, got {type(value).__name__}")


def _structure_str(value: Any, _: Any) -> str:
    if type(value) is str:
        return value
    raise TypeError(f"expected a string, got {type(value).__name__}")


def _structure_int(value: Any, _: Any) -> int:
    if type(value) is int:
        return value
    raise TypeError(f"expected an integer, got {type(value).__name__}")


def _structure_float(value: Any, _: Any) -> float:
    if type(value) is float or type(value) is int:
        return float(value)
    raise TypeError(f"expected a number, got {type(value).__name__}")


def _structure_list_of(converter: cattrs.Converter, item: type[T]) -> Callable[[Any, Any], list[T]]:
    # get_structure_hook() is cattrs >= 24.1; the dispatcher below is what it wraps.
    legacy: Any = converter
    get_hook = getattr(converter, "get_structure_hook", None)
    if get_hook is None:
        get_hook = legacy._structure_func.dispatch  # private-ok: cattrs < 24.1 has no public one
    item_hook = get_hook(item)

    def structure(value: Any, _: Any) -> list[T]:
        if type(value) is not list:
            raise TypeError(f"expected a list, got {type(value).__name__}")
        return [item_hook(v, item) for v in value]

    return structure


def _sorted_by_index(hook: Callable[[Any, Any], list[Embedding]]) -> Callable[..., Any]:
    def structure(value: Any, cl: Any) -> list[Embedding]:
        items = hook(value, cl)
        items.sort(key=attrgetter("index"))
        return items

    return structure


def make_converter(*, strict: bool = False, detailed: bool = True) -> cattrs.Converter:
    """Build a converter for the models.

    With ``strict=False`` (what the client uses) unknown fields are ignored, since the server may
    add fields. ``strict=True`` rejects unknown fields; tests use it to catch drift between the
    models and the contract. ``detailed=False`` skips cattrs' per-field error bookkeeping: the
    client structures with it first, and only re-runs a failing body through a detailed
    converter to describe what is wrong.
    """
    conv = cattrs.Converter(forbid_extra_keys=strict, detailed_validation=detailed)
    conv.register_structure_hook(str, _structure_str)
    conv.register_structure_hook(int, _structure_int)
    conv.register_structure_hook(float, _structure_float)

    def register(cls: type[Any], **overrides: Any) -> None:
        conv.register_structure_hook(
            cls,
            make_dict_structure_fn(cls, conv, _cattrs_forbid_extra_keys=strict, **overrides),
        )
        if cls is Embedding:
            # Vectors unstructure with one C-level list copy, not float by float.
            unstructure = make_dict_unstructure_fn(
                cls, conv, embedding=override(unstruct_hook=list)
            )
        else:
            unstructure = make_dict_unstructure_fn(cls, conv)
        conv.register_unstructure_hook(cls, unstructure)

    register(Usage)
    register(Embedding, embedding=override(struct_hook=_structure_vector))
    register(
        CreateEmbeddingResponse,
        data=override(struct_hook=_sorted_by_index(_structure_list_of(conv, Embedding))),
    )
    register(EmbeddingStreamDone)
    register(Model)
    register(ModelList, data=override(struct_hook=_structure_list_of(conv, Model)))
    return conv


@cache
def default_converter() -> cattrs.Converter:
    """The lenient converter the client uses (built once), with detailed error messages."""
    return make_converter(strict=False)


@cache
def fast_converter() -> cattrs.Converter:
    """The lenient converter without per-field error bookkeeping: the client's fast path."""
    return make_converter(strict=False, detailed=False)


def strict_converter() -> cattrs.Converter:
    """Deprecated: use `aligneai.testing.contract.strict_converter` (it moved to the testing kit).

    Returns a converter that also rejects unknown fields (built once, as before the move), and
    warns `DeprecationWarning` on every call.
    """
    warnings.warn(
        "aligneai.core.converter.strict_converter is deprecated; use "
        "aligneai.testing.contract.strict_converter instead",
        DeprecationWarning,
        stacklevel=2,
    )
    return _strict_converter()


@cache
def _strict_converter() -> cattrs.Converter:
    # Cached apart from the shim, so that the warning is given on every call, not the first.
    return make_converter(strict=True)
