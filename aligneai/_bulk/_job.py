"""What the sync and async bulk drivers share: argument checks, the job around the scheduler.

A job owns the core `Scheduler` and everything that is not I/O on the network: the sink and
the checkpoint (``create_many``) or the reorder buffer (``iter_many``), and progress. A driver
asks it what to do, sends batches, and hands each answer back; it never decides anything itself.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from aligneai.core.batching import Batch, validate_text
from aligneai.core.bulk import (
    Abort,
    NextAction,
    RequestFailure,
    Scheduler,
    validate_bulk_arguments,
)
from aligneai.core.errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    InvalidArgumentTypeError,
    InvalidArgumentValueError,
    MissingDependencyError,
)
from aligneai.core.matrix import EmbeddingMatrix
from aligneai.core.models import Usage
from aligneai.core.operations import CallOptions, Operation, create_embedding_matrix
from aligneai.core.wire import REQUEST_ID

from ._result import BulkResult, EmbeddedChunk

if TYPE_CHECKING:
    import numpy as np

    from aligneai.core.ratecontrol import RateController

    from ._checkpoint import Checkpoint, DoneRecord
    from ._progress import Reporter
    from ._sinks import Sink

__all__ = [
    "CALL_OPTIONS",
    "ChunkProgress",
    "CreateManyJob",
    "IterManyJob",
    "Job",
    "require_numpy",
    "validate_arguments",
]

#: Each request is tried once: the scheduler owns retries (and the shared 429 hold).
CALL_OPTIONS = CallOptions(max_retries=0)
#: Ids are handed to the sink in groups of this many (in input order).
_IDS_FLUSH = 1024


def require_numpy() -> Any:
    """numpy, or `MissingDependencyError` naming the extra."""
    try:
        import numpy
    except ImportError:
        raise MissingDependencyError(
            'bulk embedding needs numpy: pip install "aligneai[numpy]"'
        ) from None
    return numpy


def _check_iterable(value: object, name: str) -> Iterable[object]:
    if isinstance(value, (str, bytes, bytearray, Mapping)) or not isinstance(value, Iterable):
        raise InvalidArgumentTypeError(
            name,
            f"expected an iterable of strings (a list, a generator...), got {type(value).__name__}",
        )
    return value


def _check_model(model: object) -> str | None:
    if model is None:
        return None
    if not isinstance(model, str):
        raise InvalidArgumentTypeError("model", f"expected a str, got {type(model).__name__}")
    if not model:
        raise InvalidArgumentValueError("model", "must not be empty")
    return model


def _check_dimensions(dimensions: object) -> int | None:
    if dimensions is None:
        return None
    if isinstance(dimensions, bool) or not isinstance(dimensions, int):
        raise InvalidArgumentTypeError(
            "dimensions", f"expected a positive int, got {type(dimensions).__name__}"
        )
    if dimensions < 1:
        raise InvalidArgumentValueError("dimensions", f"must be a positive int, got {dimensions}")
    return dimensions


def _check_progress(progress: object) -> None:
    if progress is None or isinstance(progress, bool) or callable(progress):
        return
    raise InvalidArgumentTypeError(
        "progress",
        f"expected True, False or a callable taking a ProgressEvent, got {type(progress).__name__}",
    )


def validate_arguments(inputs: object, *, texts: bool = True, **kwargs: Any) -> None:
    """Check every argument shared by ``create_many`` and ``iter_many``, naming a bad one.

    With ``texts``, every text of a list or tuple is checked too (`validate_text`), so that
    ``inputs[4000] = ""`` is refused before the first request rather than after 40 of them.
    The texts of any other iterable (a generator) are checked as they are read.
    """
    _check_iterable(inputs, "inputs")
    _check_model(kwargs["model"])
    _check_dimensions(kwargs["dimensions"])
    _check_progress(kwargs["progress"])
    validate_bulk_arguments(
        batch_size=kwargs["batch_size"],
        max_batch_tokens=kwargs["max_batch_tokens"],
        max_concurrency=kwargs["max_concurrency"],
        requests_per_minute=kwargs["requests_per_minute"],
        tokens_per_minute=kwargs["tokens_per_minute"],
        on_error=kwargs["on_error"],
    )
    if texts and isinstance(inputs, (list, tuple)):
        for index, text in enumerate(inputs):
            validate_text(text, index)


def _sized(inputs: object) -> int | None:
    try:
        return len(inputs)  # type: ignore[arg-type]
    except TypeError:
        return None


class Job:
    """The scheduler of one run, plus what happens to answers (see the module docstring)."""

    def __init__(
        self,
        inputs: object,
        *,
        model: object,
        dimensions: object,
        batch_size: object,
        max_batch_tokens: object,
        max_concurrency: object,
        requests_per_minute: object,
        tokens_per_minute: object,
        on_error: object,
        progress: object,
        clock: Callable[[], float],
        done: Sequence[tuple[int, int]] = (),
        on_resumed: Callable[[int, int, tuple[str, ...]], None] | None = None,
        wrap_inputs: Callable[[Iterable[object]], Iterable[object]] | None = None,
        reported_model: str | None = None,
        width: int | None = None,
        texts_checked: bool = False,
        rate: RateController | None = None,
    ) -> None:
        from ._progress import make_reporter

        self.np = require_numpy()
        validate_arguments(
            inputs,
            texts=not texts_checked,
            model=model,
            dimensions=dimensions,
            batch_size=batch_size,
            max_batch_tokens=max_batch_tokens,
            max_concurrency=max_concurrency,
            requests_per_minute=requests_per_minute,
            tokens_per_minute=tokens_per_minute,
            on_error=on_error,
            progress=progress,
        )
        texts = _check_iterable(inputs, "inputs")
        self.model = _check_model(model)
        self.dimensions = _check_dimensions(dimensions)
        # What the server's answers said so far: every batch of one run (and of the run it
        # resumes) must come from the same model, at the same width (see `_check_answer`).
        self.reported_model: str | None = reported_model
        self.width: int | None = width
        resumed = reported_model is not None or width is not None
        self._reported_by = "the interrupted run" if resumed else "earlier inputs"
        self.clock = clock
        self.start = clock()
        self.total_hint = _sized(inputs)
        self.scheduler = Scheduler(
            wrap_inputs(texts) if wrap_inputs is not None else texts,
            now=self.start,
            random=random.random,
            batch_size=batch_size,  # type: ignore[arg-type] # checked by the scheduler
            max_batch_tokens=max_batch_tokens,  # type: ignore[arg-type]
            max_concurrency=max_concurrency,  # type: ignore[arg-type]
            requests_per_minute=requests_per_minute,  # type: ignore[arg-type]
            tokens_per_minute=tokens_per_minute,  # type: ignore[arg-type]
            on_error=on_error,  # type: ignore[arg-type]
            done=done,
            on_resumed=on_resumed,
            rate=rate,
        )
        self.reporter: Reporter = make_reporter(progress, total=self.total_hint)

    @property
    def max_workers(self) -> int:
        """The most requests ever in flight (threads of the sync driver)."""
        return self.scheduler.rate.ceiling

    def operation(self, batch: Batch) -> Operation[EmbeddingMatrix]:
        """The request for one batch (base64 on the wire, decoded into float32)."""
        return create_embedding_matrix(
            inputs=list(batch.texts), model=self.model, dimensions=self.dimensions
        )

    def next_action(self) -> NextAction:
        """What the driver should do now."""
        return self.scheduler.next_action(self.clock())

    def succeeded(self, batch: Batch, answer: EmbeddingMatrix, headers: Mapping[str, str]) -> None:
        """A batch was embedded: account for it, then deliver its rows."""
        matrix = answer.matrix
        if matrix.shape[0] != len(batch):  # pragma: no cover - the answer checks guard this
            raise ValueError(f"{matrix.shape[0]} embeddings for {len(batch)} inputs")
        self._check_answer(batch, answer, headers)
        self.scheduler.on_success(batch, answer.usage.prompt_tokens, headers, self.clock())
        self.deliver(batch, matrix)
        self.report()

    def _check_answer(
        self, batch: Batch, answer: EmbeddingMatrix, headers: Mapping[str, str]
    ) -> None:
        """One run, one model, one width: an answer that differs is a broken contract.

        Rows from two models (a server whose default changed mid-run or between a run and its
        resume, a load balancer mixing versions) are not comparable: mixed into one matrix they
        would silently corrupt an index. So the run stops with `APIResponseValidationError`
        before the answer's rows are written; the output stays resumable.
        """
        width = int(answer.matrix.shape[1])
        problem = None
        if self.reported_model is not None and answer.model != self.reported_model:
            problem = (
                f"model {answer.model!r}, but {self._reported_by} came from "
                f"{self.reported_model!r}: one output cannot mix the vectors of two models"
            )
        elif self.width is not None and width != self.width:
            problem = (
                f"{width}-dimensional embeddings, but {self._reported_by} got {self.width}: "
                "one output cannot mix widths"
            )
        if problem is not None:
            raise APIResponseValidationError(
                f"the server answered inputs [{batch.start}, {batch.stop}) with {problem}",
                status_code=200,
                request_id=headers.get(REQUEST_ID),
            )
        self.reported_model = answer.model
        self.width = width

    def failed(self, batch: Batch, error: BaseException, wall_now: float) -> None:
        """A batch failed with ``error``: let the scheduler decide; raise when it gives up."""
        if not isinstance(error, (APIStatusError, APIConnectionError)):
            raise error
        failure = RequestFailure.from_error(error, wall_now)
        decision = self.scheduler.on_failure(batch, failure, self.clock())
        if isinstance(decision, Abort):
            if decision.error is not None:
                raise decision.error from error
            raise error
        self.report()

    def deliver(self, batch: Batch, matrix: np.ndarray[Any, Any]) -> None:
        """Where the rows of a successful batch go."""
        raise NotImplementedError

    def report(self) -> None:
        """Send the progress so far to the reporter."""
        from ._progress import ProgressEvent

        counters = self.scheduler.counters
        self.reporter.update(
            ProgressEvent(
                done=counters.embedded + counters.resumed,
                total=self.scheduler.total if self.scheduler.total is not None else self.total_hint,
                failed=len(counters.failed),
                tokens=counters.tokens,
                requests=counters.requests,
                retries=counters.retries,
                rate_limited=counters.rate_limited,
                elapsed=self.clock() - self.start,
                concurrency=self.scheduler.rate.concurrency,
            )
        )


def _with_ids(inputs: Iterable[object], ids: Iterable[object], sink: Sink) -> Iterator[object]:
    """Yield the inputs; hand the aligned ids to the sink in input order, checking the counts."""
    id_iterator = iter(ids)
    pending: list[str] = []
    start = 0
    count = 0
    for text in inputs:
        try:
            value = next(id_iterator)
        except StopIteration:
            raise InvalidArgumentValueError(
                "ids", f"has {count} items but inputs have more; give one id per input"
            ) from None
        if not isinstance(value, str):
            raise InvalidArgumentTypeError(
                f"ids[{count}]", f"expected a str, got {type(value).__name__}"
            )
        pending.append(value)
        count += 1
        if len(pending) >= _IDS_FLUSH:
            sink.record_ids(start, pending)
            start += len(pending)
            pending = []
        yield text
    if pending:
        sink.record_ids(start, pending)
    for _ in id_iterator:
        raise InvalidArgumentValueError(
            "ids", f"has more items than the {count} inputs; give one id per input"
        )


class CreateManyJob(Job):
    """``create_many``: rows go to the sink, then the checkpoint records them."""

    def __init__(
        self,
        inputs: object,
        *,
        ids: object,
        output: object,
        resume: object,
        **kwargs: Any,
    ) -> None:
        from ._lock import OutputLock, resolve_output
        from ._sinks import validate_output

        require_numpy()
        # Everything is checked before a file is touched.
        validate_arguments(inputs, **kwargs)
        if not isinstance(resume, bool):
            raise InvalidArgumentTypeError(
                "resume", f"expected a bool, got {type(resume).__name__}"
            )
        if ids is not None:
            _check_iterable(ids, "ids")
            # Both sized (lists, a file's corpus): a mismatch is known now, before anything is
            # sent. Otherwise it shows when one of them runs out (see `_with_ids`).
            count, id_count = _sized(inputs), _sized(ids)
            if count is not None and id_count is not None and count != id_count:
                raise InvalidArgumentValueError(
                    "ids", f"has {id_count} items but inputs have {count}; give one id per input"
                )
        path = validate_output(output)
        if ids is not None and path is None:
            raise InvalidArgumentValueError(
                "ids",
                "needs an output file (output=...) to go into; in memory, row i of "
                "result.matrix is input i",
            )
        if resume and path is None:
            raise InvalidArgumentValueError(
                "resume", "needs an output file (output=...) to continue"
            )
        dimensions = _check_dimensions(kwargs.get("dimensions"))
        #: The output as given (the result names it so); its files are those of `resolve_output`.
        self.output: Path | None = path
        target = resolve_output(path) if path is not None else None
        # One run per output at a time, from here to `close` (see `_lock`): taken before the
        # checkpoint is read, so a second run is refused before it touches any file.
        self._lock = OutputLock.acquire(target) if target is not None else None
        try:
            self._open(inputs, target, ids, resume, dimensions, kwargs)
        except BaseException:
            if self._lock is not None:
                self._lock.release()
            raise

    def _open(
        self,
        inputs: object,
        path: Path | None,
        ids: object,
        resume: bool,
        dimensions: int | None,
        kwargs: dict[str, Any],
    ) -> None:
        from ._checkpoint import Checkpoint, open_finished, texts_digest
        from ._sinks import open_sink

        self.checkpoint: Checkpoint | None = None
        self.finished: DoneRecord | None = None
        done: list[tuple[int, int]] = []
        seen: dict[str, Any] = {}
        if path is not None:
            fingerprint = {
                "model": _check_model(kwargs.get("model")),
                "dimensions": dimensions,
                "format": path.suffix.lower(),
                "ids": ids is not None,
            }
            if resume:
                self.finished = open_finished(path, fingerprint)
                if self.finished is not None:
                    self._open_finished(inputs, path, self.finished, kwargs)
                    return
            self.checkpoint = Checkpoint.open(path, fingerprint, resume=resume)
            if self.checkpoint.resumed:
                done = [(start, stop) for start, stop, _ in self.checkpoint.done]
                dimensions = dimensions or self.checkpoint.dimensions
                if done:
                    seen = {
                        "reported_model": self.checkpoint.server_model,
                        "width": self.checkpoint.dimensions,
                    }
        try:
            self.sink: Sink = open_sink(path, resume=resume, dimensions=dimensions)
        except BaseException:
            if self.checkpoint is not None and not self.checkpoint.resumed:
                self.checkpoint.complete()  # the fresh checkpoint of a run that never started
            raise
        checkpoint = self.checkpoint

        def verify(start: int, stop: int, texts: tuple[str, ...]) -> None:
            assert checkpoint is not None
            checkpoint.verify(start, stop, texts_digest(start, texts))

        self._digest = texts_digest
        try:
            super().__init__(
                inputs,
                done=done,
                on_resumed=verify if done else None,
                wrap_inputs=(
                    None if ids is None else (lambda texts: _with_ids(texts, ids, self.sink))  # type: ignore[arg-type]
                ),
                texts_checked=True,
                **seen,
                **kwargs,
            )
        except BaseException:
            self.sink.close()
            raise

    def _open_finished(
        self, inputs: object, path: Path, record: DoneRecord, kwargs: dict[str, Any]
    ) -> None:
        """``resume=True`` on a finished output: check the inputs, then nothing is left to do.

        The inputs are read through and hashed against the record (`DoneRecord.verify`), here,
        before the driver starts: the scheduler gets none of them, so nothing is sent.
        """
        from ._sinks import FinishedSink

        record.verify(inputs)  # type: ignore[arg-type] # an iterable: checked by the caller
        self.sink = FinishedSink(path, dimensions=record.dimensions)
        super().__init__((), texts_checked=True, **kwargs)
        self.total_hint = record.count

    def deliver(self, batch: Batch, matrix: np.ndarray[Any, Any]) -> None:
        """Rows first, then the checkpoint (saved atomically): a kill never loses recorded rows."""
        self.sink.write(batch.start, matrix)
        if self.checkpoint is not None:
            self.sink.sync()
            self.checkpoint.dimensions = self.sink.dimensions
            self.checkpoint.server_model = self.reported_model
            self.checkpoint.record(batch.start, batch.stop, self._digest(batch.start, batch.texts))
            self.checkpoint.save()

    def finish(self) -> BulkResult:
        """All inputs are done: finalise the output and describe the run."""
        if self.finished is not None:
            return self._finish_finished(self.finished)
        counters = self.scheduler.counters
        count = self.scheduler.total
        assert count is not None
        failed = tuple(sorted(counters.failed))
        if self.checkpoint is not None and self.checkpoint.resumed:
            self.checkpoint.verify_end(count)
        self.sink.finish(count, failed)
        if self.checkpoint is not None:
            # The record first: killed before the checkpoint goes, the run is simply resumed.
            size = self.checkpoint.output.stat().st_size
            self.checkpoint.dimensions = self.sink.dimensions  # given, when no row came back
            self.checkpoint.done_record(count, failed, size).save()
            self.checkpoint.complete()
        self.report()
        return BulkResult(
            matrix=self.sink.matrix,
            count=count,
            dimensions=self.sink.dimensions or 0,
            usage=Usage(prompt_tokens=counters.tokens, total_tokens=counters.tokens),
            requests=counters.requests,
            retries=counters.retries,
            rate_limited=counters.rate_limited,
            failed=failed,
            resumed=counters.resumed,
            elapsed=self.clock() - self.start,
            output=self.output,
            model=self.reported_model,
        )

    def _finish_finished(self, record: DoneRecord) -> BulkResult:
        """The result of a run that found its output finished: the finished run's rows."""
        from ._progress import ProgressEvent

        self.sink.finish(record.count, record.failed)
        written = record.count - len(record.failed)
        elapsed = self.clock() - self.start
        self.reporter.update(
            ProgressEvent(
                done=written,
                total=record.count,
                failed=len(record.failed),
                elapsed=elapsed,
                concurrency=self.scheduler.rate.concurrency,
            )
        )
        return BulkResult(
            matrix=self.sink.matrix,
            count=record.count,
            dimensions=record.dimensions or 0,
            usage=Usage(prompt_tokens=0, total_tokens=0),
            requests=0,
            retries=0,
            rate_limited=0,
            failed=record.failed,
            resumed=written,
            elapsed=elapsed,
            output=self.output,
            model=record.server_model,
            already_complete=True,
        )

    def close(self) -> None:
        """Release the files (an unfinished output stays resumable), the lock, the display."""
        try:
            self.sink.close()
        finally:
            try:
                self.reporter.close()
            finally:
                if self._lock is not None:
                    self._lock.release()


