"""Run AligneAI where the data already is: distributed engines and LLM frameworks.

- `Embedder`: a picklable batch embedder for Ray Data (``ds.map_batches(Embedder, ...)``) and
  Dask (``ddf.map_partitions(Embedder(...))``; helpers in ``aligneai.integrations.dask``).
- ``aligneai.integrations.langchain.AligneAIEmbeddings``: LangChain's ``Embeddings``.
- ``aligneai.integrations.llama_index.AligneAIEmbedding``: LlamaIndex's ``BaseEmbedding``.

Importing this package imports none of the engines or frameworks; each submodule imports its
own (``pip install "aligneai[ray]"``, ``[dask]``, ``[langchain]``, ``[llama-index]``).
"""

from __future__ import annotations

from ._embedder import Embedder

__all__ = ["Embedder"]
