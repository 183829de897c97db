"""The typed models returned by the API (attrs classes that are also read-only JSON dicts)."""

from aligneai.core.matrix import EmbeddingMatrix
from aligneai.core.models import (
    CreateEmbeddingResponse,
    Embedding,
    EmbeddingStreamDone,
    Model,
    ModelList,
    Usage,
)
from aligneai.core.wire import EncodingFormat

__all__ = [
    "CreateEmbeddingResponse",
    "Embedding",
    "EmbeddingMatrix",
    "EmbeddingStreamDone",
    "EncodingFormat",
    "Model",
    "ModelList",
    "Usage",
]
