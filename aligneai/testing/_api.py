"""The AligneAI REST API v1 as pure functions: routing, validation and answers (no IO).

`answer` maps one HTTP request (method, path, headers, body) to the answer the real API gives,
without doing any IO, so the local server only adds sockets and fault injection around it.

Error bodies are ``{"error": {"message", "type", "code", "param"}}``; ``type`` follows the
status (`ERROR_TYPES`). Checks run in this order, and the first failure answers:

1. routing: unknown path → 404 ``not_found``; known path, wrong method → 405 (with ``Allow``);
2. auth: missing or malformed ``Authorization: Bearer <key>`` → 401 ``missing_api_key``, a key
   other than the server's → 401 ``invalid_api_key``;
3. body shape (400 ``invalid_request_error``): ``invalid_json``, ``invalid_type``,
   ``unknown_parameter``, ``missing_required_parameter``, ``invalid_value``; ``param`` names
   the field. JSON ``null`` is a wrong type, not "absent": omit optional fields instead;
4. unknown model → 404 ``model_not_found`` (``param: "model"``);
5. well-formed but unprocessable (422): ``empty_inputs`` (an empty list), ``too_many_inputs``
   (more than `MAX_INPUTS`, 2048), ``empty_input`` (an empty string), ``dimensions_too_large``;
6. the per-request token cap (when set): more tokens than ``max_request_tokens`` → 400
   ``request_too_large`` (``param: "inputs"``), tokens counted by `count_tokens`;
7. the rate limiter (when set, through ``admit``): 429 ``rate_limit_exceeded``.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Optional, Union
from urllib.parse import unquote

from aligneai.core.wire import (
    API_PREFIX,
    EMBEDDING_REQUEST_FIELDS,
    EMBEDDINGS_PATH,
    ENCODING_FORMATS,
    MAX_INPUTS,
    MODELS_PATH,
)
from aligneai.testing import _embedder

__all__ = [
    "API_PREFIX",
    "DEFAULT_MODEL",
    "ERROR_TYPES",
    "MAX_INPUTS",
    "MODELS",
    "TOKEN_PATTERN",
    "Admit",
    "Answer",
    "ApiError",
    "EmbeddingRequest",
    "JsonAnswer",
    "ModelInfo",
    "StreamAnswer",
    "answer",
    "check_authorization",
    "check_request_tokens",
    "count_tokens",
    "default_error_payload",
    "embeddings_answer",
    "encode_json",
    "error_payload",
    "is_known_path",
    "parse_embedding_request",
    "request_tokens",
    "status_phrase",
]

JsonObject = dict[str, Any]

# API_PREFIX and MAX_INPUTS (re-exported), the request's fields and the encoding formats are
# the core's (aligneai.core.wire): one definition of the wire for the client and this server.

TOKEN_PATTERN = re.compile(r"\w+|[^\w\s]")
"""The documented tokenizer of ``usage``: a token is a run of word characters or one symbol."""


@dataclass(frozen=True)
class ModelInfo:
    """One embedding model the API serves."""

    id: str
    dimensions: int
    created: int

    def to_json(self) -> JsonObject:
        """Return the contract's Model object."""
        return {
            "id": self.id,
            "object": "model",
            "created": self.created,
            "owned_by": "aligneai",
            "dimensions": self.dimensions,
        }


MODELS: Mapping[str, ModelInfo] = {
    info.id: info
    for info in (
        ModelInfo("aligne-embed-small", 384, 1704067200),
        ModelInfo("aligne-embed-large", 1536, 1704067200),
    )
}
DEFAULT_MODEL = "aligne-embed-small"


ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    422: "unprocessable_entity_error",
    429: "rate_limit_error",
}
"""The error ``type`` per status; other 4xx: ``invalid_request_error``, 5xx: ``server_error``."""

_DEFAULT_MESSAGES: Mapping[int, str] = {
    401: "Invalid or missing API key.",
    429: "Rate limit exceeded; please retry later.",
    500: "The server had an error while processing your request.",
    503: "The service is temporarily unavailable; please retry later.",
}


def _error_type(status: int) -> str:
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "server_error" if status >= 500 else "invalid_request_error"


