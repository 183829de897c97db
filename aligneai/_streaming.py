"""`Stream` and `AsyncStream`: embeddings handed out as the server produces them.

Both feed the transport's chunks into the core's `EmbeddingStreamDecoder`; only the iteration
differs (``for`` or ``async for``). Memory stays flat however long the stream is: items are not
kept unless `get_final_response` asks for all of them.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from types import TracebackType
from typing import Any

from aligneai.core.embedding_stream import EmbeddingStreamDecoder, assemble_response
from aligneai.core.errors import APIError
from aligneai.core.failures import TransportError, to_api_error
from aligneai.core.flow import FlowResult
from aligneai.core.headers import Headers
from aligneai.core.models import CreateEmbeddingResponse, Embedding, Usage
from aligneai.core.request import Request
from aligneai.transports._guard import aclose_quietly, close_quietly, stray_failure
from aligneai.transports.base import AsyncResponse, SyncResponse

__all__ = ["AsyncStream", "Stream"]

# How the connection of a stream is released, whatever way the caller leaves it:
#
# - The transport response is held by a small holder (`_SyncHold` / `_AsyncHold`) that the
#   stream, its reading generator and a `weakref.finalize` share; none of them refers back to
#   the stream. So a stream dropped half-read (``return`` inside the ``for`` loop) is freed at
#   once by reference counting, and its finalizer releases the connection then. A stream that
#   ends up in a reference cycle anyway is released safely too: the finalizer's registry keeps
#   the response (and its socket) alive until the callback has closed it. (A stream that owned
#   its response alone let the garbage collector finalise the socket first and then hand the
#   dead connection back to the pool, where the next call failed.)
# - The finalizer takes no lock (`abandon`): the collector may run it anywhere.
# - A response read part-way is closed, never reused (the transport's job); one read to its
#   ``done`` event is closed with `close_after_end` where the transport offers it, so that its
#   connection can be reused.
# - ``close()`` marks the holder closed: iteration then ends (StopIteration), and a read
#   that fails because the stream was closed meanwhile ends quietly too.


def _call_quietly(close: Any) -> None:
    """Call a reader's ``close``; the connection is released next whatever it raises."""
    try:
        close()
    except Warning:
        raise
    except Exception:  # the response is closed right after
        pass


async def _acall_quietly(aclose: Any) -> None:
    """Await a reader's ``aclose``; the connection is released next whatever it raises."""
    try:
        await aclose()
    except Warning:
        raise
    except Exception:  # the response is closed right after
        pass


# Raised by a transport's reader and meant for the caller as they are.
_USER_FACING = (APIError, Warning)


def _read_error(exc: Exception, request: Request | None) -> APIError:
    """The `APIError` for a failure while reading a stream's body (a transport's or a stray)."""
    failure = exc if isinstance(exc, TransportError) else stray_failure(exc, request)
    error = to_api_error(failure, request)
    error.__cause__ = failure
    return error


class _SyncHold:
    """The transport response of a `Stream`, released once (from any path)."""

    __slots__ = ("closed", "response")

    def __init__(self, response: SyncResponse) -> None:
        self.response: SyncResponse | None = response
        self.closed = False

    def release(self, *, ended: bool = False) -> None:
        """Close the response; ``ended``: after the ``done`` event (the body is about over)."""
        response, self.response = self.response, None
        if response is None:
            return
        # Our urllib3 transport can then read the rest of the body (its chunked terminator),
        # so that the connection is reused rather than discarded.
        close_after_end = getattr(response, "close_after_end", None) if ended else None
        if close_after_end is None:
            close_quietly(response)
            return
        try:
            close_after_end()
        except Warning:
            raise
        except Exception:  # the connection is dropped either way
            close_quietly(response)

    def abandon(self) -> None:
        """Release from the finalizer of a stream dropped unclosed (see `Stream`)."""
        response, self.response = self.response, None
        if response is None:
            return
        # The garbage collector may run this while the interrupted code holds the pool's lock:
        # our urllib3 transport then only closes the socket, and reclaims the slot later.
        abandon = getattr(response, "abandon", None)
        try:
            if abandon is not None:
                abandon()
            else:
                response.close()
        except Exception:  # a finalizer must not raise; the socket is dropped either way
            pass


