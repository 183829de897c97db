"""``client.models``: list the available models, or look one up."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aligneai.core.models import Model, ModelList
from aligneai.core.operations import CallOptions, list_models, retrieve_model
from aligneai.core.options import TimeoutLike

if TYPE_CHECKING:
    from aligneai._async_client import AsyncAligneAI
    from aligneai._client import AligneAI
    from aligneai._raw_response import RawResponse

__all__ = ["AsyncModels", "AsyncModelsWithRawResponse", "Models", "ModelsWithRawResponse"]


def _options(
    timeout: TimeoutLike,
    max_retries: int | None,
    extra_headers: Mapping[str, str] | None,
    extra_query: Mapping[str, Any] | None,
) -> CallOptions:
    return CallOptions.from_arguments(
        timeout=timeout,
        max_retries=max_retries,
        extra_headers=extra_headers,
        extra_query=extra_query,
    )


class Models:
    """The models API, synchronous."""

    def __init__(self, client: AligneAI) -> None:
        self._client = client

    @property
    def with_raw_response(self) -> ModelsWithRawResponse:
        """The same methods, returning a `RawResponse` (status, headers, timings, ``parse()``)."""
        return ModelsWithRawResponse(self._client)

    def list(
        self,
        *,
        timeout: TimeoutLike = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, Any] | None = None,
    ) -> ModelList:
        """Every model the API offers."""
        return self._client._call(
            list_models(),
            _options(timeout, max_retries, extra_headers, extra_query),
        )

    def retrieve(
        self,
        model_id: str,
        *,
        timeout: TimeoutLike = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, Any] | None = None,
    ) -> Model:
        """One model by id; raises `NotFoundError` for an unknown id."""
        return self._client._call(
            retrieve_model(model_id),
            _options(timeout, max_retries, extra_headers, extra_query),
        )


class AsyncModels:
    """The models API, asynchronous."""

    def __init__(self, client: AsyncAligneAI) -> None:
        self._client = client

    @property
    def with_raw_response(self) -> AsyncModelsWithRawResponse:
        """The same methods, returning a `RawResponse`."""
        return AsyncModelsWithRawResponse(self._client)

    async def list(
        self,
        *,
        timeout: TimeoutLike = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, Any] | None = None,
    ) -> ModelList:
        """Every model the API offers."""
        return await self._client._call(
            list_models(),
            _options(timeout, max_retries, extra_headers, extra_query),
        )

    async def retrieve(
        self,
        model_id: str,
        *,
        timeout: TimeoutLike = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, Any] | None = None,
    ) -> Model:
        """One model by id; raises `NotFoundError` for an unknown id."""
        return await self._client._call(
            retrieve_model(model_id),
            _options(timeout, max_retries, extra_headers, extra_query),
        )


class ModelsWithRawResponse:
    """``client.models.with_raw_response``."""

    def __init__(self, client: AligneAI) -> None:
        self._client = client

    def list(
        self,
        *,
        timeout: TimeoutLike = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, Any] | None = None,
    ) -> RawResponse[ModelList]:
        """Like `Models.list`, returning the `RawResponse`."""
        return self._client._call_raw(
            list_models(), _options(timeout, max_retries, extra_headers, extra_query)
        )

    def retrieve(
        self,
        model_id: str,
        *,
        timeout: TimeoutLike = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, Any] | None = None,
    ) -> RawResponse[Model]:
        """Like `Models.retrieve`, returning the `RawResponse`."""
        return self._client._call_raw(
            retrieve_model(model_id), _options(timeout, max_retries, extra_headers, extra_query)
        )


class AsyncModelsWithRawResponse:
    """``async_client.models.with_raw_response``."""

    def __init__(self, client: AsyncAligneAI) -> None:
        self._client = client

    async def list(
        self,
        *,
        timeout: TimeoutLike = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, Any] | None = None,
    ) -> RawResponse[ModelList]:
        """Like `AsyncModels.list`, returning the `RawResponse`."""
        return await self._client._call_raw(
            list_models(), _options(timeout, max_retries, extra_headers, extra_query)
        )

    async def retrieve(
        self,
        model_id: str,
        *,
        timeout: TimeoutLike = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, Any] | None = None,
    ) -> RawResponse[Model]:
        """Like `AsyncModels.retrieve`, returning the `RawResponse`."""
        return await self._client._call_raw(
            retrieve_model(model_id), _options(timeout, max_retries, extra_headers, extra_query)
        )
