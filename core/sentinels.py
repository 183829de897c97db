"""`NOT_GIVEN`: the value of an argument the caller left out.

An argument that overrides a client setting (``timeout=``, ``max_retries=``, with_options'
``default_headers=``) defaults to `NOT_GIVEN`, which keeps the client's value, so that ``None``
can keep one meaning: none (no limit, no header). Passing `NOT_GIVEN` explicitly is the same as
leaving the argument out, which helps code that forwards its own optional arguments.
"""

from __future__ import annotations

from typing import Any, ClassVar, Optional

__all__ = ["NOT_GIVEN", "NotGiven"]


class NotGiven:
    """The type of `NOT_GIVEN`, the one "argument not given" value: keep the client's setting.

    It is falsy, its repr is ``NOT_GIVEN``, and there is only ever one instance: ``NotGiven()``,
    `copy.copy`, `copy.deepcopy` and a pickle round trip all return `NOT_GIVEN` itself, so
    ``value is NOT_GIVEN`` is always the test to use.
    """

    __slots__ = ()
    _instance: ClassVar[Optional[NotGiven]] = None  # noqa: UP045

    def __new__(cls) -> NotGiven:
        """Return `NOT_GIVEN`, the one instance."""
        if NotGiven._instance is None:
            NotGiven._instance = object.__new__(cls)
        return NotGiven._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __reduce__(self) -> tuple[Any, ...]:
        # Unpickling calls NotGiven(), which returns the one instance.
        return (NotGiven, ())

    def __copy__(self) -> NotGiven:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> NotGiven:
        return self


#: Leave a setting as the client has it (the default of every override argument).
NOT_GIVEN = NotGiven()
