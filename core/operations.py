"""The API's operations as values: validated arguments in, an `Operation` out.

Validation happens here, once for both clients, and always before anything is sent. Every
error names the offending argument and is both an `APIError` and the matching builtin
(`TypeError` or `ValueError`).
"""

from __future__ import annotations

import functools
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Generic, Optional, TypeVar, Union
from urllib.parse import quote

import attrs

from ._builders import slot_builder
from .answer_contract import AnswerContract
from .errors import InvalidArgumentTypeError, InvalidArgumentValueError
from .headers import redact
from .models import CreateEmbeddingResponse, Model, ModelList
from .options import (
    HeaderOverrides,
    Timeout,
    TimeoutLike,
    is_bool,
    validate_count,
    validate_header_overrides,
    validate_max_retries,
    validate_timeout,
)
from .parsing import EmbeddingsParser, parse_model_answer, parse_model_list
from .request import Request
from .response import ResponseHead
from .sentinels import NOT_GIVEN, NotGiven
from .wire import (
    EMBEDDING_REQUEST_FIELDS,
    EMBEDDINGS_PATH,
    ENCODING_FORMATS,
    MAX_INPUTS,
    MODELS_PATH,
    EncodingFormat,
)

if TYPE_CHECKING:
    from .matrix import EmbeddingMatrix

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

# base64 is a quarter of the size of float JSON and decodes faster; the client turns it back
# into floats, so callers see the same values either way.
DEFAULT_ENCODING_FORMAT: EncodingFormat = "base64"


