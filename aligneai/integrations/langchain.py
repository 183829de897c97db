"""LangChain embeddings on AligneAI (``pip install "aligneai[langchain]"``).

    from aligneai.integrations.langchain import AligneAIEmbeddings
    from langchain_core.vectorstores import InMemoryVectorStore

    embeddings = AligneAIEmbeddings(dimensions=256)       # key from ALIGNEAI_API_KEY
    store = InMemoryVectorStore.from_texts(texts, embeddings)
    store.similarity_search("a question", k=3)

``embed_documents`` / ``aembed_documents`` go through ``create_many``: a long list is cut into
requests, sent concurrently at the pace the server allows (429s held and retried), and comes
back in order. ``embed_query`` / ``aembed_query`` send one request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aligneai.core.errors import MissingDependencyError

from ._frameworks import DEFAULT_BATCH_SIZE, BulkSettings

try:
    from langchain_core.embeddings import Embeddings  # type: ignore[import-not-found, unused-ignore]
except ImportError:  # pragma: no cover - the extra is installed where this is tested
    raise MissingDependencyError(
        'aligneai.integrations.langchain needs langchain-core: pip install "aligneai[langchain]"'
    ) from None

if TYPE_CHECKING:
    from aligneai._async_client import AsyncAligneAI
    from aligneai._client import AligneAI

__all__ = ["AligneAIEmbeddings"]


# mypy sees Any where the framework is not installed (the type env); typed where it is.
class AligneAIEmbeddings(Embeddings):  # type: ignore[misc, unused-ignore]
    """LangChain ``Embeddings`` backed by ``embeddings.create_many`` / ``create``.

    Args:
        model: the model id (None: the server's default).
        dimensions: truncate vectors to this many dimensions.
        api_key: the key (None: ``ALIGNEAI_API_KEY``); never shown in the repr.
        base_url: the API's URL (None: ``ALIGNEAI_BASE_URL``, then the default).
        client, async_client: clients to use instead of building them (the async client must
            belong to the loop the async methods run on); the adapter does not close them.
        batch_size, max_batch_tokens, max_concurrency, requests_per_minute,
            tokens_per_minute, progress: as for ``create_many``, for the document calls.

    Without ``async_client``, each async call opens (and closes) its own async client, as the
    loop of a coroutine is only known when it runs. `close` closes the client it built.
    """

    def __init__(
        self,
        *,
        model: str | None = None,
        dimensions: int | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        client: AligneAI | None = None,
        async_client: AsyncAligneAI | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_batch_tokens: int | None = None,
        max_concurrency: int | None = None,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        progress: bool = False,
    ) -> None:
        self._settings = BulkSettings(
            model=model,
            dimensions=dimensions,
            api_key=api_key,
            base_url=base_url,
            client=client,
            async_client=async_client,
            batch_size=batch_size,
            max_batch_tokens=max_batch_tokens,
            max_concurrency=max_concurrency,
            requests_per_minute=requests_per_minute,
            tokens_per_minute=tokens_per_minute,
            progress=progress,
        )

    def __repr__(self) -> str:
        s = self._settings
        return f"AligneAIEmbeddings(model={s.model!r}, dimensions={s.dimensions!r})"

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """The embeddings of ``texts``, in order (``create_many``)."""
        return self._settings.embed_many(list(texts))

    def embed_query(self, text: str) -> list[float]:
        """The embedding of one query (one request)."""
        return self._settings.embed_one(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """The embeddings of ``texts``, in order (async ``create_many``)."""
        return await self._settings.aembed_many(list(texts))

    async def aembed_query(self, text: str) -> list[float]:
        """The embedding of one query (one async request)."""
        return await self._settings.aembed_one(text)

    def close(self) -> None:
        """Close the sync client this adapter built (not one it was given)."""
        self._settings.close()
