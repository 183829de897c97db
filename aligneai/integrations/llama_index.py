"""LlamaIndex embeddings on AligneAI (``pip install "aligneai[llama-index]"``).

    from aligneai.integrations.llama_index import AligneAIEmbedding
    from llama_index.core import Document, VectorStoreIndex

    embed_model = AligneAIEmbedding(dimensions=256)      # key from ALIGNEAI_API_KEY
    index = VectorStoreIndex.from_documents(documents, embed_model=embed_model)
    index.as_retriever(similarity_top_k=3).retrieve("a question")

LlamaIndex hands the texts over in groups of ``embed_batch_size`` (2048 here, its largest);
each group goes through ``create_many`` (requests cut to the limits, sent concurrently at the
server's pace, in order). Queries and single texts send one request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from aligneai.core.errors import MissingDependencyError

from ._frameworks import DEFAULT_BATCH_SIZE, BulkSettings

try:
    from llama_index.core.base.embeddings.base import BaseEmbedding  # type: ignore[import-not-found, unused-ignore]
    from llama_index.core.bridge.pydantic import Field, PrivateAttr  # type: ignore[import-not-found, unused-ignore]
except ImportError:  # pragma: no cover - the extra is installed where this is tested
    raise MissingDependencyError(
        "aligneai.integrations.llama_index needs llama-index-core: "
        'pip install "aligneai[llama-index]"'
    ) from None

if TYPE_CHECKING:
    from aligneai._async_client import AsyncAligneAI
    from aligneai._client import AligneAI

__all__ = ["AligneAIEmbedding"]


# mypy sees Any where the framework is not installed (the type env); typed where it is.
class AligneAIEmbedding(BaseEmbedding):  # type: ignore[misc, unused-ignore]
    """LlamaIndex ``BaseEmbedding`` backed by ``embeddings.create_many`` / ``create``.

    Fields (pydantic, shown in the repr and LlamaIndex's payloads): ``model_name`` (None: the
    server's default model), ``dimensions``, ``base_url``, ``embed_batch_size`` (texts handed to
    one ``create_many``; default 2048), ``max_concurrency``, ``requests_per_minute``,
    ``tokens_per_minute``. Keyword-only extras, kept private: ``api_key`` (None:
    ``ALIGNEAI_API_KEY``; never in the repr or a payload), ``client`` and ``async_client``
    (clients to use; the async one must belong to the loop the async methods run on). Without
    ``async_client`` each async call opens its own async client.
    """

    model_name: Optional[str] = Field(  # type: ignore[assignment, unused-ignore] # noqa: UP045
        default=None, description="The model id; None: the server's default model."
    )
    dimensions: Optional[int] = Field(default=None, gt=0)  # noqa: UP045
    base_url: Optional[str] = Field(default=None)  # noqa: UP045
    embed_batch_size: int = Field(default=DEFAULT_BATCH_SIZE, gt=0, le=DEFAULT_BATCH_SIZE)
    max_concurrency: Optional[int] = Field(default=None, gt=0)  # noqa: UP045
    requests_per_minute: Optional[float] = Field(default=None, gt=0)  # noqa: UP045
    tokens_per_minute: Optional[float] = Field(default=None, gt=0)  # noqa: UP045

    _settings: BulkSettings = PrivateAttr()

    def __init__(
        self,
        *,
        api_key: str | None = None,
        client: AligneAI | None = None,
        async_client: AsyncAligneAI | None = None,
        **fields: Any,
    ) -> None:
        super().__init__(**fields)
        self._settings = BulkSettings(
            model=self.model_name,
            dimensions=self.dimensions,
            api_key=api_key,
            base_url=self.base_url,
            client=client,
            async_client=async_client,
            batch_size=self.embed_batch_size,
            max_batch_tokens=None,
            max_concurrency=self.max_concurrency,
            requests_per_minute=self.requests_per_minute,
            tokens_per_minute=self.tokens_per_minute,
            progress=False,
        )

    @classmethod
    def class_name(cls) -> str:
        """The name LlamaIndex records for this embedding class."""
        return "AligneAIEmbedding"

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._settings.embed_one(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return await self._settings.aembed_one(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._settings.embed_one(text)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return await self._settings.aembed_one(text)

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._settings.embed_many(list(texts))

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return await self._settings.aembed_many(list(texts))

    def close(self) -> None:
        """Close the sync client this adapter built (not one it was given)."""
        self._settings.close()
