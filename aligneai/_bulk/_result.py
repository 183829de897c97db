"""What a bulk run gives back: `BulkResult` (create_many) and `EmbeddedChunk` (iter_many)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import attrs

from aligneai.core.models import Usage

if TYPE_CHECKING:
    import numpy as np

__all__ = ["BulkResult", "EmbeddedChunk"]


@attrs.frozen(eq=False)
class BulkResult:
    """The outcome of ``embeddings.create_many``.

    Attributes:
        matrix: the ``(count, dimensions)`` float32 matrix, row ``i`` the embedding of input
            ``i``: in memory without ``output``, a read-only ``numpy.memmap`` of the file for a
            ``.npy`` output, None for ``.parquet`` / ``.jsonl`` (read the file). Rows of
            failed inputs (``on_error="skip"``) are NaN.
        count: the number of inputs.
        dimensions: the width of the embeddings (0 when none was embedded).
        usage: tokens reported by the server for this run's requests.
        requests: requests sent (retries included).
        retries: requests sent again after a 429, a 5xx, a connection failure or a split.
        rate_limited: 429 answers received.
        failed: indexes of the inputs given up on (``on_error="skip"``), ascending.
        resumed: inputs an interrupted run had already embedded (``resume=True``).
        elapsed: seconds the run took.
        output: the output file, or None in memory.
        model: the model the server named in its answers (the same for every answer, and for
            the interrupted run a resumed one continues: a run stops with
            ``APIResponseValidationError`` rather than mix two models); None when no request
            was answered (no inputs, all of them resumed or failed), or the finished run's
            when ``already_complete``.
        already_complete: True when ``resume=True`` found the output already finished, by a
            run with the same settings and inputs: nothing was sent or rewritten, ``resumed``
            counts every row (``requests``, ``usage`` and the other counters are 0), and
            ``failed`` lists the inputs that finished run gave up on.
    """

    matrix: Optional[np.ndarray[Any, Any]]  # noqa: UP045 - attrs evaluates this on 3.9
    count: int
    dimensions: int
    usage: Usage
    requests: int
    retries: int
    rate_limited: int
    failed: tuple[int, ...]
    resumed: int
    elapsed: float
    output: Optional[Path]  # noqa: UP045
    model: Optional[str] = None  # noqa: UP045
    already_complete: bool = False

    def __repr__(self) -> str:
        where = "in memory" if self.output is None else str(self.output)
        model = "" if self.model is None else f" of {self.model!r}"
        if self.already_complete:
            where += ", already complete"
        return (
            f"<BulkResult {self.count} inputs x {self.dimensions} dimensions{model} ({where}), "
            f"{self.usage.prompt_tokens} tokens, {self.requests} requests, "
            f"{self.retries} retries, {len(self.failed)} failed, {self.elapsed:.1f} s>"
        )


@attrs.frozen(eq=False)
class EmbeddedChunk:
    """Consecutive rows yielded by ``embeddings.iter_many``, in input order.

    Attributes:
        offset: the index of the first input of the chunk.
        matrix: the ``(k, dimensions)`` float32 embeddings of inputs ``[offset, offset + k)``.

    With ``on_error="skip"`` the inputs given up on are in no chunk: the next chunk starts
    after them (``offset`` tells), and the iterator's ``failed`` lists them.
    """

    offset: int
    matrix: np.ndarray[Any, Any]

    @property
    def stop(self) -> int:
        """One past the index of the chunk's last input."""
        return self.offset + int(self.matrix.shape[0])

    def __len__(self) -> int:
        return int(self.matrix.shape[0])
