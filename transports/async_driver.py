"""The async driver: performs the core request flow's actions with an `AsyncTransport`.

The twin of `sync_driver`, kept apart so that ``import aligneai`` does not import asyncio.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Callable

from aligneai.core.body import BodyBuffer
from aligneai.core.failures import TransportError
from aligneai.core.flow import Flow, FlowResult, Outcome, ReadBody, Send, Sleep
from aligneai.core.request import Request

from ._guard import PASS_THROUGH, aclose_quietly, stray_failure
from .base import AsyncResponse, AsyncTransport
from .sync_driver import response_head

__all__ = ["run_async"]


async def run_async(
    flow: Flow,
    transport: AsyncTransport,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> tuple[FlowResult, AsyncResponse | None]:
    """The async twin of `run_sync` (same flow, awaited I/O); cancellation-safe."""
    response: AsyncResponse | None = None
    request: Request | None = None
    try:
        action = next(flow)
        while True:
            outcome: Outcome
            try:
                if isinstance(action, Send):
                    request = action.request
                    if response is not None:
                        await aclose_quietly(response)
                        response = None
                    response = await transport.send(request)
                    outcome = response_head(response)
                elif isinstance(action, ReadBody):
                    assert response is not None, "ReadBody before Send"
                    # A transport's response may offer the body that already arrived with its
                    # head (AiohttpResponse does): then no async iteration and no await.
                    arrived = getattr(response, "read_arrived_body", None)
                    body = None if arrived is None else arrived()
                    if body is not None:
                        response = None  # read_arrived_body() released it
                        if len(body) > action.max_bytes:  # BodyBuffer raises the error
                            BodyBuffer(action.max_bytes).feed(body)
                        outcome = body  # what one chunk in a BodyBuffer gives back
                    else:
                        buffer = BodyBuffer(action.max_bytes)
                        try:
                            async for chunk in response.aiter_bytes():
                                buffer.feed(chunk)
                        finally:
                            # aclose_quietly() inlined: one coroutine less on every call.
                            try:
                                await response.aclose()
                            except Warning:
                                raise
                            except Exception:  # the connection is dropped either way
                                pass
                            response = None
                        outcome = buffer.getvalue()
                else:
                    assert isinstance(action, Sleep)
                    await sleep(action.seconds)
                    outcome = None
            except TransportError as failure:
                outcome = failure
            except PASS_THROUGH:
                raise
            except Exception as exc:
                outcome = stray_failure(exc, request)
            try:
                action = flow.send(outcome)
            except StopIteration as stop:
                result: FlowResult = stop.value
                open_response, response = response, None
                return result, open_response
    finally:
        flow.close()
        if response is not None:
            await aclose_quietly(response)
