"""The asynchronous bulk driver: batches sent as tasks of one client, on the caller's event loop.

The loop asks the job what to do, starts a task per batch and feeds each answer back as it
completes; the scheduler, the sink and the checkpoint are touched by the loop alone. When the
run is cancelled (``task.cancel()``, a timeout around it) or fails, nothing more is sent, the
tasks in flight are cancelled and awaited for at most `CANCEL_GRACE` seconds, and the
cancellation (or error) propagates; the output keeps every row already written and stays
resumable. An error that leaves the output writable (the inputs raised or hold a bad text, a
batch was given up on) first collects the answers already in flight for at most `DRAIN_GRACE`
seconds and writes the successful ones: they were paid for, and a resumed run need not send
them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aligneai.core.batching import Batch
from aligneai.core.bulk import Dispatch, Finished
from aligneai.core.matrix import EmbeddingMatrix

from ._job import CALL_OPTIONS, ChunkProgress, CreateManyJob, IterManyJob, Job
from ._result import BulkResult, EmbeddedChunk

if TYPE_CHECKING:
    from aligneai._async_runner import AsyncRunner

__all__ = ["CANCEL_GRACE", "DRAIN_GRACE", "AsyncChunkIterator", "create_many", "iter_many", "run"]

#: Seconds the tasks in flight get to finish their cancellation when the run stops.
CANCEL_GRACE = 1.0
#: Seconds a run stopped by an error waits for the answers already in flight (see above).
DRAIN_GRACE = 30.0


async def run(job: Job, runner: AsyncRunner) -> AsyncGenerator[None, None]:
    """Drive ``job`` to the end; yields after each round of answers (for `iter_many`)."""

    async def send(batch: Batch) -> tuple[EmbeddingMatrix, Mapping[str, str]]:
        raw = await runner.raw(job.operation(batch), CALL_OPTIONS)
        return raw.parse(), raw.headers

    tasks: dict[asyncio.Future[Any], Batch] = {}
    try:
        while True:
            try:
                action = job.next_action()
            except Exception:  # the inputs: a bad text, one too large, the iterable raised
                await _drain(job, tasks)
                raise
            if isinstance(action, Dispatch):
                tasks[asyncio.ensure_future(send(action.batch))] = action.batch
                continue
            if isinstance(action, Finished):
                return
            timeout = None if action.until is None else max(0.0, action.until - job.clock())
            if not tasks:
                if timeout is None:  # pragma: no cover - a core bug
                    raise RuntimeError("the bulk scheduler waits for nothing")
                await asyncio.sleep(timeout)
                continue
            done, _ = await asyncio.wait(
                tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                batch = tasks.pop(task)
                error = task.exception()
                if error is not None:
                    try:
                        job.failed(batch, error, time.time())
                    except Exception:  # given up on: keep what the others bring back
                        await _drain(job, tasks, [t for t in done if t in tasks])
                        raise
                else:
                    answer, headers = task.result()
                    job.succeeded(batch, answer, headers)
            yield
    finally:
        for task in tasks:
            task.cancel()
        if tasks:
            with contextlib.suppress(BaseException):
                await asyncio.wait(tasks, timeout=CANCEL_GRACE)
            for task in tasks:  # retrieve outcomes: no "exception never retrieved" warnings
                if task.done() and not task.cancelled():
                    task.exception()


async def _drain(
    job: Job, tasks: dict[asyncio.Future[Any], Batch], ready: Sequence[asyncio.Future[Any]] = ()
) -> None:
    """Write the successful answers of the tasks in flight, for at most `DRAIN_GRACE` s.

    The run is stopping with an error (the caller re-raises it): failed answers are not
    retried, and an error while writing ends the drain early (the first error is the one told).
    Drained tasks leave ``tasks``; the rest are cancelled by `run`.
    """
    deadline = job.clock() + DRAIN_GRACE
    pending = list(ready)
    while pending or tasks:
        if not pending:
            remaining = deadline - job.clock()
            if remaining <= 0:
                return
            done, _ = await asyncio.wait(
                tasks, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                return
            pending = list(done)
        task = pending.pop()
        batch = tasks.pop(task)
        if task.cancelled() or task.exception() is not None:
            continue
        answer, headers = task.result()
        try:
            job.succeeded(batch, answer, headers)
        except Exception:
            return


async def create_many(runner: AsyncRunner, inputs: object, **kwargs: Any) -> BulkResult:
    """``embeddings.create_many`` on the async client (arguments checked by the job)."""
    job = CreateManyJob(inputs, clock=time.monotonic, **kwargs)
    try:
        async for _ in run(job, runner):
            pass
        return job.finish()
    finally:
        job.close()


class AsyncChunkIterator(ChunkProgress):
    """What the async ``embeddings.iter_many`` returns: ``async for chunk in ...``, in order.

    Leaving it early is fine; `aclose` (or ``async with``) stops the run at once.
    """

    def __init__(self, runner: AsyncRunner, job: IterManyJob) -> None:
        self._job = job
        self._chunks = self._generate(runner)

    async def _generate(self, runner: AsyncRunner) -> AsyncGenerator[EmbeddedChunk, None]:
        steps = run(self._job, runner)
        try:
            async for _ in steps:
                for chunk in self._job.ready():
                    yield chunk
            for chunk in self._job.ready():
                yield chunk
        finally:
            await steps.aclose()
            self._job.close()

    def __aiter__(self) -> AsyncChunkIterator:
        return self

    async def __anext__(self) -> EmbeddedChunk:
        return await self._chunks.__anext__()

    async def aclose(self) -> None:
        """Stop the run: nothing more is sent; requests in flight are cancelled."""
        await self._chunks.aclose()

    async def __aenter__(self) -> AsyncChunkIterator:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def iter_many(runner: AsyncRunner, inputs: object, **kwargs: Any) -> AsyncChunkIterator:
    """``embeddings.iter_many`` on the async client: arguments are checked now."""
    return AsyncChunkIterator(runner, IterManyJob(inputs, clock=time.monotonic, **kwargs))
