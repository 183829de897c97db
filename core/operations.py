"""The API's operations as values: validated arguments in, an `Operation` out.

Validation happens here, once for both clients, and always before anything is sent. Every
error names the offending argument and is both an `APIError` and the matching builtin
(`TypeError` or `ValueError`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Callable, Generic, Literal, Optional, TypeVar
from urllib.parse import quote

import attrs

from .errors import InvalidArgumentTypeError, InvalidArgumentValueError
from .models import CreateEmbeddingResponse, Model, ModelList

if TYPE_CHECKING:
    from .matrix import EmbeddingMatrix
from .options import Timeout, TimeoutLike, _validate_max_retries, validate_headers
from .request import Request
from .response import ResponseHead

__all__ = [
    "DEFAULT_ENCODING_FORMAT",
    "MAX_INPUTS",
    "CallOptions",
    "EncodingFormat",
    "Operation",
    "create_embedding_matrix",
    "create_embeddings",
    "list_models",
    "retrieve_model",
]

T = TypeVar("T")

MAX_INPUTS = 2048
EncodingFormat = Literal["float", "base64"]
# base64 is a quarter of the size of float JSON and decodes faster; the client turns it back
# into floats, so callers see the same values either way.
DEFAULT_ENCODING_FORMAT: EncodingFormat = "base64"


@attrs.frozen
class Operation(Generic[T]):
    """One API call, described as data: what to send and what the answer parses into."""

    method: str
    path: str
    response_type: type[T]
    body: Optional[Mapping[str, Any]] = None  # noqa: UP045 - attrs evaluates this on 3.9
    query: Optional[Mapping[str, Any]] = None  # noqa: UP045
    stream: bool = False
    # How a 2xx body becomes the result; None: structure JSON into `response_type`.
    parser: Optional[Callable[[ResponseHead, bytes, Optional[Request]], T]] = None  # noqa: UP045


def _optional_mapping(value: object, argument: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidArgumentTypeError(argument, f"expected a mapping, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise InvalidArgumentTypeError(argument, f"keys must be str, got {key!r}")
    return dict(value)


@attrs.frozen
class CallOptions:
    """Per-call overrides of the client's settings (None keeps the client's value)."""

    timeout: Optional[Timeout] = None  # noqa: UP045
    max_retries: Optional[int] = None  # noqa: UP045
    extra_headers: Mapping[str, str] = attrs.field(factory=dict)
    extra_query: Mapping[str, Any] = attrs.field(factory=dict)

    @classmethod
    def from_arguments(
        cls,
        *,
        timeout: TimeoutLike = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, Any] | None = None,
    ) -> CallOptions:
        """Validate a call's keyword arguments, naming the bad one."""
        return cls(
            timeout=None if timeout is None else Timeout.coerce(timeout),
            max_retries=None if max_retries is None else _validate_max_retries(max_retries),
            extra_headers=validate_headers(extra_headers, "extra_headers"),
            extra_query=_optional_mapping(extra_query, "extra_query"),
        )


def _validate_inputs(inputs: object) -> str | list[str]:
    if inputs is None:
        raise InvalidArgumentTypeError("inputs", "is required: a string or a list of strings")
    if isinstance(inputs, str):
        if not inputs:
            raise InvalidArgumentValueError("inputs", "must not be an empty string")
        return inputs
    if isinstance(inputs, (bytes, bytearray, Mapping)) or not isinstance(inputs, Sequence):
        raise InvalidArgumentTypeError(
            "inputs", f"expected a string or a list of strings, got {type(inputs).__name__}"
        )
    if not inputs:
        raise InvalidArgumentValueError("inputs", "must contain at least one string")
    if len(inputs) > MAX_INPUTS:
        raise InvalidArgumentValueError(
            "inputs", f"at most {MAX_INPUTS} strings per call, got {len(inputs)}"
        )
    for i, item in enumerate(inputs):
        if not isinstance(item, str):
            raise InvalidArgumentTypeError(
                f"inputs[{i}]", f"expected a string, got {type(item).__name__}"
            )
        if not item:
            raise InvalidArgumentValueError(f"inputs[{i}]", "must not be an empty string")
    return list(inputs)


