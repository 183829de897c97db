"""Embeddings straight into one numpy matrix, without a Python float per number.

``embeddings.create_matrix()`` asks for base64 vectors and decodes each one directly into a row
of a preallocated float32 matrix: no list of floats is ever built, so a 512 x 1536 answer costs
about what ``json.loads`` and one ``numpy.frombuffer`` cost, in time and in memory.
"""

from __future__ import annotations

import binascii
from typing import TYPE_CHECKING, Any

import attrs

from ._numpy import require_numpy
from .answer_contract import AnswerContract, AnswerTracker, usage_problem
from .models import Usage
from .parsing import contract_error, parse_json, structure
from .request import Request
from .response import ResponseHead

if TYPE_CHECKING:
    import numpy as np

__all__ = ["EmbeddingMatrix", "MatrixParser", "parse_matrix"]


@attrs.frozen(eq=False)
class EmbeddingMatrix:
    """The answer of ``embeddings.create_matrix``.

    Attributes:
        matrix: a ``(len(inputs), dimensions)`` float32 numpy array; row ``i`` is the
            embedding of input ``i``.
        model: the model that produced it.
        usage: token counts.
    """

    matrix: np.ndarray[Any, Any]
    model: str
    usage: Usage

    def __len__(self) -> int:
        return int(self.matrix.shape[0])

    def to_dict(self) -> dict[str, Any]:
        """The answer in the wire's float form (plain dicts and lists)."""
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": row}
                for i, row in enumerate(self.matrix.tolist())
            ],
            "model": self.model,
            "usage": self.usage.to_dict(),
        }


@attrs.frozen
class _Base64Item:
    index: int
    embedding: str


@attrs.frozen
class _Base64List:
    data: list[_Base64Item]
    model: str
    usage: Usage


def parse_matrix(
    head: ResponseHead,
    body: bytes,
    request: Request | None = None,
    contract: AnswerContract | None = None,
) -> EmbeddingMatrix:
    """Decode a base64 embeddings answer into an `EmbeddingMatrix` (rows ordered by index).

    The answer is checked against ``contract`` as `parse_embeddings` checks it: one row per
    input, one width for all (``dimensions`` when asked), finite numbers only.
    """
    np_ = require_numpy()
    data = parse_json(head, body, request)
    answer = structure(head, data, _Base64List, request)
    contract = contract or AnswerContract()
    if contract.inputs is None:
        # Unknown request: the indexes must then be 0..len(data)-1, as with a known one.
        contract = attrs.evolve(contract, inputs=len(answer.data))
    tracker = AnswerTracker(contract)
    matrix: np.ndarray[Any, Any] | None = None
    for item in answer.data:
        try:
            raw = binascii.a2b_base64(item.embedding)
        except (binascii.Error, ValueError) as exc:
            raise contract_error(
                head, f"the embedding of index {item.index} is not valid base64 ({exc})", request
            ) from None
        if len(raw) % 4:
            raise contract_error(
                head, f"the embedding of index {item.index} has {len(raw)} bytes", request
            )
        problem = tracker.add(item.index, len(raw) // 4)
        if problem is not None:
            raise contract_error(head, problem, request, data)
        if matrix is None:
            # Rows are written straight into the matrix: no second copy of the vectors.
            matrix = np_.empty((contract.inputs, len(raw) // 4), dtype="<f4")
        matrix[item.index] = np_.frombuffer(raw, dtype="<f4")
    problem = tracker.finish() or usage_problem(
        answer.usage.prompt_tokens, answer.usage.total_tokens
    )
    if problem is not None:
        raise contract_error(head, problem, request, data)
    assert matrix is not None  # finish() found at least one row
    if not np_.isfinite(matrix).all():
        raise contract_error(head, "an embedding holds NaN or an infinity", request)
    return EmbeddingMatrix(
        matrix=matrix.astype("float32", copy=False), model=answer.model, usage=answer.usage
    )


@attrs.frozen
class MatrixParser:
    """`parse_matrix` bound to the contract of one request (an `Operation`'s parser)."""

    contract: AnswerContract

    def __call__(
        self, head: ResponseHead, body: bytes, request: Request | None = None
    ) -> EmbeddingMatrix:
        """Decode and check ``body`` (see `parse_matrix`)."""
        return parse_matrix(head, body, request, self.contract)