def error_payload(
    status: int, message: str, *, code: str | None = None, param: str | None = None
) -> JsonObject:
    """Return the contract's error body for ``status``."""
    error = {"message": message, "type": _error_type(status), "code": code, "param": param}
    return {"error": error}


def status_phrase(status: int) -> str:
    """Return the reason phrase of ``status`` (``"HTTP 599"`` for an unregistered one)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def default_error_payload(status: int, message: str | None = None) -> JsonObject:
    """Return a plausible error body for any status (what a bare injected failure carries)."""
    phrase = status_phrase(status)
    code = re.sub(r"[^a-z0-9]+", "_", phrase.lower()).strip("_")
    if message is None:
        message = _DEFAULT_MESSAGES.get(status, phrase + ".")
    return error_payload(status, message, code=code)


def encode_json(payload: Any) -> bytes:
    """Serialise an answer body: compact, ASCII-only JSON (NaN is never valid JSON)."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode("ascii")


class ApiError(Exception):
    """A request the contract rejects; `payload` is the error body to answer with."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = tuple(headers)

    @property
    def payload(self) -> JsonObject:
        """The contract's error body."""
        return error_payload(self.status, self.message, code=self.code, param=self.param)


def count_tokens(text: str) -> int:
    r"""Count the tokens of one text as the local server does: ``usage``, limits and caps alike.

    A token is a run of word characters (regex ``\w+``, Unicode-aware) or one other
    non-space character; every text counts at least 1. ``"Hello, world!"`` is 4 tokens
    (``Hello``, ``,``, ``world``, ``!``), ``"don't stop"`` 4, ``"   "`` 1. A request's tokens
    are the sum over its inputs.
    """
    return max(1, len(TOKEN_PATTERN.findall(text)))


def request_tokens(inputs: Sequence[str]) -> int:
    """Return the tokens of a request's inputs: the sum of `count_tokens` over them."""
    return sum(map(count_tokens, inputs))


def check_authorization(authorization: str | None, api_key: str | None) -> None:
    """Raise a 401 `ApiError` unless ``authorization`` is ``Bearer <key>`` with an accepted key.

    Any non-empty key is accepted when ``api_key`` is None, else only ``api_key`` itself.
    """
    scheme, _, key = (authorization or "").strip().partition(" ")
    key = key.strip()
    challenge = [("WWW-Authenticate", "Bearer")]
    if scheme.lower() != "bearer" or not key:
        raise ApiError(
            401,
            "Missing API key: send it as 'Authorization: Bearer <key>'.",
            code="missing_api_key",
            headers=challenge,
        )
    if api_key is not None and not hmac.compare_digest(key.encode(), api_key.encode()):
        raise ApiError(
            401, "Incorrect API key provided.", code="invalid_api_key", headers=challenge
        )


