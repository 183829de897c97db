"""`slot_builder`'s two ways of filling a frozen attrs value (issue #16).

A class without a ``__weakref__`` slot is filled as an instance of a plain "twin" class of the
same layout, then turned into the frozen class; any other class through its slots'
descriptors. Both must give what the attrs constructor gives: the same type, fields, equality,
hash, repr and pickle, still frozen. The per-call values of the request flow take the twin
path (six of them per call; the descriptor path costs about three times as much).
"""

from __future__ import annotations

import pickle
from typing import Any, Generic, Optional, TypeVar

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aligneai.core._builders import slot_builder
from aligneai.core.flow import FlowResult, PreparedCall, Send
from aligneai.core.operations import Operation
from aligneai.core.request import Request
from aligneai.core.response import ResponseHead

T = TypeVar("T")


@attrs.frozen(weakref_slot=False)
class Plain:
    a: int
    b: Optional[str]  # noqa: UP045 - attrs evaluates this on 3.9
    c: Any


@attrs.frozen
class WithWeakref:
    a: int
    b: Optional[str]  # noqa: UP045
    c: Any


@attrs.frozen(weakref_slot=False)
class GenericValue(Generic[T]):
    a: int
    b: Optional[str]  # noqa: UP045
    c: Any


def uses_twin(cls: type) -> bool:
    """Whether slot_builder(cls) fills a twin (its generated code creates one)."""
    build = slot_builder(cls)
    return "_twin" in build.__code__.co_names


@pytest.mark.parametrize(
    "cls", [Request, Send, PreparedCall, FlowResult, ResponseHead, Operation, Plain, GenericValue]
)
def test_the_per_call_values_take_the_twin_path(cls: type) -> None:
    assert uses_twin(cls)


def test_a_class_with_a_weakref_slot_takes_the_descriptor_path() -> None:
    assert not uses_twin(WithWeakref)


@pytest.mark.parametrize("cls", [Plain, WithWeakref, GenericValue])
@given(
    a=st.integers(),
    b=st.none() | st.text(max_size=5),
    c=st.lists(st.integers(), max_size=3).map(tuple),
)
def test_both_paths_build_what_the_constructor_builds(
    cls: type, a: int, b: str | None, c: tuple[int, ...]
) -> None:
    fast = slot_builder(cls)(a, b, c)
    normal = cls(a, b, c)
    assert type(fast) is cls
    assert fast == normal
    assert hash(fast) == hash(normal)
    assert repr(fast) == repr(normal)
    assert attrs.asdict(fast) == {"a": a, "b": b, "c": c}
    assert fast.c is c  # the value itself, not a copy
    copy = pickle.loads(pickle.dumps(fast))
    assert type(copy) is cls and copy == normal
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        fast.a = a + 1  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        del fast.b  # type: ignore[misc]
    assert fast.a == a and fast.b == b


def test_a_built_value_has_no_instance_dict() -> None:
    # Turned into the frozen class, the value keeps the slotted layout: nothing can be added.
    value = slot_builder(Plain)(1, "x", None)
    assert not hasattr(value, "__dict__")
    with pytest.raises((AttributeError, attrs.exceptions.FrozenInstanceError)):
        object.__setattr__(value, "d", 1)
