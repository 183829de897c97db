"""Deprecated: the embeddings stream decoder moved to `aligneai.core.embedding_stream`.

Importing this module warns `DeprecationWarning` and hands out the same objects as the new one;
it goes away in a later release.
"""

from __future__ import annotations

import warnings

from .embedding_stream import EmbeddingStreamDecoder, assemble_response, contract_of

__all__ = ["EmbeddingStreamDecoder", "assemble_response", "contract_of"]

warnings.warn(
    "aligneai.core.streaming is deprecated; import from aligneai.core.embedding_stream instead",
    DeprecationWarning,
    stacklevel=2,
)
