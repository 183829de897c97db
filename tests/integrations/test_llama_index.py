"""LlamaIndex: `AligneAIEmbedding` against the real ``BaseEmbedding`` and ``VectorStoreIndex``."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Iterator

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core import VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import TextNode

from aligneai import InvalidArgumentValueError
from aligneai.integrations.llama_index import AligneAIEmbedding
from aligneai.testing import LocalServer

from ._common import DIMS, KEY, check_rows, corpus, embedding_requests
from ._retrieval import ANSWER, PASSAGES, QUERY


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer(api_key=KEY) as server:
        yield server


@pytest.fixture
def embed_model(server: LocalServer) -> Iterator[AligneAIEmbedding]:
    model = AligneAIEmbedding(api_key=KEY, base_url=server.url, dimensions=DIMS)
    yield model
    model.close()


def test_is_a_llama_index_embedding_without_the_key_in_sight(
    embed_model: AligneAIEmbedding,
) -> None:
    assert isinstance(embed_model, BaseEmbedding)
    assert KEY not in repr(embed_model)
    assert KEY not in embed_model.to_json()
    assert embed_model.class_name() == "AligneAIEmbedding"
    assert embed_model.embed_batch_size == 2048


def test_batch_goes_through_create_many_in_order(
    embed_model: AligneAIEmbedding, server: LocalServer
) -> None:
    texts = corpus(70)
    check_rows(texts, embed_model.get_text_embedding_batch(texts))
    # One create_many for the whole batch (LlamaIndex hands over up to embed_batch_size).
    assert len(embedding_requests(server)) == 1
    small = AligneAIEmbedding(
        api_key=KEY, base_url=server.url, dimensions=DIMS, embed_batch_size=30
    )
    check_rows(texts, small.get_text_embedding_batch(texts))
    assert len(embedding_requests(server)) == 1 + 3  # 30 + 30 + 10


def test_single_and_async_methods(embed_model: AligneAIEmbedding, server: LocalServer) -> None:
    check_rows(["a query"], [embed_model.get_query_embedding("a query")])
    check_rows(["a text"], [embed_model.get_text_embedding("a text")])
    texts = corpus(12)

    async def main() -> tuple[list[list[float]], list[float], list[float]]:
        return (
            await embed_model.aget_text_embedding_batch(texts),
            await embed_model.aget_query_embedding("async query"),
            await embed_model.aget_text_embedding("async text"),
        )

    batch, query, text = asyncio.run(main())
    check_rows(texts, batch)
    check_rows(["async query"], [query])
    check_rows(["async text"], [text])
    assert len(embedding_requests(server)) == 5


def test_vector_store_index_retrieves_the_related_text(server: LocalServer) -> None:
    # 256 dimensions: the hashed features of five short passages hardly collide.
    embed_model = AligneAIEmbedding(api_key=KEY, base_url=server.url, dimensions=256)
    index = VectorStoreIndex([TextNode(text=p) for p in PASSAGES], embed_model=embed_model)
    found = index.as_retriever(similarity_top_k=1).retrieve(QUERY)
    assert [hit.node.get_content() for hit in found] == [ANSWER]

    async def search() -> list[str]:
        hits = await index.as_retriever(similarity_top_k=1).aretrieve(QUERY)
        return [hit.node.get_content() for hit in hits]

    assert asyncio.run(search()) == [ANSWER]


def test_bad_settings(server: LocalServer) -> None:
    with pytest.raises(ValueError):  # pydantic's validation of the field
        AligneAIEmbedding(api_key=KEY, base_url=server.url, dimensions=0)
    with pytest.raises(InvalidArgumentValueError) as info:
        AligneAIEmbedding(api_key=KEY, base_url=server.url, model_name="")
    assert info.value.argument == "model"


def test_settings_pickle_without_the_key(embed_model: AligneAIEmbedding) -> None:
    assert KEY.encode() not in pickle.dumps(embed_model.model_dump())
