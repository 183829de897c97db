"""The contract between an embeddings request and its answer, checked item by item.

An answer to ``POST /embeddings`` must hold exactly one embedding per input: the indexes are a
permutation of ``0 .. len(inputs) - 1``, every vector has the same, non-zero number of
dimensions, and that number equals ``dimensions`` when the request asked for it. (That each
vector holds finite numbers only is checked by the converter, which sees the values.)

`AnswerTracker` is fed one ``(index, length)`` pair per embedding, in any order, and says what is
wrong as soon as it can tell: the non-streaming parsers feed it a whole answer, the stream
decoder one event at a time, so both report the same problems in the same words.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Optional

import attrs

__all__ = ["AnswerContract", "AnswerTracker", "check_answer", "model_problem", "usage_problem"]


@attrs.frozen
class AnswerContract:
    """What a valid answer holds, as far as the request tells.

    Attributes:
        inputs: how many inputs the request carried (one embedding each); None when unknown.
        dimensions: the ``dimensions`` the request asked for; None when it did not ask.
    """

    inputs: Optional[int] = None  # noqa: UP045 - attrs evaluates annotations on 3.9
    dimensions: Optional[int] = None  # noqa: UP045

    @classmethod
    def for_body(cls, body: object) -> AnswerContract:
        """The contract of a decoded request body (unknown parts stay None, never raises)."""
        if not isinstance(body, Mapping):
            return cls()
        inputs = body.get("inputs")
        count: int | None
        if isinstance(inputs, str):
            count = 1
        elif isinstance(inputs, list):
            count = len(inputs)
        else:
            count = None
        dimensions: Any = body.get("dimensions")
        if isinstance(dimensions, bool) or not isinstance(dimensions, int):
            dimensions = None
        return cls(inputs=count, dimensions=dimensions)


class AnswerTracker:
    """Checks an answer's embeddings one by one against an `AnswerContract`.

    `add` and `finish` return None when all is well so far, else a sentence saying what is
    wrong (the caller raises it as `APIResponseValidationError`): a decision as a value.
    """

    __slots__ = ("_contract", "_dimensions", "_seen")

    def __init__(self, contract: AnswerContract) -> None:
        self._contract = contract
        self._dimensions = contract.dimensions
        self._seen: set[int] = set()

    @property
    def count(self) -> int:
        """How many embeddings were accepted so far."""
        return len(self._seen)

    def add(self, index: int, length: int) -> str | None:
        """Account for the embedding of input ``index``, a vector of ``length`` numbers."""
        inputs = self._contract.inputs
        if index < 0 or (inputs is not None and index >= inputs):
            where = "" if inputs is None else f", outside 0..{inputs - 1} for {inputs} inputs"
            return f"an embedding has index {index}{where}"
        if index in self._seen:
            return f"index {index} appears more than once (one embedding per input)"
        if length == 0:
            return f"the embedding of index {index} is empty"
        if self._dimensions is None:
            self._dimensions = length
        elif length != self._dimensions:
            asked = " (the dimensions asked for)" if self._contract.dimensions else ""
            return (
                f"the embedding of index {index} has {length} dimensions, "
                f"not {self._dimensions}{asked}"
            )
        self._seen.add(index)
        return None

    def finish(self) -> str | None:
        """Check that every input got its embedding, once the answer is complete."""
        seen = self._seen
        expected = len(seen) if self._contract.inputs is None else self._contract.inputs
        if not seen:
            return "the answer holds no embedding (one per input is expected)"
        if len(seen) == expected and (self._contract.inputs is not None or max(seen) < expected):
            return None
        missing = next(i for i in range(expected + 1) if i not in seen)
        if self._contract.inputs is None:
            return f"the indexes are not 0..{len(seen) - 1}: index {missing} is missing"
        return (
            f"{len(seen)} embeddings for {expected} inputs: the embedding of index {missing} "
            "is missing"
        )


def check_answer(contract: AnswerContract, items: Iterable[tuple[int, int]]) -> str | None:
    """Check a whole answer given as ``(index, vector length)`` pairs; None when it is valid."""
    tracker = AnswerTracker(contract)
    for index, length in items:
        problem = tracker.add(index, length)
        if problem is not None:
            return problem
    return tracker.finish()


def usage_problem(prompt_tokens: int, total_tokens: int) -> str | None:
    """What is wrong with an answer's token counts (the contract: both 0 or more), or None."""
    if prompt_tokens < 0 or total_tokens < 0:
        return f"negative token counts ({prompt_tokens} prompt, {total_tokens} total)"
    return None


def model_problem(model_id: str, dimensions: int) -> str | None:
    """What is wrong with a model in an answer (a non-empty id, 1 dimension or more), or None."""
    if not model_id:
        return "a model has an empty id"
    if dimensions < 1:
        return f"model {model_id!r} has {dimensions} dimensions"
    return None
