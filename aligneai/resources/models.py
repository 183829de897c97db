"""``client.models``: list the available models, or look one up."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aligneai.core.models import Model, ModelList
from aligneai.core.operations import CallOptions, list_models, retrieve_model
from aligneai.core.options import TimeoutLike
from aligneai.core.sentinels import NOT_GIVEN, NotGiven

from ._base import AsyncAPIResource, SyncAPIResource

if TYPE_CHECKING:
    from aligneai._raw_response import RawResponse

__all__ = ["AsyncModels", "AsyncModelsWithRawResponse", "Models", "ModelsWithRawResponse"]


def _options(
    timeout: TimeoutLike | NotGiven,
    max_retries: int | NotGiven,
    extra_headers: Mapping[str, str | None] | NotGiven | None,
    extra_query: Mapping[str, Any] | NotGiven | None,
) -> CallOptions:
    return CallOptions.from_arguments(
        timeout=timeout,
        max_retries=max_retries,
        extra_headers=extra_headers,
        extra_query=extra_query,
    )


class Models(SyncAPIResource):
    """The models API, synchronous."""

    @property
    def with_raw_response(self) -> ModelsWithRawResponse:
        """The same methods, returning a `RawResponse` (status, headers, timings, ``parse()``)."""
        return ModelsWithRawResponse(self._runner)

    def list(
        self,
        *,
        timeout: TimeoutLike | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str | None] | NotGiven | None = None,
        extra_query: Mapping[str, Any] | NotGiven | None = None,
    ) -> ModelList:
        """Every model the API offers."""
        return self._runner.request(
            list_models(),
            _options(timeout, max_retries, extra_headers, extra_query),
        )

    def retrieve(
        self,
        model_id: str,
        *,
        timeout: TimeoutLike | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str | None] | NotGiven | None = None,
        extra_query: Mapping[str, Any] | NotGiven | None = None,
    ) -> Model:
        """One model by id; raises `NotFoundError` for an unknown id."""
        return self._runner.request(
            retrieve_model(model_id),
            _options(timeout, max_retries, extra_headers, extra_query),
        )


class AsyncModels(AsyncAPIResource):
    """The models API, asynchronous."""

    @property
    def with_raw_response(self) -> AsyncModelsWithRawResponse:
        """The same methods, returning a `RawResponse`."""
        return AsyncModelsWithRawResponse(self._runner)

    async def list(
        self,
        *,
        timeout: TimeoutLike | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str | None] | NotGiven | None = None,
        extra_query: Mapping[str, Any] | NotGiven | None = None,
    ) -> ModelList:
        """Every model the API offers."""
        return await self._runner.request(
            list_models(),
            _options(timeout, max_retries, extra_headers, extra_query),
        )

    async def retrieve(
        self,
        model_id: str,
        *,
        timeout: TimeoutLike | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str | None] | NotGiven | None = None,
        extra_query: Mapping[str, Any] | NotGiven | None = None,
    ) -> Model:
        """One model by id; raises `NotFoundError` for an unknown id."""
        return await self._runner.request(
            retrieve_model(model_id),
            _options(timeout, max_retries, extra_headers, extra_query),
        )


class ModelsWithRawResponse(SyncAPIResource):
    """``client.models.with_raw_response``."""

    def list(
        self,
        *,
        timeout: TimeoutLike | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str | None] | NotGiven | None = None,
        extra_query: Mapping[str, Any] | NotGiven | None = None,
    ) -> RawResponse[ModelList]:
        """Like `Models.list`, returning the `RawResponse`."""
        return self._runner.raw(
            list_models(), _options(timeout, max_retries, extra_headers, extra_query)
        )

    def retrieve(
        self,
        model_id: str,
        *,
        timeout: TimeoutLike | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str | None] | NotGiven | None = None,
        extra_query: Mapping[str, Any] | NotGiven | None = None,
    ) -> RawResponse[Model]:
        """Like `Models.retrieve`, returning the `RawResponse`."""
        return self._runner.raw(
            retrieve_model(model_id), _options(timeout, max_retries, extra_headers, extra_query)
        )


class AsyncModelsWithRawResponse(AsyncAPIResource):
    """``async_client.models.with_raw_response``."""

    async def list(
        self,
        *,
        timeout: TimeoutLike | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str | None] | NotGiven | None = None,
        extra_query: Mapping[str, Any] | NotGiven | None = None,
    ) -> RawResponse[ModelList]:
        """Like `AsyncModels.list`, returning the `RawResponse`."""
        return await self._runner.raw(
            list_models(), _options(timeout, max_retries, extra_headers, extra_query)
        )

    async def retrieve(
        self,
        model_id: str,
        *,
        timeout: TimeoutLike | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str | None] | NotGiven | None = None,
        extra_query: Mapping[str, Any] | NotGiven | None = None,
    ) -> RawResponse[Model]:
        """Like `AsyncModels.retrieve`, returning the `RawResponse`."""
        return await self._runner.raw(
            retrieve_model(model_id), _options(timeout, max_retries, extra_headers, extra_query)
        )