@dataclass(frozen=True)
class EmbeddingRequest:
    """A validated ``POST /v1/embeddings`` body (a lone string input becomes a 1-tuple)."""

    inputs: tuple[str, ...]
    model: ModelInfo
    encoding_format: str = "float"
    dimensions: int | None = None
    stream: bool = False

    @property
    def output_dimensions(self) -> int:
        """The length of every returned vector."""
        return self.dimensions if self.dimensions is not None else self.model.dimensions


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _invalid_type(param: str, expected: str, value: object) -> ApiError:
    return ApiError(
        400,
        f"Invalid type for '{param}': expected {expected}, got {_type_name(value)}.",
        code="invalid_type",
        param=param,
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _decode_json_object(body: bytes) -> JsonObject:
    try:
        decoded = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(
            400, f"The request body is not valid JSON: {exc}", code="invalid_json"
        ) from None
    if not isinstance(decoded, dict):
        raise ApiError(
            400,
            f"The request body must be a JSON object, got {_type_name(decoded)}.",
            code="invalid_type",
        )
    return decoded


def _parse_inputs(raw: object) -> tuple[str, ...]:
    if isinstance(raw, str):
        return (raw,)
    if not isinstance(raw, list):
        raise _invalid_type("inputs", "a string or an array of strings", raw)
    for position, item in enumerate(raw):
        if not isinstance(item, str):
            raise ApiError(
                400,
                f"Invalid type for 'inputs[{position}]': expected string, got {_type_name(item)}.",
                code="invalid_type",
                param="inputs",
            )
    return tuple(raw)


def _parse_dimensions(data: JsonObject) -> int:
    raw: object = data["dimensions"]
    # bool is an int subclass in Python, but `true` is not an integer in JSON. JSON itself has
    # one number type: `63.0` is the integer 63 (JSON Schema's "integer" says so too), `1.5`
    # is not an integer at all.
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise _invalid_type("dimensions", "integer", raw)
    return raw


def parse_embedding_request(body: bytes) -> EmbeddingRequest:
    """Validate a ``POST /v1/embeddings`` body, raising `ApiError` (400/404/422) on failure."""
    data = _decode_json_object(body)
    unknown = sorted(set(data) - EMBEDDING_REQUEST_FIELDS)
    if unknown:
        raise ApiError(
            400,
            f"Unrecognized request argument: '{unknown[0]}'.",
            code="unknown_parameter",
            param=unknown[0],
        )
    if "inputs" not in data:
        raise ApiError(
            400,
            "Missing required parameter: 'inputs'.",
            code="missing_required_parameter",
            param="inputs",
        )
    inputs = _parse_inputs(data["inputs"])

    model_id = data.get("model", DEFAULT_MODEL)
    if not isinstance(model_id, str):
        raise _invalid_type("model", "string", model_id)
    encoding_format = data.get("encoding_format", "float")
    if not isinstance(encoding_format, str):
        raise _invalid_type("encoding_format", "string", encoding_format)
    if encoding_format not in ENCODING_FORMATS:
        raise ApiError(
            400,
            f"Invalid value for 'encoding_format': {encoding_format!r} "
            f"(expected {' or '.join(map(repr, ENCODING_FORMATS))}).",
            code="invalid_value",
            param="encoding_format",
        )
    dimensions = _parse_dimensions(data) if "dimensions" in data else None
    if dimensions is not None and dimensions < 1:
        raise ApiError(
            400,
            f"Invalid value for 'dimensions': {dimensions} (expected a positive integer).",
            code="invalid_value",
            param="dimensions",
        )
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise _invalid_type("stream", "boolean", stream)

    model = MODELS.get(model_id)
    if model is None:
        raise ApiError(
            404, f"The model '{model_id}' does not exist.", code="model_not_found", param="model"
        )

    if isinstance(data["inputs"], list) and not inputs:
        raise ApiError(
            422, "'inputs' must hold at least one string.", code="empty_inputs", param="inputs"
        )
    if len(inputs) > MAX_INPUTS:
        raise ApiError(
            422,
            f"'inputs' holds {len(inputs)} strings; at most {MAX_INPUTS} are allowed.",
            code="too_many_inputs",
            param="inputs",
        )
    for position, text in enumerate(inputs):
        if not text:
            raise ApiError(
                422,
                f"'inputs[{position}]' is an empty string.",
                code="empty_input",
                param="inputs",
            )
    if dimensions is not None and dimensions > model.dimensions:
        raise ApiError(
            422,
            f"'dimensions' is {dimensions}, but {model.id} has {model.dimensions}.",
            code="dimensions_too_large",
            param="dimensions",
        )
    return EmbeddingRequest(inputs, model, encoding_format, dimensions, stream)


@dataclass(frozen=True)
class JsonAnswer:
    """A complete JSON answer: status, body and any extra headers (e.g. ``Allow``)."""

    status: int
    payload: JsonObject
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class StreamAnswer:
    """A 200 event-stream answer: one ``embedding`` event per item, then ``done``."""

    items: tuple[JsonObject, ...]
    done: JsonObject = field(default_factory=dict)

    def as_json(self) -> JsonAnswer:
        """Return the same result as the non-streaming answer would carry it."""
        return JsonAnswer(200, {"object": "list", "data": list(self.items), **_tail(self.done)})


Answer = Union[JsonAnswer, StreamAnswer]


def _tail(done: JsonObject) -> JsonObject:
    return {key: value for key, value in done.items() if key != "object"}


def embeddings_answer(request: EmbeddingRequest, tokens: int | None = None) -> Answer:
    """Compute the answer to a validated embeddings request (``tokens``: already counted)."""
    dims = request.output_dimensions
    items: list[JsonObject] = []
    for index, text in enumerate(request.inputs):
        vector = _embedder.embed(text, dims)
        encoded: Any = (
            _embedder.to_base64(vector) if request.encoding_format == "base64" else list(vector)
        )
        items.append({"object": "embedding", "index": index, "embedding": encoded})
    if tokens is None:
        tokens = request_tokens(request.inputs)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    if request.stream:
        done = {"object": "list", "model": request.model.id, "usage": usage}
        return StreamAnswer(tuple(items), done)
    return JsonAnswer(
        200, {"object": "list", "data": items, "model": request.model.id, "usage": usage}
    )


def _models_answer(model_id: str | None) -> JsonAnswer:
    if model_id is None:
        return JsonAnswer(
            200, {"object": "list", "data": [info.to_json() for info in MODELS.values()]}
        )
    info = MODELS.get(model_id)
    if info is None:
        raise ApiError(404, f"The model '{model_id}' does not exist.", code="model_not_found")
    return JsonAnswer(200, info.to_json())


def _endpoint(path: str) -> tuple[str, str | None] | None:
    """Return (the method it takes, model id) for a known path (with ``/v1``), else None."""
    parts = path.split("/")
    if path == API_PREFIX + EMBEDDINGS_PATH:
        return ("POST", None)
    if path == API_PREFIX + MODELS_PATH:
        return ("GET", None)
    if len(parts) == 4 and path.startswith(API_PREFIX + MODELS_PATH + "/") and parts[3]:
        return ("GET", unquote(parts[3]))
    return None


def is_known_path(path: str) -> bool:
    """True when ``path`` (a request path with the ``/v1`` prefix, no query) names an endpoint."""
    return _endpoint(path) is not None


def _route(method: str, path: str) -> tuple[str, str | None]:
    """Return (endpoint, model id) for a known path and method, else raise 404 or 405.

    Any other method on a known path, however unusual (``TRACE``, ``CONNECT``, ``FOO``),
    answers 405 with ``Allow``.
    """
    endpoint = _endpoint(path)
    if endpoint is None:
        raise ApiError(404, f"Unknown path: {path}.", code="not_found")
    allowed, model_id = endpoint
    if method != allowed:
        raise ApiError(
            405,
            f"Method {method} is not allowed on {path}; use {allowed}.",
            code="method_not_allowed",
            headers=[("Allow", allowed)],
        )
    return allowed, model_id


Admit = Callable[[Optional[EmbeddingRequest], int], None]
"""Called with each authorised request (None for the models endpoints) and its tokens, before
it is answered; it raises a 429 `ApiError` to refuse it (the local server's rate limiter)."""


def check_request_tokens(tokens: int, max_request_tokens: int | None) -> None:
    """Raise 400 ``request_too_large`` when ``tokens`` exceed the per-request cap (if any)."""
    if max_request_tokens is not None and tokens > max_request_tokens:
        raise ApiError(
            400,
            f"The request holds {tokens} tokens; at most {max_request_tokens} are allowed "
            "in one request. Send fewer or shorter inputs.",
            code="request_too_large",
            param="inputs",
        )


def answer(
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    api_key: str | None,
    max_request_tokens: int | None = None,
    admit: Admit | None = None,
) -> Answer:
    """Answer one request as the API would (``headers`` with lower-case names).

    After routing, authorisation and validation, an embeddings request holding more than
    ``max_request_tokens`` tokens is refused (400 ``request_too_large``) before ``admit`` sees
    it; then ``admit`` may refuse any request (429).
    """
    try:
        allowed, model_id = _route(method, path)
        check_authorization(headers.get("authorization"), api_key)
        if allowed == "POST":
            request = parse_embedding_request(body)
            tokens = request_tokens(request.inputs)
            check_request_tokens(tokens, max_request_tokens)
            if admit is not None:
                admit(request, tokens)
            return embeddings_answer(request, tokens)
        if admit is not None:
            admit(None, 0)
        return _models_answer(model_id)
    except ApiError as error:
        return JsonAnswer(error.status, error.payload, error.headers)
