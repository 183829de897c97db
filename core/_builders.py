"""Fast constructors for frozen attrs values the core has built and checked itself.

A frozen attrs class refuses attribute stores, so its ``__init__`` sets each field through
``object.__setattr__``; the core builds about ten such values per call (the request flow's
values, the answer's models), and those stores were a large part of a small call's cost
(issue #16). `slot_builder` makes a positional constructor that gives the same instance for a
fraction of it; `layout_twin` is the plain class it fills first when the layout allows.
"""

from __future__ import annotations

import sys
import types
from typing import Any, Callable

import attrs

__all__ = ["layout_twin", "slot_builder"]


def slot_builder(cls: type) -> Callable[..., Any]:
    """A constructor of the frozen attrs class ``cls`` taking every field positionally.

    For values the caller has already built and checked (the core's per-call values): it
    skips the attrs ``__init__``'s converters and its frozen ``__setattr__`` lookups, and gives
    an instance equal in every way to ``cls(*values)`` (same type, fields, repr, pickle).
    """
    names = [a.name for a in attrs.fields(cls)]
    twin = layout_twin(cls)
    namespace: dict[str, Any] = {"_cls": cls, "_twin": twin, "_new": object.__new__}
    if twin is not None:
        # Filled as an instance of a plain class with the same slots (plain attribute
        # stores), then turned into ``cls``: a third of the cost of one descriptor call per
        # field, which is what a frozen class otherwise needs. Six of these are made per call.
        lines = [f"def build({', '.join(names)}):", "    self = _twin()"]
        lines += [f"    self.{name} = {name}" for name in names]
        lines.append("    self.__class__ = _cls")
    else:
        # The slots' member descriptors: each __set__ is one C call that bypasses frozenness.
        namespace.update({f"_set_{name}": cls.__dict__[name].__set__ for name in names})
        lines = [f"def build({', '.join(names)}):", "    self = _new(_cls)"]
        lines += [f"    _set_{name}(self, {name})" for name in names]
    lines.append("    return self")
    exec("\n".join(lines) + "\n", namespace)  # attrs field names only
    build: Callable[..., Any] = namespace["build"]
    build.__doc__ = f"{cls.__name__}({', '.join(names)}), for values already checked."
    return build


def layout_twin(cls: type) -> type | None:
    """A plain class whose instances can become ``cls`` instances, or None if there is none.

    Python lets an object's ``__class__`` change between classes of the same memory layout:
    same bases, same ``__slots__``. It refuses it for a class with a ``__weakref__`` slot
    after others (attrs adds one unless ``weakref_slot=False``), and a free-threaded
    interpreter stops every thread for it: None then, and the builder uses descriptors.
    """
    slots = cls.__dict__.get("__slots__")
    if slots is None or "__weakref__" in slots:
        return None
    gil_enabled = getattr(sys, "_is_gil_enabled", None)  # Python 3.13+
    if gil_enabled is not None and not gil_enabled():
        return None
    if any("__setattr__" in base.__dict__ for base in cls.__mro__[1:-1]):
        return None  # a base's own __setattr__ (a frozen parent) would refuse the stores
    try:
        # The bases as written (a Generic[T] base is subclassed through __orig_bases__).
        bases = cls.__dict__.get("__orig_bases__", cls.__bases__)
        twin = types.new_class(
            f"_{cls.__name__}Slots",
            bases,
            exec_body=lambda ns: ns.update(__slots__=slots, __module__=cls.__module__),
        )
        probe = twin()
        probe.__class__ = cls
    except TypeError:  # pragma: no cover - another interpreter's layout rules
        return None
    return twin
