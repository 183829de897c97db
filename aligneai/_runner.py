"""Runners: the one typed way a resource performs an operation.

A resource (``client.embeddings``, ``client.models`` and their ``with_raw_response`` views)
describes each call as an `Operation` plus `CallOptions` and hands both to its client's runner,
which returns exactly what the method promises: the parsed model, a `RawResponse` of it, or a
stream. Resources never reach into a client: a runner holds what a call needs (the client's
prepared settings, its transport, its sleep) and nothing else, so it makes no reference cycle
with the client and mypy checks every public return type end to end.

`SyncRunner` and `AsyncRunner` (in `_async_runner`, so that ``import aligneai`` does not import
asyncio) differ only where I/O happens; preparing the flow and parsing its result are shared.
"""

from __future__ import annotations

import os
import random
import time
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from aligneai.core.errors import InvalidArgumentTypeError, InvalidArgumentValueError
from aligneai.core.flow import Flow, FlowResult, prepare_call, request_flow
from aligneai.core.headers import Headers
from aligneai.core.models import CreateEmbeddingResponse
from aligneai.core.operations import CallOptions, Operation
from aligneai.core.options import ClientOptions
from aligneai.transports._guard import close_quietly
from aligneai.transports.base import SyncTransport
from aligneai.transports.sync_driver import run_sync

from ._raw_response import RawResponse, parse_result

if TYPE_CHECKING:
    from ._streaming import Stream

__all__ = ["CallPreparer", "SyncRunner", "check_kind"]

T = TypeVar("T")


class CallPreparer:
    """A client's settings, ready to turn an operation into a request flow.

    Built once per client (and per ``with_options`` copy): it is immutable, so runners of
    one client share it and a copy with other settings gets its own.
    """

    __slots__ = ("headers", "options")

    def __init__(self, options: ClientOptions, headers: Headers) -> None:
        self.options = options
        self.headers = headers

    def flow(self, operation: Operation[Any], call_options: CallOptions) -> Flow:
        """The core's request flow for one call, with a fresh idempotency key for a POST."""
        # 128 random bits, as in a UUID4, at a fifth of uuid.uuid4()'s cost.
        idempotency_key = "aligneai-" + os.urandom(16).hex() if operation.method == "POST" else None
        prepared = prepare_call(
            self.options, self.headers, operation, call_options, idempotency_key=idempotency_key
        )
        return request_flow(
            prepared, clock=time.monotonic, wall_clock=time.time, random=random.random
        )


def check_kind(operation: Operation[Any], *, stream: bool) -> None:
    """Refuse, before anything is sent, an operation handed to the wrong method of a runner."""
    if not isinstance(operation, Operation):
        raise InvalidArgumentTypeError(
            "operation", f"expected an aligneai.core Operation, got {type(operation).__name__}"
        )
    if operation.stream and not stream:
        raise InvalidArgumentValueError(
            "operation", "a streaming operation (stream=True): run it with runner.stream()"
        )
    if stream and not operation.stream:
        raise InvalidArgumentValueError(
            "operation",
            "not a streaming operation: run it with runner.request() or runner.raw()",
        )


class SyncRunner:
    """Performs operations for `AligneAI`'s resources, blocking."""

    __slots__ = ("_preparer", "_sleep", "_transport")

    def __init__(
        self, preparer: CallPreparer, transport: SyncTransport, sleep: Callable[[float], None]
    ) -> None:
        self._preparer = preparer
        self._transport = transport
        self._sleep = sleep

    def _finish(self, operation: Operation[Any], call_options: CallOptions) -> FlowResult:
        check_kind(operation, stream=False)
        result, response = run_sync(
            self._preparer.flow(operation, call_options), self._transport, self._sleep
        )
        if response is not None:  # pragma: no cover - only stream operations leave it open
            response.close()
        return result

    def request(self, operation: Operation[T], call_options: CallOptions) -> T:
        """Run ``operation`` and return its parsed model."""
        return parse_result(operation, self._finish(operation, call_options))

    def raw(self, operation: Operation[T], call_options: CallOptions) -> RawResponse[T]:
        """Run ``operation`` and return its `RawResponse` (parsed on demand)."""
        return RawResponse(operation, self._finish(operation, call_options))

    def stream(
        self, operation: Operation[CreateEmbeddingResponse], call_options: CallOptions
    ) -> Stream:
        """Run a streaming ``operation`` and return the `Stream` that reads its events."""
        from ._streaming import Stream

        check_kind(operation, stream=True)
        result, response = run_sync(
            self._preparer.flow(operation, call_options), self._transport, self._sleep
        )
        assert response is not None, "a stream operation leaves its response open"
        try:
            return Stream(result, response)
        except BaseException:  # the stream never took the response over: release it here
            close_quietly(response)
            raise
