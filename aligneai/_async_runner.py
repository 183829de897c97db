"""`AsyncRunner`: the typed way `AsyncAligneAI`'s resources perform operations.

The twin of `aligneai._runner.SyncRunner` (see there), awaiting the transport; kept apart so
that ``import aligneai`` does not import asyncio.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from aligneai.core.flow import FlowResult
from aligneai.core.models import CreateEmbeddingResponse
from aligneai.core.operations import CallOptions, Operation
from aligneai.transports._guard import aclose_quietly
from aligneai.transports.async_driver import run_async
from aligneai.transports.base import AsyncTransport

from ._raw_response import RawResponse, parse_result
from ._runner import CallPreparer, check_kind

if TYPE_CHECKING:
    from ._streaming import AsyncStream

__all__ = ["AsyncRunner"]

T = TypeVar("T")


class AsyncRunner:
    """Performs operations for `AsyncAligneAI`'s resources, awaiting the transport."""

    __slots__ = ("_preparer", "_sleep", "_transport")

    def __init__(
        self,
        preparer: CallPreparer,
        transport: AsyncTransport,
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self._preparer = preparer
        self._transport = transport
        self._sleep = sleep

    async def _finish(self, operation: Operation[Any], call_options: CallOptions) -> FlowResult:
        check_kind(operation, stream=False)
        result, response = await run_async(
            self._preparer.flow(operation, call_options), self._transport, self._sleep
        )
        if response is not None:  # pragma: no cover - only stream operations leave it open
            await response.aclose()
        return result

    async def request(self, operation: Operation[T], call_options: CallOptions) -> T:
        """Run ``operation`` and return its parsed model."""
        # _finish() and, for the usual operation, check_kind() and parse_result() inlined:
        # three calls less on every call of the usual method.
        if type(operation) is not Operation or operation.stream:
            check_kind(operation, stream=False)
        result, response = await run_async(
            self._preparer.flow(operation, call_options), self._transport, self._sleep
        )
        if response is not None:  # pragma: no cover - only stream operations leave it open
            await response.aclose()
        parser = operation.parser
        if parser is None or result.body is None:
            return parse_result(operation, result)
        return parser(result.head, result.body, result.request)

    async def raw(self, operation: Operation[T], call_options: CallOptions) -> RawResponse[T]:
        """Run ``operation`` and return its `RawResponse` (parsed on demand)."""
        return RawResponse(operation, await self._finish(operation, call_options))

    async def stream(
        self, operation: Operation[CreateEmbeddingResponse], call_options: CallOptions
    ) -> AsyncStream:
        """Run a streaming ``operation`` and return the `AsyncStream` that reads its events."""
        from ._streaming import AsyncStream

        check_kind(operation, stream=True)
        result, response = await run_async(
            self._preparer.flow(operation, call_options), self._transport, self._sleep
        )
        assert response is not None, "a stream operation leaves its response open"
        try:
            return AsyncStream(result, response)
        except BaseException:  # the stream never took the response over: release it here
            await aclose_quietly(response)
            raise
