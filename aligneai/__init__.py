"""The AligneAI Python library: typed, fast, reliable access to the AligneAI embeddings API.

    from aligneai import AligneAI

    client = AligneAI()  # reads ALIGNEAI_API_KEY
    response = client.embeddings.create(inputs=["hello", "world"])

`AsyncAligneAI` is the asyncio twin (``pip install "aligneai[aiohttp]"``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aligneai.core._version import __version__
from aligneai.core.errors import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    InvalidArgumentValueError,
    MissingAPIKeyError,
    MissingDependencyError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseTooLargeError,
    SSEDecodeError,
    UnprocessableEntityError,
)
from aligneai.core.headers import Headers
from aligneai.core.matrix import EmbeddingMatrix
from aligneai.core.models import (
    CreateEmbeddingResponse,
    Embedding,
    EmbeddingStreamDone,
    Model,
    ModelList,
    Usage,
)
from aligneai.core.options import Timeout
from aligneai.core.sentinels import NOT_GIVEN, NotGiven

from ._client import AligneAI
from ._logging import setup_logging
from ._raw_response import RawResponse
from ._runner import SyncRunner

if TYPE_CHECKING:
    from ._async_client import AsyncAligneAI
    from ._async_runner import AsyncRunner
    from ._streaming import AsyncStream, Stream
    from .resources.embeddings import Embeddings
    from .resources.models import Models

__all__ = [
    "NOT_GIVEN",
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AligneAI",
    "AsyncAligneAI",
    "AsyncRunner",
    "AsyncStream",
    "AuthenticationError",
    "BadRequestError",
    "CreateEmbeddingResponse",
    "Embedding",
    "EmbeddingMatrix",
    "EmbeddingStreamDone",
    "Headers",
    "InternalServerError",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "InvalidArgumentValueError",
    "MissingAPIKeyError",
    "MissingDependencyError",
    "Model",
    "ModelList",
    "NotFoundError",
    "NotGiven",
    "PermissionDeniedError",
    "RateLimitError",
    "RawResponse",
    "ResponseTooLargeError",
    "SSEDecodeError",
    "Stream",
    "SyncRunner",
    "Timeout",
    "UnprocessableEntityError",
    "Usage",
    "__version__",
    "api_key",
    "base_url",
]

# Settings of the module-level client (see `_module_client`); None falls back to the
# ALIGNEAI_API_KEY / ALIGNEAI_BASE_URL environment variables.
api_key: str | None = None
base_url: str | None = None

setup_logging()


def __getattr__(name: str) -> Any:
    # Loaded on first use so that `import aligneai` stays fast and never imports asyncio or
    # aiohttp; `embeddings` and `models` are the module-level client's resources.
    if name == "AsyncAligneAI":
        from ._async_client import AsyncAligneAI

        return AsyncAligneAI
    if name == "AsyncRunner":
        from ._async_runner import AsyncRunner

        return AsyncRunner
    if name in ("Stream", "AsyncStream"):
        from . import _streaming

        return getattr(_streaming, name)
    if name in ("embeddings", "models"):
        from ._module_client import module_client

        return getattr(module_client(), name)
    raise AttributeError(f"module 'aligneai' has no attribute {name!r}")


if TYPE_CHECKING:
    embeddings: Embeddings
    models: Models