class IterManyJob(Job):
    """``iter_many``: rows wait in a reorder buffer until they can be yielded in input order."""

    def __init__(self, inputs: object, **kwargs: Any) -> None:
        super().__init__(inputs, **kwargs)
        self._held: dict[int, np.ndarray[Any, Any]] = {}
        self._failed: set[int] = set()
        self._failed_seen = 0
        self.cursor = 0

    @property
    def failed_indexes(self) -> tuple[int, ...]:
        """Indexes of the inputs given up on so far (``on_error="skip"``), ascending."""
        return tuple(sorted(self.scheduler.counters.failed))

    def deliver(self, batch: Batch, matrix: np.ndarray[Any, Any]) -> None:
        """Hold the rows until every input before them is out (`_check_answer` saw the width)."""
        self._held[batch.start] = matrix

    def ready(self) -> Iterator[EmbeddedChunk]:
        """The chunks that can now be yielded in order."""
        failed = self.scheduler.counters.failed
        if len(failed) > self._failed_seen:
            self._failed.update(failed[self._failed_seen :])
            self._failed_seen = len(failed)
        while True:
            matrix = self._held.pop(self.cursor, None)
            if matrix is not None:
                chunk = EmbeddedChunk(self.cursor, matrix)
                self.cursor += len(chunk)
                yield chunk
            elif self.cursor in self._failed:
                self._failed.discard(self.cursor)
                self.cursor += 1
            else:
                return

    def close(self) -> None:
        """Drop what is held and close the progress display."""
        self._held.clear()
        self.reporter.close()


class ChunkProgress:
    """What `ChunkIterator` and `AsyncChunkIterator` report while they run (one definition)."""

    _job: IterManyJob

    @property
    def failed(self) -> tuple[int, ...]:
        """Indexes of the inputs given up on so far (``on_error="skip"``), ascending."""
        return self._job.failed_indexes

    @property
    def model(self) -> str | None:
        """The model the server named in its answers so far (None before the first one)."""
        return self._job.reported_model

    @property
    def requests(self) -> int:
        """Requests sent so far."""
        return self._job.scheduler.counters.requests

    @property
    def retries(self) -> int:
        """Requests sent again so far."""
        return self._job.scheduler.counters.retries

    @property
    def rate_limited(self) -> int:
        """429 answers so far."""
        return self._job.scheduler.counters.rate_limited

    @property
    def tokens(self) -> int:
        """Tokens the server reported so far."""
        return self._job.scheduler.counters.tokens
