"""The sans-IO protocol core of the AligneAI client: pure functions and value objects.

This package is the front door for anyone who drives the core from another event loop (trio,
curio, a test harness): one import gives what a driver needs. A call is an `Operation`
(`create_embeddings`, `list_models`, ...) prepared with the client's settings
(`resolve_options`, `base_headers`, `prepare_call`) into a `request_flow` generator, which
yields `Send` / `ReadBody` / `Sleep` actions and receives a `ResponseHead`, the body's bytes (a
`BodyBuffer` bounds them), a `TransportError` (`ConnectError` when the request was certainly not
sent, `ReadError` when it may have been) or None, until it returns a `FlowResult`;
`parse_model` turns that into the typed answer. ``tests/transports/test_trio_driver.py`` is a
complete example, and ``aligneai.transports.sync_driver`` / ``async_driver`` are the two drivers
the clients use. Everything here is also importable from its own module.
"""

from .body import BodyBuffer
from .errors import APIError
from .failures import ConnectError, ConnectTimeout, ReadError, ReadTimeout, TransportError
from .flow import (
    Action,
    Flow,
    FlowResult,
    Outcome,
    PreparedCall,
    ReadBody,
    Send,
    Sleep,
    prepare_call,
    request_flow,
)
from .models import CreateEmbeddingResponse, Model, ModelList
from .operations import (
    CallOptions,
    Operation,
    create_embedding_matrix,
    create_embeddings,
    list_models,
    retrieve_model,
)
from .options import ClientOptions, Timeout, resolve_options
from .parsing import parse_model
from .request import Request, base_headers
from .response import ResponseHead
from .sentinels import NOT_GIVEN, NotGiven
from .system import current_platform

__all__ = [
    "NOT_GIVEN",
    "APIError",
    "Action",
    "BodyBuffer",
    "CallOptions",
    "ClientOptions",
    "ConnectError",
    "ConnectTimeout",
    "CreateEmbeddingResponse",
    "Flow",
    "FlowResult",
    "Model",
    "ModelList",
    "NotGiven",
    "Operation",
    "Outcome",
    "PreparedCall",
    "ReadBody",
    "ReadError",
    "ReadTimeout",
    "Request",
    "ResponseHead",
    "Send",
    "Sleep",
    "Timeout",
    "TransportError",
    "base_headers",
    "create_embedding_matrix",
    "create_embeddings",
    "current_platform",
    "list_models",
    "parse_model",
    "prepare_call",
    "request_flow",
    "resolve_options",
    "retrieve_model",
]
