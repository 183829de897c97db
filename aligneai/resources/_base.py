"""The base of every resource: what it holds is its client's runner, nothing else."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aligneai._async_runner import AsyncRunner
    from aligneai._runner import SyncRunner

__all__ = ["AsyncAPIResource", "SyncAPIResource"]


class SyncAPIResource:
    """A group of `AligneAI` methods (``client.embeddings``, ``client.models``, ...).

    Methods validate their arguments into an operation and hand it to the runner, which
    returns the typed result, its `RawResponse`, or a stream.
    """

    __slots__ = ("_runner",)

    def __init__(self, runner: SyncRunner) -> None:
        self._runner = runner


class AsyncAPIResource:
    """A group of `AsyncAligneAI` methods; see `SyncAPIResource`."""

    __slots__ = ("_runner",)

    def __init__(self, runner: AsyncRunner) -> None:
        self._runner = runner
