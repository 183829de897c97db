"""Bulk embedding: the types of ``embeddings.create_many`` and ``embeddings.iter_many``.

    result = client.embeddings.create_many(texts, output="vectors.npy", progress=True)
    for chunk in client.embeddings.iter_many(texts):
        index.add(chunk.offset, chunk.matrix)

Importing this module does not import numpy; the calls need ``aligneai[numpy]``.
"""

from __future__ import annotations

from aligneai._bulk._checkpoint import BulkResumeError
from aligneai._bulk._progress import ProgressEvent
from aligneai._bulk._result import BulkResult, EmbeddedChunk
from aligneai._bulk._run_async import AsyncChunkIterator
from aligneai._bulk._run_sync import ChunkIterator
from aligneai.core.batching import InputTooLargeError

__all__ = [
    "AsyncChunkIterator",
    "BulkResult",
    "BulkResumeError",
    "ChunkIterator",
    "EmbeddedChunk",
    "InputTooLargeError",
    "ProgressEvent",
]
