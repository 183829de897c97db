"""The synchronous bulk driver: batches sent by a bounded pool of threads sharing one client.

The loop runs on the caller's thread: it asks the job what to do, hands batches to the worker
threads and feeds their answers back, so the scheduler, the sink and the checkpoint are only
ever touched from that one thread. The workers only send requests (each tried once: the
scheduler owns retries) and decode the answers.

The workers are daemon threads: on Ctrl-C (or an error writing rows, or from the progress
callback) the loop stops dispatching at once and returns without waiting for the requests still
in flight, whose answers are dropped; the output keeps every row already written and its
checkpoint, so ``resume=True`` continues it. An error that stops the run while requests are in
flight but leaves the output writable (the inputs raised or hold a bad text, a batch was given
up on) first collects those requests' answers for at most `DRAIN_GRACE` seconds and writes the
successful ones: they were paid for, and a resumed run need not send them again.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Generator, Mapping
from typing import TYPE_CHECKING, Any, Callable, Union

from aligneai.core.batching import Batch
from aligneai.core.bulk import Dispatch, Finished
from aligneai.core.matrix import EmbeddingMatrix

from ._job import CALL_OPTIONS, ChunkProgress, CreateManyJob, IterManyJob, Job
from ._result import BulkResult, EmbeddedChunk

if TYPE_CHECKING:
    from aligneai._runner import SyncRunner

__all__ = ["DRAIN_GRACE", "ChunkIterator", "create_many", "iter_many", "run"]

#: Seconds a run stopped by an error waits for the answers already in flight (see above).
DRAIN_GRACE = 30.0

_Answer = Union[tuple[EmbeddingMatrix, Mapping[str, str]], BaseException]


class _Workers:
    """A bounded pool of daemon threads running ``send``; results come back on a queue."""

    def __init__(self, send: Callable[[Batch], Any], max_workers: int) -> None:
        self._send = send
        self._max = max_workers
        self._jobs: queue.SimpleQueue[Batch | None] = queue.SimpleQueue()
        self._results: queue.SimpleQueue[tuple[Batch, _Answer]] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self.in_flight = 0

    def submit(self, batch: Batch) -> None:
        self.in_flight += 1
        if self.in_flight > len(self._threads) and len(self._threads) < self._max:
            thread = threading.Thread(
                target=self._work, name=f"aligneai-bulk-{len(self._threads)}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        self._jobs.put(batch)

    def _work(self) -> None:
        while True:
            batch = self._jobs.get()
            if batch is None:
                return
            answer: _Answer
            try:
                answer = self._send(batch)
            except BaseException as exc:  # handed to the loop, which decides
                answer = exc
            self._results.put((batch, answer))

    def get(self, timeout: float | None) -> tuple[Batch, _Answer] | None:
        try:
            item = self._results.get(timeout=timeout)
        except queue.Empty:
            return None
        self.in_flight -= 1
        return item

    def get_nowait(self) -> tuple[Batch, _Answer] | None:
        return self.get(0) if self.in_flight else None

    def close(self) -> None:
        # No join: threads still waiting for an answer finish on their own, and drop it.
        for _ in self._threads:
            self._jobs.put(None)


def run(job: Job, runner: SyncRunner) -> Generator[None, None, None]:
    """Drive ``job`` to the end; yields after each round of answers (for `iter_many`)."""

    def send(batch: Batch) -> tuple[EmbeddingMatrix, Mapping[str, str]]:
        raw = runner.raw(job.operation(batch), CALL_OPTIONS)
        return raw.parse(), raw.headers

    workers = _Workers(send, job.max_workers)
    try:
        while True:
            try:
                action = job.next_action()
            except Exception:  # the inputs: a bad text, one too large, the iterable raised
                _drain(job, workers)
                raise
            if isinstance(action, Dispatch):
                workers.submit(action.batch)
                continue
            if isinstance(action, Finished):
                return
            timeout = None if action.until is None else max(0.0, action.until - job.clock())
            if timeout is None and not workers.in_flight:  # pragma: no cover - a core bug
                raise RuntimeError("the bulk scheduler waits for nothing")
            item = workers.get(timeout)
            while item is not None:
                batch, answer = item
                if isinstance(answer, BaseException):
                    try:
                        job.failed(batch, answer, time.time())
                    except Exception:  # given up on: keep what the others bring back
                        _drain(job, workers)
                        raise
                else:
                    job.succeeded(batch, answer[0], answer[1])
                item = workers.get_nowait()
            yield
    finally:
        workers.close()


def _drain(job: Job, workers: _Workers) -> None:
    """Write the successful answers of the requests in flight, for at most `DRAIN_GRACE` s.

    The run is stopping with an error (the caller re-raises it): failed answers are not
    retried, and an error while writing ends the drain early (the first error is the one told).
    """
    deadline = job.clock() + DRAIN_GRACE
    while workers.in_flight:
        item = workers.get(max(0.0, deadline - job.clock()))
        if item is None:  # the grace is over: abandon the rest, as on Ctrl-C
            return
        batch, answer = item
        if isinstance(answer, BaseException):
            continue
        try:
            job.succeeded(batch, answer[0], answer[1])
        except Exception:
            return


def create_many(runner: SyncRunner, inputs: object, **kwargs: Any) -> BulkResult:
    """``embeddings.create_many`` on the sync client (arguments checked by the job)."""
    job = CreateManyJob(inputs, clock=time.monotonic, **kwargs)
    try:
        for _ in run(job, runner):
            pass
        return job.finish()
    finally:
        job.close()


class ChunkIterator(ChunkProgress):
    """What ``embeddings.iter_many`` returns: an iterator of `EmbeddedChunk`, in input order.

    Leaving it early (``break``) is fine; `close` (or ``with``) stops the run at once.
    """

    def __init__(self, runner: SyncRunner, job: IterManyJob) -> None:
        self._job = job
        self._chunks = self._generate(runner)

    def _generate(self, runner: SyncRunner) -> Generator[EmbeddedChunk, None, None]:
        try:
            for _ in run(self._job, runner):
                yield from self._job.ready()
            yield from self._job.ready()
        finally:
            self._job.close()

    def __iter__(self) -> ChunkIterator:
        return self

    def __next__(self) -> EmbeddedChunk:
        return next(self._chunks)

    def close(self) -> None:
        """Stop the run: nothing more is sent; requests in flight are abandoned."""
        self._chunks.close()

    def __enter__(self) -> ChunkIterator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def iter_many(runner: SyncRunner, inputs: object, **kwargs: Any) -> ChunkIterator:
    """``embeddings.iter_many`` on the sync client: arguments are checked now, not at ``next``."""
    return ChunkIterator(runner, IterManyJob(inputs, clock=time.monotonic, **kwargs))
