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

__all__ = ["AsyncModels", "Models"]


class Models:
    """The models API, synchronous."""

    def __init__(self, client: AligneAI) -> None:
        self._client = client

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
            CallOptions.from_arguments(
                timeout=timeout,
                max_retries=max_retries,
                extra_headers=extra_headers,
                extra_query=extra_query,
            ),
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
            CallOptions.from_arguments(
                timeout=timeout,
                max_retries=max_retries,
                extra_headers=extra_headers,
                extra_query=extra_query,
            ),
        )


class AsyncModels:
    """The models API, asynchronous."""

    def __init__(self, client: AsyncAligneAI) -> None:
        self._client = client

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
            CallOptions.from_arguments(
                timeout=timeout,
                max_retries=max_retries,
                extra_headers=extra_headers,
                extra_query=extra_query,
            ),
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
            CallOptions.from_arguments(
                timeout=timeout,
                max_retries=max_retries,
                extra_headers=extra_headers,
                extra_query=extra_query,
            ),
        )
