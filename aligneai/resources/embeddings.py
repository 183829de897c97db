"""``client.embeddings``: create embedding vectors, at once or as a stream."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Union, overload

from aligneai._bulk._methods import AsyncBulkEmbeddingsMixin, BulkEmbeddingsMixin
from aligneai.core.matrix import EmbeddingMatrix
from aligneai.core.models import CreateEmbeddingResponse
from aligneai.core.operations import (
    CallOptions,
    EncodingFormat,
    Operation,
    create_embedding_matrix,
    create_embeddings,
)
from aligneai.core.options import TimeoutLike
from aligneai.core.sentinels import NOT_GIVEN, NotGiven

from ._base import AsyncAPIResource, SyncAPIResource

if TYPE_CHECKING:
    from aligneai._raw_response import RawResponse
    from aligneai._streaming import AsyncStream, Stream

__all__ = [
    "AsyncEmbeddings",
    "AsyncEmbeddingsWithRawResponse",
    "Embeddings",
    "EmbeddingsWithRawResponse",
]

Inputs = Union[str, Sequence[str]]


def _prepare(
    inputs: Inputs,
    model: str | None,
    encoding_format: EncodingFormat | None,
    dimensions: int | None,
    stream: bool,
    timeout: TimeoutLike | NotGiven,
    max_retries: int | NotGiven,
    extra_headers: Mapping[str, str | None] | NotGiven | None,
    extra_query: Mapping[str, Any] | NotGiven | None,
    extra_body: Mapping[str, Any] | NotGiven | None,
) -> tuple[Operation[CreateEmbeddingResponse], CallOptions]:
    """Validate the arguments of every ``create`` variant (sync, async, raw) in one place."""
    operation = create_embeddings(
        inputs=inputs,
        model=model,
        encoding_format=encoding_format,
        dimensions=dimensions,
        stream=stream,
        extra_body=extra_body,
    )
    call_options = CallOptions.from_arguments(
        timeout=timeout,
        max_retries=max_retries,
        extra_headers=extra_headers,
        extra_query=extra_query,
    )
    return operation, call_options


def _prepare_matrix(
    inputs: Inputs,
    model: str | None,
    dimensions: int | None,
    timeout: TimeoutLike | NotGiven,
    max_retries: int | NotGiven,
    extra_headers: Mapping[str, str | None] | NotGiven | None,
    extra_query: Mapping[str, Any] | NotGiven | None,
    extra_body: Mapping[str, Any] | NotGiven | None,
) -> tuple[Operation[EmbeddingMatrix], CallOptions]:
    operation = create_embedding_matrix(
        inputs=inputs, model=model, dimensions=dimensions, extra_body=extra_body
    )
    call_options = CallOptions.from_arguments(
        timeout=timeout,
        max_retries=max_retries,
        extra_headers=extra_headers,
        extra_query=extra_query,
    )
    return operation, call_options


class Embeddings(BulkEmbeddingsMixin, SyncAPIResource):
    """Create embeddings with the synchronous client (``create_many``/``iter_many``: bulk)."""

    @property
    def with_raw_response(self) -> EmbeddingsWithRawResponse:
        """The same methods, returning a `RawResponse` (status, headers, timings, ``parse()``)."""
        return EmbeddingsWithRawResponse(self._runner)

    @overload
    def create(
        self,
        *,
        inputs: Inputs,
        model: str | None = ...,
        encoding_format: EncodingFormat | None = ...,
        dimensions: int | None = ...,
        stream: Literal[False] = ...,
        timeout: TimeoutLike | NotGiven = ...,
        max_retries: int | NotGiven = ...,
        extra_headers: Mapping[str, str | None] | NotGiven | None = ...,
        extra_query: Mapping[str, Any] | NotGiven | None = ...,
        extra_body: Mapping[str, Any] | NotGiven | None = ...,
    ) -> CreateEmbeddingResponse: ...

    @overload
    def create(
        self,
        *,
        inputs: Inputs,
        model: str | None = ...,
        encoding_format: EncodingFormat | None = ...,
        dimensions: int | None = ...,
        stream: Literal[True],
        timeout: TimeoutLike | NotGiven = ...,
        max_retries: int | NotGiven = ...,
        extra_headers: Mapping[str, str | None] | NotGiven | None = ...,
        extra_query: Mapping[str, Any] | NotGiven | None = ...,
        extra_body: Mapping[str, Any] | NotGiven | None = ...,
    ) -> Stream: ...

    @overload
    def create(
        self,
        *,
        inputs: Inputs,
        model: str | None = ...,
        encoding_format: EncodingFormat | None = ...,
        dimensions: int | None = ...,
        stream: bool,
        timeout: TimeoutLike | NotGiven = ...,
        max_retries: int | NotGiven = ...,
        extra_headers: Mapping[str, str | None] | NotGiven | None = ...,
        extra_query: Mapping[str, Any] | NotGiven | None = ...,
        extra_body: Mapping[str, Any] | NotGiven | None = ...,
    ) -> CreateEmbeddingResponse | Stream: ...

    def create(
        self,
        *,
        inputs: Inputs,
        model: str | None = None,
        encoding_format: EncodingFormat | None = None,
        dimensions: int | None = None,
        stream: bool = False,
        timeout: TimeoutLike | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str | None] | NotGiven | None = None,
        extra_query: Mapping[str, Any] | NotGiven | None = None,
        extra_body: Mapping[str, Any] | NotGiven | None = None,
    ) -> CreateEmbeddingResponse | Stream:
        """Embed ``inputs`` (a string or a list of 1 to 2048 strings).

        Args:
            inputs: the texts to embed.
            model: the model id; the server's default model when None.
            encoding_format: the wire format, ``"base64"`` (default: smaller and faster) or
                ``"float"``; either way ``embedding`` is a list of floats.
            dimensions: truncate vectors to this many dimensions.
            stream: when True, return a `Stream` that yields each `Embedding` as it arrives
                (typed by overloads: ``Literal[True]`` gives `Stream`, a plain ``bool`` the
                union of both results).
            timeout: applied over the client's timeout for this call: a number sets the read
                limit (capping connect) and keeps the client's ``total`` deadline; None
                removes the read limit; a `Timeout` replaces only the fields written in it.
                Left out (`NOT_GIVEN`): the client's timeout.
            max_retries: this call's retry count; left out (`NOT_GIVEN`): the client's.
            extra_headers, extra_query, extra_body: added to the request as they are; a None
                header value removes that header (any case) for this call.

        Returns:
            A `CreateEmbeddingResponse` whose ``data`` is ordered by ``index``
            (or a `Stream` with ``stream=True``).
        """
        operation, call_options = _prepare(
            inputs, model, encoding_format, dimensions, stream,
            timeout, max_retries, extra_headers, extra_query, extra_body,
        )  # fmt: skip
        if operation.stream:
            return self._runner.stream(operation, call_options)
        return self._runner.request(operation, call_options)

    def create_matrix(
        self,
        *,
        inputs: Inputs,
        model: str | None = None,
        dimensions: int | None = None,
        timeout: TimeoutLike | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str | None] | NotGiven | None = None,
        extra_query: Mapping[str, Any] | NotGiven | None = None,
        extra_body: Mapping[str, Any] | NotGiven | None = None,
    ) -> EmbeddingMatrix:
        """Embed ``inputs`` into one float32 numpy matrix (needs ``aligneai[numpy]``).

        Row ``i`` is the embedding of ``inputs[i]``. The vectors travel as base64 and are
        decoded straight into the matrix, with no Python float per number: the fastest and
        leanest way to feed a vector index. Arguments as for `create`.
        """
        operation, call_options = _prepare_matrix(
            inputs, model, dimensions, timeout, max_retries, extra_headers, extra_query, extra_body
        )
        return self._runner.request(operation, call_options)


class EmbeddingsWithRawResponse(SyncAPIResource):
    """``client.embeddings.with_raw_response``."""

    def create(
        self,
        *,
        inputs: Inputs,
        model: str | None = None,
        encoding_format: EncodingFormat | None = None,
        dimensions: int | None = None,
        timeout: TimeoutLike | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str | None] | NotGiven | None = None,
        extra_query: Mapping[str, Any] | NotGiven | None = None,
        extra_body: Mapping[str, Any] | NotGiven | None = None,
    ) -> RawResponse[CreateEmbeddingResponse]:
        """Like `Embeddings.create` (without streaming), returning the `RawResponse`."""
        operation, call_options = _prepare(
            inputs, model, encoding_format, dimensions, False,
            timeout, max_retries, extra_headers, extra_query, extra_body,
        )  # fmt: skip
        return self._runner.raw(operation, call_options)

    def create_matrix(
        self,
        *,
        inputs: Inputs,
        model: str | None = None,
        dimensions: int | None = None,
        timeout: TimeoutLike | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str | None] | NotGiven | None = None,
        extra_query: Mapping[str, Any] | NotGiven | None = None,
        extra_body: Mapping[str, Any] | NotGiven | None = None,
    ) -> RawResponse[EmbeddingMatrix]:
        """Like `Embeddings.create_matrix`, returning the `RawResponse`."""
        operation, call_options = _prepare_matrix(
            inputs, model, dimensions, timeout, max_retries, extra_headers, extra_query, extra_body
        )
        return self._runner.raw(operation, call_options)


class AsyncEmbeddings(AsyncBulkEmbeddingsMixin, AsyncAPIResource):
    """Create embeddings with the asynchronous client (``create_many``/``iter_many``: bulk)."""

    @property
    def with_raw_response(self) -> AsyncEmbeddingsWithRawResponse:
        """The same methods, returning a `RawResponse`."""
        return AsyncEmbeddingsWithRawResponse(self._runner)

    @overload
    async def create(
        self,
        *,
        inputs: Inputs,
        model: str | None = ...,
        encoding_format: EncodingFormat | None = ...,
        dimensions: int | None = ...,
        stream: Literal[False] = ...,
        timeout: TimeoutLike | NotGiven = ...,
        max_retries: int | NotGiven = ...,
        extra_headers: Mapping[str, str | None] | NotGiven | None = ...,
        extra_query: Mapping[str, Any] | NotGiven | None = ...,
        extra_body: Mapping[str, Any] | NotGiven | None = ...,
    ) -> CreateEmbeddingResponse: ...

    @overload
    async def create(
        self,
        *,
        inputs: Inputs,
        model: str | None = ...,
        encoding_format: EncodingFormat | None = ...,
        dimensions: int | None = ...,
        stream: Literal[True],
        timeout: TimeoutLike | NotGiven = ...,
        max_retries: int | NotGiven = ...,
        extra_headers: Mapping[str, str | None] | NotGiven | None = ...,
        extra_query: Mapping[str, Any] | NotGiven | None = ...,
        extra_body: Mapping[str, Any] | NotGiven | None = ...,
    ) -> AsyncStream: ...

    @overload
    async def create(
        self,
        *,
        inputs: Inputs,
        model: str | None = ...,
        encoding_format: EncodingFormat | None = ...,
        dimensions: int | None = ...,
        stream: bool,
        timeout: TimeoutLike | NotGiven = ...,
        max_retries: int | NotGiven = ...,
        extra_headers: Mapping[str, str | None] | NotGiven | None = ...,
        extra_query: Mapping[str, Any] | NotGiven | None = ...,
        extra_body: Mapping[str, Any] | NotGiven | None = ...,
    ) -> CreateEmbeddingResponse | AsyncStream: ...

    async def create(
        self,
        *,
        inputs: Inputs,
        model: str | None = None,
        encoding_format: EncodingFormat | None = None,
        dimensions: int | None = None,
        stream: bool = False,
        timeout: TimeoutLike | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str | None] | NotGiven | None = None,
        extra_query: Mapping[str, Any] | NotGiven | None = None,
        extra_body: Mapping[str, Any] | NotGiven | None = None,
    ) -> CreateEmbeddingResponse | AsyncStream:
        """Embed ``inputs``; see `Embeddings.create` for the arguments."""
        operation, call_options = _prepare(
            inputs, model, encoding_format, dimensions, stream,
            timeout, max_retries, extra_headers, extra_query, extra_body,
        )  # fmt: skip
        if operation.stream:
            return await self._runner.stream(operation, call_options)
        return await self._runner.request(operation, call_options)

    async def create_matrix(
        self,
        *,
        inputs: Inputs,
        model: str | None = None,
        dimensions: int | None = None,
        timeout: TimeoutLike | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str | None] | NotGiven | None = None,
        extra_query: Mapping[str, Any] | NotGiven | None = None,
        extra_body: Mapping[str, Any] | NotGiven | None = None,
    ) -> EmbeddingMatrix:
        """Embed ``inputs`` into one float32 numpy matrix (needs ``aligneai[numpy]``).

        Row ``i`` is the embedding of ``inputs[i]``. The vectors travel as base64 and are
        decoded straight into the matrix, with no Python float per number: the fastest and
        leanest way to feed a vector index. Arguments as for `create`.
        """
        operation, call_options = _prepare_matrix(
            inputs, model, dimensions, timeout, max_retries, extra_headers, extra_query, extra_body
        )
        return await self._runner.request(operation, call_options)


class AsyncEmbeddingsWithRawResponse(AsyncAPIResource):
    """``async_client.embeddings.with_raw_response``."""

    async def create(
        self,
        *,
        inputs: Inputs,
        model: str | None = None,
        encoding_format: EncodingFormat | None = None,
        dimensions: int | None = None,
        timeout: TimeoutLike | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str | None] | NotGiven | None = None,
        extra_query: Mapping[str, Any] | NotGiven | None = None,
        extra_body: Mapping[str, Any] | NotGiven | None = None,
    ) -> RawResponse[CreateEmbeddingResponse]:
        """Like `AsyncEmbeddings.create` (without streaming), returning the `RawResponse`."""
        operation, call_options = _prepare(
            inputs, model, encoding_format, dimensions, False,
            timeout, max_retries, extra_headers, extra_query, extra_body,
        )  # fmt: skip
        return await self._runner.raw(operation, call_options)

    async def create_matrix(
        self,
        *,
        inputs: Inputs,
        model: str | None = None,
        dimensions: int | None = None,
        timeout: TimeoutLike | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str | None] | NotGiven | None = None,
        extra_query: Mapping[str, Any] | NotGiven | None = None,
        extra_body: Mapping[str, Any] | NotGiven | None = None,
    ) -> RawResponse[EmbeddingMatrix]:
        """Like `AsyncEmbeddings.create_matrix`, returning the `RawResponse`."""
        operation, call_options = _prepare_matrix(
            inputs, model, dimensions, timeout, max_retries, extra_headers, extra_query, extra_body
        )
        return await self._runner.raw(operation, call_options)
