"""What the LangChain and LlamaIndex adapters share: settings, clients, the calls themselves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aligneai.core.bulk import validate_bulk_arguments
from aligneai.core.errors import InvalidArgumentTypeError, InvalidArgumentValueError
from aligneai.core.wire import MAX_INPUTS

from ._carry import RateSlot, acreate_many, create_many

if TYPE_CHECKING:
    from aligneai._async_client import AsyncAligneAI
    from aligneai._client import AligneAI

__all__ = ["BulkSettings"]


class BulkSettings:
    """The client settings and ``create_many`` arguments of a framework adapter.

    The sync client is built at the first call and kept; an async client is opened per call
    (an aiohttp session belongs to one event loop, and frameworks run coroutines on loops of
    their own choosing), unless one is given.
    """

    def __init__(
        self,
        *,
        model: str | None,
        dimensions: int | None,
        api_key: str | None,
        base_url: str | None,
        client: AligneAI | None,
        async_client: AsyncAligneAI | None,
        batch_size: int,
        max_batch_tokens: int | None,
        max_concurrency: int | None,
        requests_per_minute: float | None,
        tokens_per_minute: float | None,
        progress: bool,
    ) -> None:
        if model is not None and not isinstance(model, str):
            raise InvalidArgumentTypeError("model", f"expected a str, got {type(model).__name__}")
        if model == "":
            raise InvalidArgumentValueError("model", "must not be empty (None: the default)")
        if dimensions is not None and (
            isinstance(dimensions, bool) or not isinstance(dimensions, int)
        ):
            raise InvalidArgumentTypeError(
                "dimensions", f"expected a positive int, got {type(dimensions).__name__}"
            )
        if dimensions is not None and dimensions < 1:
            raise InvalidArgumentValueError(
                "dimensions", f"must be a positive int, got {dimensions}"
            )
        if not isinstance(progress, bool):
            raise InvalidArgumentTypeError(
                "progress", f"expected a bool, got {type(progress).__name__}"
            )
        validate_bulk_arguments(
            batch_size=batch_size,
            max_batch_tokens=max_batch_tokens,
            max_concurrency=max_concurrency,
            requests_per_minute=requests_per_minute,
            tokens_per_minute=tokens_per_minute,
            on_error="raise",
        )
        self.model = model
        self.dimensions = dimensions
        self._api_key = api_key
        self.base_url = base_url
        self._client = client
        self._owns_client = client is None
        self._async_client = async_client
        # Consecutive calls keep the rate state (budgets, learned limits): see `_carry`.
        self._slot = RateSlot()
        self._async_slot = RateSlot()
        self.bulk: dict[str, Any] = {
            "model": model,
            "dimensions": dimensions,
            "batch_size": batch_size,
            "max_batch_tokens": max_batch_tokens,
            "max_concurrency": max_concurrency,
            "requests_per_minute": requests_per_minute,
            "tokens_per_minute": tokens_per_minute,
            "progress": progress,
            "on_error": "raise",
        }
        if client is None:
            # Fail now, in the constructor, on a missing key or a bad URL (nothing is sent).
            self.client()

    def client(self) -> AligneAI:
        if self._client is None:
            from aligneai._client import AligneAI

            self._client = AligneAI(self._api_key, base_url=self.base_url)
        return self._client

    def embed_many(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        result = create_many(self.client(), texts, self._slot, **self.bulk)
        assert result.matrix is not None
        rows: list[list[float]] = result.matrix.tolist()
        return rows

    def embed_one(self, text: str) -> list[float]:
        response = self.client().embeddings.create(
            inputs=[text], model=self.model, dimensions=self.dimensions
        )
        return list(response.data[0].embedding)

    async def aembed_many(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        if self._async_client is not None:
            result = await acreate_many(self._async_client, texts, self._async_slot, **self.bulk)
        else:
            from aligneai._async_client import AsyncAligneAI

            async with AsyncAligneAI(self._api_key, base_url=self.base_url) as client:
                result = await acreate_many(client, texts, self._async_slot, **self.bulk)
        assert result.matrix is not None
        rows: list[list[float]] = result.matrix.tolist()
        return rows

    async def aembed_one(self, text: str) -> list[float]:
        kwargs: dict[str, Any] = {"model": self.model, "dimensions": self.dimensions}
        if self._async_client is not None:
            response = await self._async_client.embeddings.create(inputs=[text], **kwargs)
        else:
            from aligneai._async_client import AsyncAligneAI

            async with AsyncAligneAI(self._api_key, base_url=self.base_url) as client:
                response = await client.embeddings.create(inputs=[text], **kwargs)
        return list(response.data[0].embedding)

    def close(self) -> None:
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None


DEFAULT_BATCH_SIZE = MAX_INPUTS
