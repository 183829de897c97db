"""``create_many`` whose rate state carries over from one call to the next.

An engine worker or a framework adapter embeds batch after batch, one ``create_many`` each. A
fresh run starts from full client budgets (a bucket holds one minute's worth) and knows nothing
of the server's limits yet: calls in a row would spend the budget again at every call (the
budget would not hold over a minute) and the first requests of each would race into 429s. Here
the job's rate controller (the budgets, the server's limits learned from its headers, the
concurrency window, a 429 hold) is the one the previous call ended with.

The bulk module has no argument for this yet: the job is built as its drivers build it and its
rate controller swapped before anything is dispatched. A controller is driven by one run at a
time: a call that finds the slot taken (another call of the same adapter is running) starts
from a fresh controller, and the last to finish leaves its own.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from aligneai._async_client import AsyncAligneAI
    from aligneai._bulk._job import CreateManyJob
    from aligneai._client import AligneAI
    from aligneai.bulk import BulkResult
    from aligneai.core.ratecontrol import RateController

__all__ = ["RateSlot", "acreate_many", "create_many"]


class RateSlot:
    """Holds the rate controller between two calls (see the module docstring)."""

    def __init__(self) -> None:
        self._rate: Optional[RateController] = None  # noqa: UP045

    def take(self) -> RateController | None:
        # A plain swap: atomic under the GIL, so two threads never drive one controller.
        rate, self._rate = self._rate, None
        return rate

    def put(self, rate: RateController) -> None:
        self._rate = rate


def _job(texts: Iterable[str], slot: RateSlot, kwargs: dict[str, Any]) -> CreateManyJob:
    from aligneai._bulk._job import CreateManyJob

    return CreateManyJob(
        texts,
        ids=None,
        output=None,
        resume=False,
        clock=time.monotonic,
        rate=slot.take(),
        **kwargs,
    )


def create_many(
    client: AligneAI, texts: Iterable[str], slot: RateSlot, **kwargs: Any
) -> BulkResult:
    """``client.embeddings.create_many(texts, **kwargs)`` (in memory), carrying ``slot`` over."""
    from aligneai._bulk._run_sync import run

    job = _job(texts, slot, kwargs)
    try:
        for _ in run(job, client.runner):
            pass
        return job.finish()
    finally:
        slot.put(job.scheduler.rate)
        job.close()


async def acreate_many(
    client: AsyncAligneAI, texts: Iterable[str], slot: RateSlot, **kwargs: Any
) -> BulkResult:
    """The async twin of `create_many`."""
    from aligneai._bulk._run_async import run

    job = _job(texts, slot, kwargs)
    try:
        async for _ in run(job, client.runner):
            pass
        return job.finish()
    finally:
        slot.put(job.scheduler.rate)
        job.close()
