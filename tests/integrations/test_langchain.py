"""LangChain: `AligneAIEmbeddings` against the real ``Embeddings`` base class and vector store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("langchain_core")

from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import InMemoryVectorStore

from aligneai import AsyncAligneAI, InvalidArgumentValueError, MissingAPIKeyError
from aligneai.integrations.langchain import AligneAIEmbeddings
from aligneai.testing import LocalServer

from ._common import DIMS, KEY, check_rows, corpus, embedding_requests
from ._retrieval import ANSWER, PASSAGES, QUERY


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer(api_key=KEY) as server:
        yield server


@pytest.fixture
def embeddings(server: LocalServer) -> Iterator[AligneAIEmbeddings]:
    adapter = AligneAIEmbeddings(api_key=KEY, base_url=server.url, dimensions=DIMS, batch_size=8)
    yield adapter
    adapter.close()


def test_is_a_langchain_embeddings(embeddings: AligneAIEmbeddings) -> None:
    assert isinstance(embeddings, Embeddings)
    assert KEY not in repr(embeddings)


def test_embed_documents_goes_through_create_many_in_order(
    embeddings: AligneAIEmbeddings, server: LocalServer
) -> None:
    texts = corpus(61)
    vectors = embeddings.embed_documents(texts)
    assert isinstance(vectors, list) and all(isinstance(v, list) for v in vectors)
    assert all(isinstance(x, float) for x in vectors[0])
    check_rows(texts, vectors)
    assert len(embedding_requests(server)) == 8  # ceil(61 / 8) requests, not one per text
    assert embeddings.embed_documents([]) == []


def test_embed_query_is_one_request(embeddings: AligneAIEmbeddings, server: LocalServer) -> None:
    vector = embeddings.embed_query("a single question")
    check_rows(["a single question"], [vector])
    assert [r.json["inputs"] for r in embedding_requests(server)] == [["a single question"]]


def test_async_methods(embeddings: AligneAIEmbeddings, server: LocalServer) -> None:
    texts = corpus(20)

    async def main() -> tuple[list[list[float]], list[float]]:
        return await embeddings.aembed_documents(texts), await embeddings.aembed_query("q?")

    documents, query = asyncio.run(main())
    check_rows(texts, documents)
    check_rows(["q?"], [query])
    assert len(embedding_requests(server)) == 3 + 1


def test_async_client_given(server: LocalServer) -> None:
    async def main() -> list[list[float]]:
        async with AsyncAligneAI(api_key=KEY, base_url=server.url) as client:
            adapter = AligneAIEmbeddings(
                async_client=client, api_key=KEY, base_url=server.url, dimensions=DIMS
            )
            vectors = await adapter.aembed_documents(["given client"])
            await client.embeddings.create(inputs=["still open"])  # the adapter left it open
            return vectors

    check_rows(["given client"], asyncio.run(main()))


def test_in_memory_vector_store_finds_the_related_text(server: LocalServer) -> None:
    # 256 dimensions: the hashed features of five short passages hardly collide.
    embeddings = AligneAIEmbeddings(api_key=KEY, base_url=server.url, dimensions=256)
    store = InMemoryVectorStore.from_texts(PASSAGES, embeddings)
    found = store.similarity_search(QUERY, k=1)
    assert [doc.page_content for doc in found] == [ANSWER]

    async def search() -> list[str]:
        store = await InMemoryVectorStore.afrom_texts(PASSAGES, embeddings)
        return [doc.page_content for doc in await store.asimilarity_search(QUERY, k=1)]

    assert asyncio.run(search()) == [ANSWER]


def test_bad_arguments_and_missing_key(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(InvalidArgumentValueError) as info:
        AligneAIEmbeddings(api_key=KEY, base_url=server.url, batch_size=0)
    assert info.value.argument == "batch_size"
    with pytest.raises(InvalidArgumentValueError) as dims:
        AligneAIEmbeddings(api_key=KEY, base_url=server.url, dimensions=0)
    assert dims.value.argument == "dimensions"
    monkeypatch.delenv("ALIGNEAI_API_KEY", raising=False)
    with pytest.raises(MissingAPIKeyError):
        AligneAIEmbeddings(base_url=server.url)
    assert embedding_requests(server) == []


def test_the_budget_holds_across_calls(server: LocalServer) -> None:
    # 120 requests per minute: one minute's worth in a bucket refilled at 2 per second. After
    # a call that drained it, the next call waits for the refill (a fresh create_many per call
    # would start from a full budget again and exceed it).
    adapter = AligneAIEmbeddings(
        api_key=KEY, base_url=server.url, dimensions=DIMS, batch_size=1, requests_per_minute=120
    )
    adapter.embed_documents(corpus(120))
    start = time.monotonic()
    check_rows(["one more", "and another"], adapter.embed_documents(["one more", "and another"]))
    assert time.monotonic() - start >= 0.5  # about 1 s: 2 requests at 2 per second
    adapter.close()
