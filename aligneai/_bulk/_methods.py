"""``create_many`` and ``iter_many``, as mixins of ``Embeddings`` and ``AsyncEmbeddings``.

Importing this module is cheap: the drivers (and numpy) load on the first call only, so
``import aligneai`` stays light.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Callable, Literal, Union

from aligneai.core.wire import MAX_INPUTS

if TYPE_CHECKING:
    from aligneai._async_runner import AsyncRunner
    from aligneai._runner import SyncRunner

    from ._progress import ProgressEvent
    from ._result import BulkResult
    from ._run_async import AsyncChunkIterator
    from ._run_sync import ChunkIterator

__all__ = ["AsyncBulkEmbeddingsMixin", "BulkEmbeddingsMixin"]

Output = Union[str, "os.PathLike[str]", None]
Progress = Union[bool, Callable[["ProgressEvent"], None]]
OnError = Literal["raise", "skip"]


class BulkEmbeddingsMixin:
    """``create_many`` and ``iter_many`` for ``client.embeddings`` (sync)."""

    _runner: SyncRunner

    def create_many(
        self,
        inputs: Iterable[str],
        *,
        model: str | None = None,
        dimensions: int | None = None,
        ids: Iterable[str] | None = None,
        batch_size: int = MAX_INPUTS,
        max_batch_tokens: int | None = None,
        max_concurrency: int | None = None,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        output: Output = None,
        resume: bool = False,
        progress: Progress = False,
        on_error: OnError = "raise",
    ) -> BulkResult:
        """Embed a whole corpus, at the rate the server allows, in order, resumably.

        Needs ``aligneai[numpy]`` (``MissingDependencyError`` otherwise). The inputs are read
        lazily, once, and cut into requests of at most ``batch_size`` texts and
        ``max_batch_tokens`` estimated tokens; requests run concurrently (adaptive, or at most
        ``max_concurrency``), paced by the budgets and the server's ``x-ratelimit-*`` headers;
        a 429 holds every request until its ``retry-after``; 5xx answers and connection
        failures are retried (up to 6 attempts per batch); a batch answered 400
        ``request_too_large`` is split in two. Row ``i`` of the result is always the embedding
        of input ``i``. Every argument is checked before anything is sent.

        Args:
            inputs: any iterable of non-empty strings (a list, a generator, a file's lines).
            model: the model id; the server's default model when None.
            dimensions: truncate vectors to this many dimensions.
            ids: optional ids aligned with ``inputs`` (one str per input), written into a
                ``.parquet`` / ``.jsonl`` output, and next to a ``.npy`` one
                (``<output>.ids.jsonl``); refused without ``output``. When both have a
                length, a mismatch is refused before anything is sent; otherwise when one of
                them runs out.
            batch_size: the most inputs per request (1 to 2048).
            max_batch_tokens: the most estimated tokens per request; an input estimated above
                it alone is not sent (``InputTooLargeError`` naming ``inputs[i]``, or skipped).
            max_concurrency: None for an adaptive number of requests in flight (up to 64); an
                int is the ceiling.
            requests_per_minute, tokens_per_minute: your own budgets, never exceeded.
            output: None to keep the matrix in memory, or a path ending ``.npy`` (rows written
                in place; the result's matrix is a read-only memmap), ``.parquet`` (needs
                ``aligneai[parquet]``) or ``.jsonl``. An interrupted run leaves the output
                and ``<output>.checkpoint.json``. One run at a time per output: while a run
                holds ``<output>.lock``, another (in any process) is refused with
                ``InvalidArgumentValueError`` naming ``output``.
            resume: continue an interrupted run into ``output``: only the inputs not written
                yet are sent (same inputs, model, dimensions and format required, else
                ``BulkResumeError``).
            progress: True for a progress bar on stderr (tqdm when installed, a plain line
                otherwise), or a callable receiving each ``ProgressEvent``.
            on_error: ``"raise"`` (the first error that is given up on stops the run and is
                raised; the output stays resumable) or ``"skip"`` (the failed inputs are listed
                in ``result.failed``; their rows are NaN or absent).

        Returns:
            A `BulkResult`: ``matrix``, ``count``, ``usage``, ``requests``, ``retries``,
            ``rate_limited``, ``failed``, ``elapsed``, ``output``, ``model``.

        An exception raised by ``inputs`` (a generator) or by the ``progress`` callable
        propagates as it is; answers already in flight are written first when the inputs
        raise, and the output stays resumable either way. Answers naming another model or
        width than earlier ones stop the run with ``APIResponseValidationError``; so does a
        server asking to wait more than 300 s (its error is raised).
        """
        from ._run_sync import create_many

        return create_many(
            self._runner,
            inputs,
            model=model,
            dimensions=dimensions,
            ids=ids,
            batch_size=batch_size,
            max_batch_tokens=max_batch_tokens,
            max_concurrency=max_concurrency,
            requests_per_minute=requests_per_minute,
            tokens_per_minute=tokens_per_minute,
            output=output,
            resume=resume,
            progress=progress,
            on_error=on_error,
        )

    def iter_many(
        self,
        inputs: Iterable[str],
        *,
        model: str | None = None,
        dimensions: int | None = None,
        batch_size: int = MAX_INPUTS,
        max_batch_tokens: int | None = None,
        max_concurrency: int | None = None,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        progress: Progress = False,
        on_error: OnError = "raise",
    ) -> ChunkIterator:
        """Embed a corpus like `create_many`, yielding ordered chunks as they are ready.

        Each `EmbeddedChunk` holds ``offset`` and a float32 ``matrix`` for the inputs
        ``[offset, offset + len(matrix))``; chunks come in input order. Memory stays bounded by
        about ``2 x batch_size x max_concurrency`` rows, whatever the corpus size: write each
        chunk to your own index. Arguments as for `create_many` (without ``ids``, ``output``
        and ``resume``); they are checked now, before anything is sent. With
        ``on_error="skip"``, failed inputs are in no chunk and the iterator's ``failed`` lists
        them. Stopping early (``break``, ``close()``, a ``with`` block) stops the run.
        """
        from ._run_sync import iter_many

        return iter_many(
            self._runner,
            inputs,
            model=model,
            dimensions=dimensions,
            batch_size=batch_size,
            max_batch_tokens=max_batch_tokens,
            max_concurrency=max_concurrency,
            requests_per_minute=requests_per_minute,
            tokens_per_minute=tokens_per_minute,
            progress=progress,
            on_error=on_error,
        )


class AsyncBulkEmbeddingsMixin:
    """``create_many`` and ``iter_many`` for ``async_client.embeddings``."""

    _runner: AsyncRunner

    async def create_many(
        self,
        inputs: Iterable[str],
        *,
        model: str | None = None,
        dimensions: int | None = None,
        ids: Iterable[str] | None = None,
        batch_size: int = MAX_INPUTS,
        max_batch_tokens: int | None = None,
        max_concurrency: int | None = None,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        output: Output = None,
        resume: bool = False,
        progress: Progress = False,
        on_error: OnError = "raise",
    ) -> BulkResult:
        """Embed a whole corpus (async), at the rate the server allows, in order, resumably.

        Needs ``aligneai[numpy]`` (``MissingDependencyError`` otherwise). The inputs are read
        lazily, once, and cut into requests of at most ``batch_size`` texts and
        ``max_batch_tokens`` estimated tokens; requests run concurrently (adaptive, or at most
        ``max_concurrency``), paced by the budgets and the server's ``x-ratelimit-*`` headers;
        a 429 holds every request until its ``retry-after``; 5xx answers and connection
        failures are retried (up to 6 attempts per batch); a batch answered 400
        ``request_too_large`` is split in two. Row ``i`` of the result is always the embedding
        of input ``i``. Every argument is checked before anything is sent.

        Args:
            inputs: any iterable of non-empty strings (a list, a generator, a file's lines).
            model: the model id; the server's default model when None.
            dimensions: truncate vectors to this many dimensions.
            ids: optional ids aligned with ``inputs`` (one str per input), written into a
                ``.parquet`` / ``.jsonl`` output, and next to a ``.npy`` one
                (``<output>.ids.jsonl``); refused without ``output``. When both have a
                length, a mismatch is refused before anything is sent; otherwise when one of
                them runs out.
            batch_size: the most inputs per request (1 to 2048).
            max_batch_tokens: the most estimated tokens per request; an input estimated above
                it alone is not sent (``InputTooLargeError`` naming ``inputs[i]``, or skipped).
            max_concurrency: None for an adaptive number of requests in flight (up to 64); an
                int is the ceiling.
            requests_per_minute, tokens_per_minute: your own budgets, never exceeded.
            output: None to keep the matrix in memory, or a path ending ``.npy`` (rows written
                in place; the result's matrix is a read-only memmap), ``.parquet`` (needs
                ``aligneai[parquet]``) or ``.jsonl``. An interrupted run leaves the output
                and ``<output>.checkpoint.json``. One run at a time per output: while a run
                holds ``<output>.lock``, another (in any process) is refused with
                ``InvalidArgumentValueError`` naming ``output``.
            resume: continue an interrupted run into ``output``: only the inputs not written
                yet are sent (same inputs, model, dimensions and format required, else
                ``BulkResumeError``).
            progress: True for a progress bar on stderr (tqdm when installed, a plain line
                otherwise), or a callable receiving each ``ProgressEvent``.
            on_error: ``"raise"`` (the first error that is given up on stops the run and is
                raised; the output stays resumable) or ``"skip"`` (the failed inputs are listed
                in ``result.failed``; their rows are NaN or absent).

        Returns:
            A `BulkResult`: ``matrix``, ``count``, ``usage``, ``requests``, ``retries``,
            ``rate_limited``, ``failed``, ``elapsed``, ``output``, ``model``.

        An exception raised by ``inputs`` (a generator) or by the ``progress`` callable
        propagates as it is; answers already in flight are written first when the inputs
        raise, and the output stays resumable either way. Answers naming another model or
        width than earlier ones stop the run with ``APIResponseValidationError``; so does a
        server asking to wait more than 300 s (its error is raised).
        """
        from ._run_async import create_many

        return await create_many(
            self._runner,
            inputs,
            model=model,
            dimensions=dimensions,
            ids=ids,
            batch_size=batch_size,
            max_batch_tokens=max_batch_tokens,
            max_concurrency=max_concurrency,
            requests_per_minute=requests_per_minute,
            tokens_per_minute=tokens_per_minute,
            output=output,
            resume=resume,
            progress=progress,
            on_error=on_error,
        )

    def iter_many(
        self,
        inputs: Iterable[str],
        *,
        model: str | None = None,
        dimensions: int | None = None,
        batch_size: int = MAX_INPUTS,
        max_batch_tokens: int | None = None,
        max_concurrency: int | None = None,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        progress: Progress = False,
        on_error: OnError = "raise",
    ) -> AsyncChunkIterator:
        """Embed a corpus like `create_many`; ``async for`` yields ordered chunks as they are ready.

        Each `EmbeddedChunk` holds ``offset`` and a float32 ``matrix`` for the inputs
        ``[offset, offset + len(matrix))``; chunks come in input order. Memory stays bounded by
        about ``2 x batch_size x max_concurrency`` rows, whatever the corpus size: write each
        chunk to your own index. Arguments as for `create_many` (without ``ids``, ``output``
        and ``resume``); they are checked now, before anything is sent. With
        ``on_error="skip"``, failed inputs are in no chunk and the iterator's ``failed`` lists
        them. Stopping early (``break``, ``aclose()``, an ``async with`` block) stops the run.
        """
        from ._run_async import iter_many

        return iter_many(
            self._runner,
            inputs,
            model=model,
            dimensions=dimensions,
            batch_size=batch_size,
            max_batch_tokens=max_batch_tokens,
            max_concurrency=max_concurrency,
            requests_per_minute=requests_per_minute,
            tokens_per_minute=tokens_per_minute,
            progress=progress,
            on_error=on_error,
        )
