"""`Stream` and `AsyncStream`: embeddings handed out as the server produces them.

Both feed the transport's chunks into the core's `EmbeddingStreamDecoder`; only the iteration
differs (``for`` or ``async for``). Memory stays flat however long the stream is: items are not
kept unless `get_final_response` asks for all of them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from types import TracebackType

from aligneai.core.errors import APIError
from aligneai.core.failures import TransportError, to_api_error
from aligneai.core.flow import FlowResult
from aligneai.core.models import CreateEmbeddingResponse, Embedding, Usage
from aligneai.core.streaming import EmbeddingStreamDecoder, assemble_response
from aligneai.transports.base import AsyncResponse, SyncResponse

__all__ = ["AsyncStream", "Stream"]


class _StreamState:
    """What both stream kinds expose: the response's metadata and the final event."""

    _decoder: EmbeddingStreamDecoder
    _result: FlowResult
    _started: bool

    def _init_state(self, result: FlowResult) -> None:
        self._result = result
        self._decoder = EmbeddingStreamDecoder(result.head, result.request)
        self._started = False

    @property
    def status_code(self) -> int:
        """The HTTP status of the stream's response."""
        return self._result.head.status_code

    @property
    def request_id(self) -> str | None:
        """The server's ``x-request-id``."""
        return self._result.head.request_id

    @property
    def retries_taken(self) -> int:
        """Retries made before the stream started."""
        return self._result.retries_taken

    @property
    def model(self) -> str | None:
        """The model that produced the stream; set once the ``done`` event arrived."""
        return None if self._decoder.done is None else self._decoder.done.model

    @property
    def usage(self) -> Usage | None:
        """Token usage; set once the ``done`` event arrived."""
        return None if self._decoder.done is None else self._decoder.done.usage

    def _check_unstarted(self) -> None:
        if self._started:
            raise APIError(
                "get_final_response() must be called before iterating over the stream: "
                "items already handed out are not kept (so that memory stays flat)"
            )
        self._started = True

    def _final(self, items: list[Embedding]) -> CreateEmbeddingResponse:
        assert self._decoder.done is not None  # the iteration raised otherwise
        return assemble_response(items, self._decoder.done)


class Stream(_StreamState, Iterator[Embedding]):
    """Iterate to receive each `Embedding` as it arrives (in arrival order).

    Use it as a context manager, or call `close`, to release the connection early; it is also
    released when the stream ends, fails, or is garbage-collected.
    """

    def __init__(self, result: FlowResult, response: SyncResponse) -> None:
        self._init_state(result)
        self._response: SyncResponse | None = response
        self._iterator = self._iterate(response)

    def _iterate(self, response: SyncResponse) -> Iterator[Embedding]:
        decoder = self._decoder
        try:
            for chunk in response.iter_bytes():
                yield from decoder.feed(chunk)
                if decoder.finished:
                    break
            decoder.close()
        except TransportError as failure:
            raise to_api_error(failure, self._result.request) from failure
        finally:
            self.close()

    def __next__(self) -> Embedding:
        self._started = True
        return next(self._iterator)

    def __iter__(self) -> Stream:
        return self

    def get_final_response(self) -> CreateEmbeddingResponse:
        """Read the whole stream and return it as one response, ordered by index."""
        self._check_unstarted()
        return self._final(list(self._iterator))

    def close(self) -> None:
        """Release the connection (idempotent)."""
        response, self._response = self._response, None
        if response is not None:
            response.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        # A stream dropped half-read must not keep its connection checked out.
        with contextlib.suppress(Exception):
            self.close()


class AsyncStream(_StreamState, AsyncIterator[Embedding]):
    """Iterate with ``async for`` to receive each `Embedding` as it arrives.

    Use ``async with`` or ``await stream.aclose()`` to release the connection early.
    """

    def __init__(self, result: FlowResult, response: AsyncResponse) -> None:
        self._init_state(result)
        self._response: AsyncResponse | None = response
        self._iterator = self._iterate(response)

    async def _iterate(self, response: AsyncResponse) -> AsyncIterator[Embedding]:
        decoder = self._decoder
        try:
            async for chunk in response.aiter_bytes():
                for item in decoder.feed(chunk):
                    yield item
                if decoder.finished:
                    break
            decoder.close()
        except TransportError as failure:
            raise to_api_error(failure, self._result.request) from failure
        finally:
            await self.aclose()

    async def __anext__(self) -> Embedding:
        self._started = True
        return await self._iterator.__anext__()

    def __aiter__(self) -> AsyncStream:
        return self

    async def get_final_response(self) -> CreateEmbeddingResponse:
        """Read the whole stream and return it as one response, ordered by index."""
        self._check_unstarted()
        return self._final([item async for item in self._iterator])

    async def aclose(self) -> None:
        """Release the connection (idempotent)."""
        response, self._response = self._response, None
        if response is not None:
            await response.aclose()

    close = aclose

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