def _validate_optional_str(value: object, argument: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgumentTypeError(argument, f"expected a str, got {type(value).__name__}")
    if not value:
        raise InvalidArgumentValueError(argument, "must not be empty")
    return value


def create_embeddings(
    *,
    inputs: object,
    model: object = None,
    encoding_format: object = None,
    dimensions: object = None,
    stream: object = False,
    extra_body: object = None,
) -> Operation[CreateEmbeddingResponse]:
    """The ``POST /embeddings`` operation, with every argument checked."""
    body: dict[str, Any] = {"inputs": _validate_inputs(inputs)}
    model_id = _validate_optional_str(model, "model")
    if model_id is not None:
        body["model"] = model_id
    if encoding_format is None:
        encoding_format = DEFAULT_ENCODING_FORMAT
    if not isinstance(encoding_format, str):
        raise InvalidArgumentTypeError(
            "encoding_format", f"expected 'float' or 'base64', got {type(encoding_format).__name__}"
        )
    if encoding_format not in ("float", "base64"):
        raise InvalidArgumentValueError(
            "encoding_format", f"expected 'float' or 'base64', got {encoding_format!r}"
        )
    body["encoding_format"] = encoding_format
    if dimensions is not None:
        if isinstance(dimensions, bool) or not isinstance(dimensions, int):
            raise InvalidArgumentTypeError(
                "dimensions", f"expected a positive int, got {type(dimensions).__name__}"
            )
        if dimensions < 1:
            raise InvalidArgumentValueError(
                "dimensions", f"must be a positive int, got {dimensions}"
            )
        body["dimensions"] = dimensions
    if not isinstance(stream, bool):
        raise InvalidArgumentTypeError("stream", f"expected a bool, got {type(stream).__name__}")
    if stream:
        body["stream"] = True
    body.update(_optional_mapping(extra_body, "extra_body"))
    return Operation(
        method="POST",
        path="/embeddings",
        response_type=CreateEmbeddingResponse,
        body=body,
        stream=stream,
    )


def create_embedding_matrix(
    *,
    inputs: object,
    model: object = None,
    dimensions: object = None,
    extra_body: object = None,
) -> Operation[EmbeddingMatrix]:
    """``POST /embeddings`` decoded straight into a numpy matrix (base64 on the wire)."""
    from ._numpy import require_numpy
    from .matrix import EmbeddingMatrix, parse_matrix

    require_numpy()  # before anything is sent
    plain = create_embeddings(
        inputs=inputs,
        model=model,
        encoding_format="base64",
        dimensions=dimensions,
        extra_body=extra_body,
    )
    body = dict(plain.body or {})
    if body.get("encoding_format") != "base64":
        raise InvalidArgumentValueError(
            "extra_body", "create_matrix() needs encoding_format 'base64' on the wire"
        )
    return Operation(
        method="POST",
        path="/embeddings",
        response_type=EmbeddingMatrix,
        body=body,
        parser=parse_matrix,
    )


def list_models() -> Operation[ModelList]:
    """The ``GET /models`` operation."""
    return Operation(method="GET", path="/models", response_type=ModelList)


def retrieve_model(model_id: object) -> Operation[Model]:
    """The ``GET /models/{model_id}`` operation."""
    if not isinstance(model_id, str):
        raise InvalidArgumentTypeError("model_id", f"expected a str, got {type(model_id).__name__}")
    if not model_id.strip():
        raise InvalidArgumentValueError("model_id", "must not be empty")
    segment = quote(model_id, safe="")
    if segment in (".", ".."):
        segment = segment.replace(".", "%2E")
    return Operation(method="GET", path="/models/" + segment, response_type=Model)
