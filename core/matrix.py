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
from .errors import APIResponseValidationError
from .models import Usage
from .parsing import parse_json, structure
from .request import Request
from .response import ResponseHead

if TYPE_CHECKING:
    import numpy as np

__all__ = ["EmbeddingMatrix", "parse_matrix"]


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
    head: ResponseHead, body: bytes, request: Request | None = None
) -> EmbeddingMatrix:
    """Decode a base64 embeddings answer into an `EmbeddingMatrix` (rows ordered by index)."""
    np_ = require_numpy()
    answer = structure(head, parse_json(head, body, request), _Base64List, request)

    def invalid(message: str) -> APIResponseValidationError:
        return APIResponseValidationError(
            f"the response does not match the API contract: {message}",
            status_code=head.status_code,
            request_id=head.request_id,
            request=request,
        )

    count = len(answer.data)
    if sorted(item.index for item in answer.data) != list(range(count)):
        raise invalid("the indexes of data are not 0 to len(data) - 1")
    matrix: np.ndarray[Any, Any] | None = None
    for item in answer.data:
        try:
            raw = binascii.a2b_base64(item.embedding)
        except (binascii.Error, ValueError) as exc:
            raise invalid(f"data[{item.index}].embedding is not valid base64 ({exc})") from None
        if matrix is None:
            if len(raw) % 4 or not raw:
                raise invalid(f"data[{item.index}].embedding has {len(raw)} bytes")
            matrix = np_.empty((count, len(raw) // 4), dtype="<f4")
        if len(raw) != matrix.shape[1] * 4:
            raise invalid("the embeddings do not all have the same number of dimensions")
        matrix[item.index] = np_.frombuffer(raw, dtype="<f4")
    if matrix is None:
        matrix = np_.empty((0, 0), dtype="<f4")
    return EmbeddingMatrix(
        matrix=matrix.astype("float32", copy=False), model=answer.model, usage=answer.usage
    )
