"""Parse a successful response body into a model, or raise `APIResponseValidationError`."""

from __future__ import annotations

from typing import Any, TypeVar

import attrs
import cattrs

from ._json import loads
from .answer_contract import AnswerContract, check_answer, model_problem, usage_problem
from .converter import default_converter, fast_converter
from .errors import APIResponseValidationError
from .models import CreateEmbeddingResponse, Model, ModelList
from .request import Request
from .response import ResponseHead

__all__ = [
    "EmbeddingsParser",
    "contract_error",
    "parse_embeddings",
    "parse_json",
    "parse_model",
    "parse_model_answer",
    "parse_model_list",
    "structure",
]

T = TypeVar("T")


def parse_json(head: ResponseHead, body: bytes, request: Request | None = None) -> Any:
    """Decode a 2xx JSON body, turning any decode failure into `APIResponseValidationError`."""
    try:
        return loads(body)
    except (ValueError, TypeError, RecursionError) as exc:
        raise APIResponseValidationError(
            f"the response body is not valid JSON ({exc})",
            status_code=head.status_code,
            request_id=head.request_id,
            body=bytes(body[:1024]),
            request=request,
        ) from None


def structure(
    head: ResponseHead,
    data: Any,
    cls: type[T],
    request: Request | None = None,
    converter: cattrs.Converter | None = None,
) -> T:
    """Structure decoded JSON into ``cls``; a mismatch raises `APIResponseValidationError`."""
    if converter is None:
        try:
            return fast_converter().structure(data, cls)
        except Exception:
            converter = default_converter()
    try:
        return converter.structure(data, cls)
    except Exception as exc:
        raise APIResponseValidationError(
            "the response does not match the API contract: " + _describe(exc),
            status_code=head.status_code,
            request_id=head.request_id,
            body=data,
            request=request,
        ) from exc


def parse_model(head: ResponseHead, body: bytes, cls: type[T], request: Request | None = None) -> T:
    """Decode and structure a 2xx JSON body into ``cls``."""
    return structure(head, parse_json(head, body, request), cls, request)


def contract_error(
    head: ResponseHead, problem: str, request: Request | None = None, body: object = None
) -> APIResponseValidationError:
    """The error for a 2xx answer that breaks the API contract in the way ``problem`` says."""
    return APIResponseValidationError(
        f"the response does not match the API contract: {problem}",
        status_code=head.status_code,
        request_id=head.request_id,
        body=body,
        request=request,
    )


def parse_embeddings(
    head: ResponseHead,
    body: bytes,
    request: Request | None = None,
    contract: AnswerContract | None = None,
) -> CreateEmbeddingResponse:
    """Parse an embeddings answer and check it against the request's `AnswerContract`.

    One embedding per input (indexes a permutation of the inputs), one number of dimensions
    for all (``dimensions`` when asked), finite numbers only: anything else raises
    `APIResponseValidationError`.
    """
    data = parse_json(head, body, request)
    response = structure(head, data, CreateEmbeddingResponse, request)
    problem = check_answer(
        contract or AnswerContract(), ((e.index, len(e.embedding)) for e in response.data)
    ) or usage_problem(response.usage.prompt_tokens, response.usage.total_tokens)
    if problem is not None:
        raise contract_error(head, problem, request, data)
    return response


def parse_model_answer(head: ResponseHead, body: bytes, request: Request | None = None) -> Model:
    """Parse the answer of ``GET /models/{id}``, checking the model (id, dimensions)."""
    data = parse_json(head, body, request)
    model = structure(head, data, Model, request)
    problem = model_problem(model.id, model.dimensions)
    if problem is not None:
        raise contract_error(head, problem, request, data)
    return model


def parse_model_list(head: ResponseHead, body: bytes, request: Request | None = None) -> ModelList:
    """Parse the answer of ``GET /models``, checking every model (id, dimensions)."""
    data = parse_json(head, body, request)
    models = structure(head, data, ModelList, request)
    for model in models.data:
        problem = model_problem(model.id, model.dimensions)
        if problem is not None:
            raise contract_error(head, problem, request, data)
    return models


@attrs.frozen
class EmbeddingsParser:
    """`parse_embeddings` bound to the contract of one request (an `Operation`'s parser)."""

    contract: AnswerContract

    def __call__(
        self, head: ResponseHead, body: bytes, request: Request | None = None
    ) -> CreateEmbeddingResponse:
        """Parse and check ``body`` (see `parse_embeddings`)."""
        return parse_embeddings(head, body, request, self.contract)


def _describe(exc: Exception) -> str:
    if isinstance(exc, (cattrs.ClassValidationError, cattrs.IterableValidationError)):
        return "; ".join(cattrs.transform_error(exc, path="body"))[:1000]
    return f"{type(exc).__name__}: {exc}"[:1000]
