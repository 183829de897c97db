"""Facts of the AligneAI REST API v1 wire protocol, written once for the client and the kit.

Paths, request fields, limits, header names and event names that several modules (the core, the
clients, the CLI, the local server of `aligneai.testing`) need are defined here and imported
there, so the client and its fake server cannot drift apart by a typo. Header names are the
lower-case spelling: every header mapping of the library compares names case-insensitively.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = [
    "API_PREFIX",
    "EMBEDDINGS_PATH",
    "EMBEDDING_REQUEST_FIELDS",
    "ENCODING_FORMATS",
    "EVENT_DONE",
    "EVENT_EMBEDDING",
    "EVENT_ERROR",
    "EVENT_STREAM_CONTENT_TYPE",
    "IDEMPOTENCY_KEY",
    "MAX_INPUTS",
    "MODELS_PATH",
    "RATELIMIT_LIMIT_REQUESTS",
    "RATELIMIT_LIMIT_TOKENS",
    "RATELIMIT_REMAINING_REQUESTS",
    "RATELIMIT_REMAINING_TOKENS",
    "RATELIMIT_RESET_REQUESTS",
    "RATELIMIT_RESET_TOKENS",
    "REQUEST_ID",
    "RETRY_AFTER",
    "RETRY_AFTER_MS",
    "RETRY_COUNT",
    "SHOULD_RETRY",
    "EncodingFormat",
]

# -- paths ---------------------------------------------------------------------------------------

API_PREFIX: Final = "/v1"  # the version prefix of every path (the default base URL ends with it)
EMBEDDINGS_PATH: Final = "/embeddings"  # POST: embed inputs (relative to the base URL)
MODELS_PATH: Final = "/models"  # GET: list the models; GET /models/{id}: one model

# -- the POST /embeddings request ----------------------------------------------------------------

MAX_INPUTS: Final = 2048  # the most strings one request may carry
EncodingFormat = Literal["float", "base64"]  # how vectors travel: JSON numbers or base64 float32
ENCODING_FORMATS: Final[tuple[EncodingFormat, ...]] = ("float", "base64")  # the values above
# every field the API accepts in the body; any other is an unknown parameter
EMBEDDING_REQUEST_FIELDS: Final = frozenset(
    {"inputs", "model", "encoding_format", "dimensions", "stream"}
)

# -- headers the retry logic reads and writes ----------------------------------------------------

RETRY_AFTER: Final = "retry-after"  # seconds or an HTTP-date to wait before retrying
RETRY_AFTER_MS: Final = "retry-after-ms"  # the same wait in milliseconds; wins over retry-after
SHOULD_RETRY: Final = "x-should-retry"  # "true"/"false": the server overrides the retry rule
REQUEST_ID: Final = "x-request-id"  # the server's id of an answer, for support requests
IDEMPOTENCY_KEY: Final = "idempotency-key"  # one key for every attempt of a POST
RETRY_COUNT: Final = "x-aligneai-retry-count"  # which attempt this is (0 for the first)

# -- rate-limit headers (rate control and the local server's limiter) ----------------------------

RATELIMIT_LIMIT_REQUESTS: Final = "x-ratelimit-limit-requests"  # requests allowed per minute
RATELIMIT_REMAINING_REQUESTS: Final = "x-ratelimit-remaining-requests"  # requests left now
RATELIMIT_RESET_REQUESTS: Final = "x-ratelimit-reset-requests"  # until that budget is full
RATELIMIT_LIMIT_TOKENS: Final = "x-ratelimit-limit-tokens"  # tokens allowed per minute
RATELIMIT_REMAINING_TOKENS: Final = "x-ratelimit-remaining-tokens"  # tokens left now
RATELIMIT_RESET_TOKENS: Final = "x-ratelimit-reset-tokens"  # until that budget is full

# -- streaming (stream=true answers) -------------------------------------------------------------

EVENT_STREAM_CONTENT_TYPE: Final = "text/event-stream"  # the content type of a stream
EVENT_EMBEDDING: Final = "embedding"  # SSE event: one embedding item
EVENT_DONE: Final = "done"  # SSE event: model and usage; the stream ends
EVENT_ERROR: Final = "error"  # SSE event: {"error": {...}, "status": int}; the stream fails