def _read_sync(
    decoder: EmbeddingStreamDecoder, hold: _SyncHold, request: Request | None
) -> Generator[Embedding, None, None]:
    """Feed the response's chunks to ``decoder``; yield the items; release at the end."""
    chunks: Iterator[bytes] | None = None
    ended = False
    try:
        response = hold.response
        if response is None:
            return
        chunks = iter(response.iter_bytes())
        while True:
            error: APIError | None = None
            try:
                chunk = next(chunks)
            except StopIteration:
                break
            except _USER_FACING:
                raise
            except Exception as exc:
                if hold.closed:
                    return  # the caller closed the stream meanwhile: the iteration ends
                error = _read_error(exc, request)
            if error is not None:
                raise error  # outside the handler: the original is only chained as a cause
            yield from decoder.feed(chunk)
            if decoder.finished:
                ended = True
                break
        if not hold.closed:
            decoder.close()
    finally:
        # Close the transport's reader too (a generator left suspended would otherwise be
        # finalised later, wherever the garbage collector happens to run). After `done`, only
        # once the response is released: closing a reader mid-body may drop the connection
        # (urllib3's does) that the release can still keep for reuse.
        close = getattr(chunks, "close", None)
        try:
            if close is not None and not ended:
                _call_quietly(close)
        finally:
            hold.release(ended=ended)
            if close is not None and ended:
                _call_quietly(close)


class _AsyncHold:
    """The transport response of an `AsyncStream`, released once (from any path)."""

    __slots__ = ("closed", "loop", "response")

    def __init__(self, response: AsyncResponse) -> None:
        self.response: AsyncResponse | None = response
        self.closed = False
        self.loop: Any = _running_asyncio_loop()

    async def release(self) -> None:
        response, self.response = self.response, None
        if response is not None:
            await aclose_quietly(response)

    def abandon(self) -> None:
        """Release from a finalizer (no await possible): schedule the close in the stream's loop."""
        response, self.response = self.response, None
        loop = self.loop
        if response is None or loop is None or loop.is_closed():
            # Without a live asyncio loop nothing can be awaited any more; the transport's
            # own finalizers (aiohttp's) drop a connection whose body was not read.
            return

        def start() -> None:
            task = loop.create_task(aclose_quietly(response))
            _closing.add(task)
            task.add_done_callback(_closing.discard)

        if _running_asyncio_loop() is loop:
            start()
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed in the meantime
                loop.call_soon_threadsafe(start)


# Close tasks started by finalizers: referenced until done, so never collected half-way.
_closing: set[Any] = set()


def _running_asyncio_loop() -> Any:
    """The running asyncio loop, or None (another async library such as trio, or none)."""
    import sys

    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return None
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def _read_async(
    decoder: EmbeddingStreamDecoder, hold: _AsyncHold, request: Request | None
) -> AsyncGenerator[Embedding, None]:
    """The async twin of `_read_sync`."""
    chunks: AsyncIterator[bytes] | None = None
    try:
        response = hold.response
        if response is None:
            return
        chunks = response.aiter_bytes().__aiter__()
        while True:
            error: APIError | None = None
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                break
            except _USER_FACING:
                raise
            except Exception as exc:
                if hold.closed:
                    return
                error = _read_error(exc, request)
            if error is not None:
                raise error
            for item in decoder.feed(chunk):
                yield item
            if decoder.finished:
                break
        if not hold.closed:
            decoder.close()
    finally:
        try:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await _acall_quietly(aclose)
        finally:
            await hold.release()