@attrs.frozen(weakref_slot=False)  # see slot_builder() in core._builders
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
    if value is None or value is NOT_GIVEN:  # both mean "nothing extra"
        return {}
    if not isinstance(value, Mapping):
        raise InvalidArgumentTypeError(argument, f"expected a mapping, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise InvalidArgumentTypeError(argument, f"keys must be str, got {key!r}")
        _check_text(key, argument)
    return dict(value)


# A lone surrogate ("\ud800") is a valid Python str but no Unicode text: UTF-8 cannot encode
# it, so neither JSON nor a URL can carry it.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_text(value: str, argument: str) -> None:
    if not value.isascii() and _SURROGATE.search(value):
        position = _SURROGATE.search(value).start()  # type: ignore[union-attr]
        raise InvalidArgumentValueError(
            argument,
            f"holds a lone surrogate at position {position}, which UTF-8 cannot encode "
            "(was it decoded with errors='surrogateescape'?)",
        )


# The JSON integers both encoders accept (orjson stops at 64 bits; json does not).
_MIN_JSON_INT = -(2**63)
_MAX_JSON_INT = 2**64 - 1
_MAX_JSON_DEPTH = 64


def _json_value(value: object, path: str, depth: int = 0) -> Any:
    """A copy of ``value`` in plain JSON types, or an error naming the path of the bad part.

    Both encoders (json and orjson) then produce the same bytes, and neither can fail.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        _check_text(value, path)
        return str(value)
    if is_bool(value):  # numpy's bool
        return bool(value)
    if isinstance(value, numbers.Integral):
        number = int(value)
        if not _MIN_JSON_INT <= number <= _MAX_JSON_INT:
            raise InvalidArgumentValueError(path, "integers must fit in 64 bits")
        return number
    if isinstance(value, numbers.Real):
        real = float(value)
        if not math.isfinite(real):
            raise InvalidArgumentValueError(path, f"JSON has no {real!r}: use a finite number")
        return real
    if depth >= _MAX_JSON_DEPTH:
        raise InvalidArgumentValueError(
            path, f"nested more than {_MAX_JSON_DEPTH} levels deep (or it contains itself)"
        )
    if isinstance(value, Mapping):
        result: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidArgumentTypeError(
                    path, f"JSON object keys must be str, got {type(key).__name__}"
                )
            _check_text(key, path)
            result[key] = _json_value(item, f"{path}[{key!r}]", depth + 1)
        return result
    if isinstance(value, (list, tuple)):
        return [_json_value(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
    raise InvalidArgumentTypeError(
        path,
        f"{type(value).__name__} is not a JSON value "
        "(expected None, bool, int, float, str, list, tuple or a mapping)",
    )


def _validate_query(value: object) -> dict[str, Any]:
    """Check ``extra_query``: scalar values, or lists of scalars sent as repeated parameters."""
    query = _optional_mapping(value, "extra_query")
    for key, item in query.items():
        where = f"extra_query[{key!r}]"
        if isinstance(item, (list, tuple)):
            query[key] = [_query_scalar(v, f"{where}[{i}]") for i, v in enumerate(item)]
        elif item is not None:
            query[key] = _query_scalar(item, where)
    return query


def _query_scalar(value: object, where: str) -> str | int | float | bool:
    if isinstance(value, str):
        _check_text(value, where)
        return value
    if is_bool(value):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        real = float(value)
        if not math.isfinite(real):
            raise InvalidArgumentValueError(where, f"must be a finite number, got {real!r}")
        return real
    raise InvalidArgumentTypeError(
        where,
        f"expected a str, int, float or bool (or a list of them, sent as repeated parameters), "
        f"got {type(value).__name__}",
    )


# The shared empty extras of the usual call: read-only, so one value serves every call.
_EMPTY: Mapping[str, Any] = MappingProxyType({})


# Field converters: the constructor (and attrs.evolve) checks what from_arguments used to, with
# the same errors naming the argument. The parameter types are what __init__ accepts.
def _call_timeout(value: TimeoutLike | NotGiven) -> Timeout | float | NotGiven | None:
    return validate_timeout(value)


def _call_max_retries(value: int | NotGiven) -> int | NotGiven:
    return value if value is NOT_GIVEN else validate_max_retries(value)


def _call_headers(value: HeaderOverrides | NotGiven | None) -> HeaderOverrides:
    if value is None or value is NOT_GIVEN or value is _EMPTY:
        return _EMPTY
    return validate_header_overrides(value, "extra_headers")


def _call_query(value: Mapping[str, Any] | NotGiven | None) -> Mapping[str, Any]:
    if value is None or value is NOT_GIVEN or value is _EMPTY:
        return _EMPTY
    return _validate_query(value)


def _headers_repr(value: HeaderOverrides) -> str:
    # extra_headers may carry a credential (Authorization for a gateway): never in a repr.
    return repr(redact(value))


def _query_repr(value: Mapping[str, Any]) -> str:
    return repr(dict(value))  # the shared empty one is a read-only proxy: shown as {}


@attrs.frozen
class CallOptions:
    """Per-call overrides of the client's settings; `NOT_GIVEN` keeps the client's value.

    Every field is checked when the value is built (``CallOptions(max_retries=None)`` raises
    `InvalidArgumentTypeError` naming ``max_retries``), as `from_arguments` does.

    Attributes:
        timeout: applied over the client's timeout by `Timeout.merge`: a number sets the read
            limit (and caps connect) but keeps the client's ``total`` deadline; None removes
            the read limit only; a `Timeout` replaces the fields written in its constructor
            call (``Timeout(total=None)`` drops the deadline); `NOT_GIVEN` keeps it all.
        max_retries: the retry count for this call; `NOT_GIVEN` keeps the client's.
        extra_headers: merged over the client's headers, whatever the case of the names; a
            None value removes that field for this call (``{"Idempotency-Key": None}``: the
            call sends no idempotency key). ``X-AligneAI-Retry-Count`` is refused: it is
            always sent. None or `NOT_GIVEN`: no extra headers. Credentials are hidden in the
            repr.
        extra_query: added to the URL's query. None or `NOT_GIVEN`: nothing added.
    """

    timeout: Union[Timeout, float, NotGiven, None] = attrs.field(  # noqa: UP007 - attrs, 3.9
        default=NOT_GIVEN, converter=_call_timeout
    )
    max_retries: Union[int, NotGiven] = attrs.field(  # noqa: UP007
        default=NOT_GIVEN, converter=_call_max_retries
    )
    extra_headers: HeaderOverrides = attrs.field(
        default=_EMPTY, converter=_call_headers, repr=_headers_repr
    )
    extra_query: Mapping[str, Any] = attrs.field(
        default=_EMPTY, converter=_call_query, repr=_query_repr
    )

    @classmethod
    def from_arguments(
        cls,
        *,
        timeout: TimeoutLike | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: HeaderOverrides | NotGiven | None = None,
        extra_query: Mapping[str, Any] | NotGiven | None = None,
    ) -> CallOptions:
        """Validate a call's keyword arguments, naming the bad one (as the constructor does).

        ``max_retries=None`` is refused (it used to mean "keep the client's setting"): leave
        the argument out, or pass `NOT_GIVEN`, to keep it.
        """
        if (
            timeout is NOT_GIVEN
            and max_retries is NOT_GIVEN
            and extra_headers is None
            and extra_query is None
            and cls is CallOptions
        ):
            return _NO_OVERRIDES  # the usual call: one shared, immutable value
        return cls(
            timeout=timeout,
            max_retries=max_retries,
            extra_headers=extra_headers,
            extra_query=extra_query,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # The shared empty mappings are read-only proxies, which pickle cannot copy: rebuild
        # from plain dicts (checked again by the converters).
        return (
            type(self),
            (self.timeout, self.max_retries, dict(self.extra_headers), dict(self.extra_query)),
        )


# Frozen, with empty read-only mappings: safe to share between every call without overrides.
_NO_OVERRIDES = CallOptions()


def _validate_inputs(inputs: object) -> str | list[str]:
    if inputs is None:
        raise InvalidArgumentTypeError("inputs", "is required: a string or a list of strings")
    if isinstance(inputs, str):
        if not inputs:
            raise InvalidArgumentValueError("inputs", "must not be an empty string")
        _check_text(inputs, "inputs")
        return inputs
    # A list (the usual argument) is a Sequence and nothing refused: skip the ABC checks.
    if type(inputs) is not list and (
        isinstance(inputs, (bytes, bytearray, Mapping)) or not isinstance(inputs, Sequence)
    ):
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
        if not item.isascii():  # the common case skips the call
            _check_text(item, f"inputs[{i}]")
    return list(inputs)


def _validate_optional_str(value: object, argument: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgumentTypeError(argument, f"expected a str, got {type(value).__name__}")
    if not value:
        raise InvalidArgumentValueError(argument, "must not be empty")
    _check_text(value, argument)
    return value


# The body fields the arguments set: extra_body adds fields, it does not bypass the checks.
_NAMED_FIELDS = EMBEDDING_REQUEST_FIELDS


def _validate_extra_body(value: object) -> dict[str, Any]:
    if value is None or value is NOT_GIVEN:  # both mean "nothing extra"
        return {}
    extra = _optional_mapping(value, "extra_body")
    for key in extra:
        if key in _NAMED_FIELDS:
            raise InvalidArgumentValueError(
                f"extra_body[{key!r}]",
                f"{key!r} is set from the call's arguments: pass it as {key}= instead",
            )
    result: dict[str, Any] = _json_value(extra, "extra_body")
    return result


#: ``Operation(method, path, response_type, body, query, stream, parser)``, values checked.
_new_operation: Callable[..., Operation[Any]] = slot_builder(Operation)


@functools.lru_cache(maxsize=256)
def _embeddings_parser(inputs: int, dimensions: int | None) -> EmbeddingsParser:
    # Parsers are immutable values: the common shapes are built once, not per call.
    return EmbeddingsParser(AnswerContract(inputs=inputs, dimensions=dimensions))


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
    if encoding_format not in ENCODING_FORMATS:
        raise InvalidArgumentValueError(
            "encoding_format", f"expected 'float' or 'base64', got {encoding_format!r}"
        )
    body["encoding_format"] = encoding_format
    if dimensions is not None:
        body["dimensions"] = validate_count(dimensions, "dimensions", minimum=1)
    if not isinstance(stream, bool):
        raise InvalidArgumentTypeError("stream", f"expected a bool, got {type(stream).__name__}")
    if stream:
        body["stream"] = True
    if extra_body is not None and extra_body is not NOT_GIVEN:
        body.update(_validate_extra_body(extra_body))
    # Every value is checked above: set the slots directly (see `slot_builder`).
    return _new_operation(
        "POST",
        EMBEDDINGS_PATH,
        CreateEmbeddingResponse,
        body,
        None,
        stream,
        _embeddings_parser(
            1 if isinstance(body["inputs"], str) else len(body["inputs"]), body.get("dimensions")
        ),
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
    from .matrix import EmbeddingMatrix, MatrixParser

    require_numpy()  # before anything is sent
    plain = create_embeddings(
        inputs=inputs,
        model=model,
        encoding_format="base64",
        dimensions=dimensions,
        extra_body=extra_body,
    )
    # extra_body cannot override encoding_format (see _validate_extra_body): base64 it is.
    body = dict(plain.body or {})
    return Operation(
        method="POST",
        path=EMBEDDINGS_PATH,
        response_type=EmbeddingMatrix,
        body=body,
        parser=MatrixParser(AnswerContract.for_body(body)),
    )


def list_models() -> Operation[ModelList]:
    """The ``GET /models`` operation."""
    return Operation(
        method="GET", path=MODELS_PATH, response_type=ModelList, parser=parse_model_list
    )


def retrieve_model(model_id: object) -> Operation[Model]:
    """The ``GET /models/{model_id}`` operation."""
    if not isinstance(model_id, str):
        raise InvalidArgumentTypeError("model_id", f"expected a str, got {type(model_id).__name__}")
    if not model_id.strip():
        raise InvalidArgumentValueError("model_id", "must not be empty")
    _check_text(model_id, "model_id")
    segment = quote(model_id, safe="")
    if segment in (".", ".."):
        segment = segment.replace(".", "%2E")
    return Operation(
        method="GET",
        path=f"{MODELS_PATH}/{segment}",
        response_type=Model,
        parser=parse_model_answer,
    )
