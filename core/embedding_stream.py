"""Decode an embeddings stream: SSE bytes in, typed `Embedding` items out.

The sync `Stream` and the async `AsyncStream` feed whatever chunks their transport reads into
one `EmbeddingStreamDecoder`; all the protocol's rules live here:

- ``event: embedding`` carries one `Embedding` (any index order);
- ``event: done`` carries the model and usage, and ends the stream;
- ``event: error`` raises the `APIStatusError` subclass for its ``status`` (or `APIError`);
- unknown event types are ignored;
- a stream that ends before ``done`` raises `APIConnectionError`: never a silent short result;
- the answer must keep the contract of its request (see `answer_contract`): an item with an
  index outside the inputs, a repeated index, an empty vector, a vector of another length than
  the first (or than ``dimensions``) or holding anything but finite numbers raises
  `APIResponseValidationError` as soon as it arrives; a ``done`` before every input got its
  embedding raises it then.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ._json import loads
from .answer_contract import AnswerContract, AnswerTracker, usage_problem
from .errors import APIConnectionError, APIError, APIResponseValidationError
from .models import CreateEmbeddingResponse, Embedding, EmbeddingStreamDone
from .parsing import contract_error, structure
from .request import Request
from .response import ResponseHead, make_status_error
from .sse import ServerSentEvent, SSEDecoder
from .wire import EVENT_DONE, EVENT_EMBEDDING, EVENT_ERROR

__all__ = ["EmbeddingStreamDecoder", "assemble_response", "contract_of"]


def contract_of(request: Request | None) -> AnswerContract:
    """The `AnswerContract` of a sent embeddings request, read from its JSON body.

    Unknown parts (no request, no body, a body that is not the expected JSON) stay None: the
    answer is then held to what it says of itself (indexes ``0..n-1``, one length).
    """
    if request is None or not request.body:
        return AnswerContract()
    try:
        return AnswerContract.for_body(loads(request.body))
    except (ValueError, TypeError, RecursionError):
        return AnswerContract()


class EmbeddingStreamDecoder:
    """Incremental decoder for one ``stream=True`` embeddings response.

    ``contract`` is what the answer must hold; by default it is read from ``request``'s body
    (the request that was actually sent), so a driver need not pass it.
    """

    def __init__(
        self,
        head: ResponseHead,
        request: Request | None = None,
        *,
        max_line_bytes: int = 1 << 24,
        contract: AnswerContract | None = None,
    ) -> None:
        self._head = head
        self._request = request
        # An event carries one vector: 16 MiB per line bounds memory far above any real item.
        self._sse = SSEDecoder(max_line_bytes=max_line_bytes, max_event_bytes=max_line_bytes)
        self._tracker = AnswerTracker(contract_of(request) if contract is None else contract)
        self.done: EmbeddingStreamDone | None = None
        self.items_received = 0

    @property
    def finished(self) -> bool:
        """True once the ``done`` event arrived."""
        return self.done is not None

    def feed(self, chunk: bytes) -> Iterator[Embedding]:
        """Decode one chunk of the body, yielding each embedding it completed.

        Items are yielded one by one, so those that arrived before an ``error`` event (or a
        malformed one) in the same chunk reach the caller before the error is raised.
        """
        if self.done is not None:
            return  # anything after `done` is not part of the answer
        for event in self._sse.feed(chunk):
            item = self._handle(event)
            if item is not None:
                self.items_received += 1
                yield item
            if self.done is not None:
                return

    def close(self) -> None:
        """Signal the end of the body; raise `APIConnectionError` if ``done`` never came."""
        if self.done is not None:
            return
        truncated = self._sse.has_pending_data
        self._sse.close()
        where = "in the middle of an event" if truncated else "between events"
        raise APIConnectionError(
            f"the stream ended {where} before the 'done' event "
            f"(after {self.items_received} embeddings)",
            request=self._request,
        )

    def _decode(self, event: ServerSentEvent) -> Any:
        try:
            return loads(event.data)
        except ValueError as exc:
            raise APIResponseValidationError(
                f"the data of a {event.event!r} event is not valid JSON ({exc})",
                status_code=self._head.status_code,
                request_id=self._head.request_id,
                body=event.data[:1024],
                request=self._request,
            ) from None

    def _handle(self, event: ServerSentEvent) -> Embedding | None:
        if event.event == EVENT_EMBEDDING:
            data = self._decode(event)
            item = structure(self._head, data, Embedding, self._request)
            problem = self._tracker.add(item.index, len(item.embedding))
            if problem is not None:
                raise contract_error(self._head, problem, self._request, data)
            return item
        if event.event == EVENT_DONE:
            done = structure(self._head, self._decode(event), EmbeddingStreamDone, self._request)
            problem = self._tracker.finish() or usage_problem(
                done.usage.prompt_tokens, done.usage.total_tokens
            )
            if problem is not None:
                raise contract_error(self._head, problem, self._request)
            self.done = done
            return None
        if event.event == EVENT_ERROR:
            raise self._error(event)
        return None  # unknown event types are ignored, as the contract says

    def _error(self, event: ServerSentEvent) -> APIError:
        try:
            payload = loads(event.data)
        except ValueError:
            payload = None
        status = payload.get("status") if isinstance(payload, dict) else None
        if isinstance(status, int) and not isinstance(status, bool) and status >= 400:
            head = ResponseHead(status, self._head.headers)
            return make_status_error(head, event.data.encode("utf-8"), self._request)
        message = "the server reported an error in the stream"
        if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            message = str(payload["error"].get("message") or message)
        return APIError(message, request=self._request)


def assemble_response(items: list[Embedding], done: EmbeddingStreamDone) -> CreateEmbeddingResponse:
    """The `CreateEmbeddingResponse` equivalent of a finished stream (ordered by index)."""
    return CreateEmbeddingResponse(
        data=sorted(items, key=lambda item: item.index), model=done.model, usage=done.usage
    )