_CLOSED_BEFORE_THE_END = (
    "get_final_response() needs the whole stream, but it was closed before its end"
)


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
    def headers(self) -> Headers:
        """The response headers (read-only, case-insensitive `aligneai.Headers`)."""
        return self._result.head.headers

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

    def _check_unstarted(self, closed: bool) -> None:
        if closed:
            raise APIError(_CLOSED_BEFORE_THE_END)
        if self._started:
            raise APIError(
                "get_final_response() must be called before iterating over the stream: "
                "items already handed out are not kept (so that memory stays flat)"
            )
        self._started = True

    def _final(self, items: list[Embedding]) -> CreateEmbeddingResponse:
        done = self._decoder.done
        if done is None:  # the reading ended without an error: the stream was closed meanwhile
            raise APIError(_CLOSED_BEFORE_THE_END)
        return assemble_response(items, done)


class Stream(_StreamState, Iterator[Embedding]):
    """Iterate to receive each `Embedding` as it arrives (in arrival order).

    Use it as a context manager, or call `close`, to release the connection early; it is also
    released when the stream ends, fails, or is garbage-collected. A connection left in the
    middle of a body is closed, never reused. Once closed, the stream is over: iterating it
    yields nothing more.
    """

    def __init__(self, result: FlowResult, response: SyncResponse) -> None:
        self._init_state(result)
        hold = _SyncHold(response)
        self._hold = hold
        self._iterator = _read_sync(self._decoder, hold, result.request)
        # Runs when the stream is dropped unclosed; it refers to the holder, not the stream.
        self._finalizer = weakref.finalize(self, hold.abandon)

    @property
    def _response(self) -> SyncResponse | None:
        """The transport response while the connection is held (None once released)."""
        return self._hold.response

    def __next__(self) -> Embedding:
        if self._hold.closed:
            raise StopIteration
        self._started = True
        return next(self._iterator)

    def __iter__(self) -> Stream:
        return self

    def get_final_response(self) -> CreateEmbeddingResponse:
        """Read the whole stream and return it as one response, ordered by index."""
        self._check_unstarted(self._hold.closed)
        return self._final(list(self._iterator))

    def close(self) -> None:
        """Release the connection and end the iteration (idempotent)."""
        hold = self._hold
        hold.closed = True
        try:
            if not getattr(self._iterator, "gi_running", False):  # else another thread reads it
                self._iterator.close()
        finally:
            hold.release()
            self._finalizer.detach()

    def __enter__(self) -> Stream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncStream(_StreamState, AsyncIterator[Embedding]):
    """Iterate with ``async for`` to receive each `Embedding` as it arrives.

    Use ``async with`` or ``await stream.aclose()`` to release the connection early; it is
    also released when the stream ends, fails, or is garbage-collected (then in its event
    loop, soon after). A connection left in the middle of a body is closed, never reused.
    Once closed, the stream is over: ``async for`` yields nothing more, and an iteration
    waiting in another task ends.
    """

    def __init__(self, result: FlowResult, response: AsyncResponse) -> None:
        self._init_state(result)
        hold = _AsyncHold(response)
        self._hold = hold
        self._iterator = _read_async(self._decoder, hold, result.request)
        self._finalizer = weakref.finalize(self, hold.abandon)

    @property
    def _response(self) -> AsyncResponse | None:
        """The transport response while the connection is held (None once released)."""
        return self._hold.response

    async def __anext__(self) -> Embedding:
        if self._hold.closed:
            raise StopAsyncIteration
        self._started = True
        return await self._iterator.__anext__()

    def __aiter__(self) -> AsyncStream:
        return self

    async def get_final_response(self) -> CreateEmbeddingResponse:
        """Read the whole stream and return it as one response, ordered by index."""
        self._check_unstarted(self._hold.closed)
        return self._final([item async for item in self._iterator])

    async def aclose(self) -> None:
        """Release the connection and end the iteration (idempotent)."""
        hold = self._hold
        hold.closed = True
        try:
            if not getattr(self._iterator, "ag_running", False):  # else another task awaits it
                await self._iterator.aclose()
        finally:
            await hold.release()
            self._finalizer.detach()

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
