"""Parse a successful response body into a model, or raise `APIResponseValidationError`."""

from __future__ import annotations

from array import array
from binascii import a2b_base64
from math import isfinite
from typing import Any, TypeVar

import attrs
import cattrs

from ._json import PIECEWISE_MIN_BYTES, loads, loads_whole
from .answer_contract import AnswerContract, check_answer, model_problem, usage_problem
from .converter import (
    BIG_ENDIAN,
    check_vector,
    default_converter,
    fast_converter,
)
from .errors import APIResponseValidationError
from .models import (
    CreateEmbeddingResponse,
    Model,
    ModelList,
    build_embedding,
    build_embedding_response,
    build_usage,
)
from .request import Request
from .response import ResponseHead

__all__ = [
    "EmbeddingsParser",
    "build_valid_answer",
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
    if contract is None:
        contract = AnswerContract()
    direct = build_valid_answer(data, contract)
    if direct is not None:
        return direct
    return _structure_answer(head, data, request, contract)


def _structure_answer(
    head: ResponseHead, data: Any, request: Request | None, contract: AnswerContract
) -> CreateEmbeddingResponse:
    # The general path of `parse_embeddings`: cattrs structures the answer, then the contract
    # is checked; whatever is wrong raises APIResponseValidationError saying what.
    response = structure(head, data, CreateEmbeddingResponse, request)
    problem = check_answer(
        contract, ((e.index, len(e.embedding)) for e in response.data)
    ) or usage_problem(response.usage.prompt_tokens, response.usage.total_tokens)
    if problem is not None:
        raise contract_error(head, problem, request, data)
    return response


def build_valid_answer(data: Any, contract: AnswerContract) -> CreateEmbeddingResponse | None:
    """The model of a decoded embeddings answer that is plainly valid; None for anything else.

    The common answer (items in index order, every field of its exact JSON type, vectors of one
    length) is built here with a few checks per item instead of cattrs' generic hooks: about
    half the cost of a small answer's parse. It is never more lenient: whatever it does not
    recognise as valid (a missing field, a wrong type, indexes out of order, a bad vector, a
    broken contract) returns None, and the general path (cattrs, then the `AnswerContract`
    check) structures the answer or says what is wrong with it.
    """
    if type(data) is not dict:
        return None
    items = data.get("data")
    model = data.get("model")
    usage = data.get("usage")
    kind = data.get("object", "list")
    if type(items) is not list or type(model) is not str or type(kind) is not str:
        return None
    if type(usage) is not dict or not items:
        return None
    prompt_tokens = usage.get("prompt_tokens")
    total_tokens = usage.get("total_tokens")
    if type(prompt_tokens) is not int or type(total_tokens) is not int:
        return None
    if prompt_tokens < 0 or total_tokens < 0:
        return None
    if contract.inputs is not None and len(items) != contract.inputs:
        return None
    dimensions = contract.dimensions
    embeddings = []
    for index, item in enumerate(items):
        if type(item) is not dict or item.get("index") != index or type(item["index"]) is not int:
            return None
        vector = item.get("embedding")
        item_kind = item.get("object", "embedding")
        if type(item_kind) is not str:
            return None
        try:
            if type(vector) is str:
                # decode_base64_vector() and check_finite() inlined, for every vector of the
                # default format: whatever they would refuse returns None here (binascii.Error
                # is a ValueError), and the general path says what is wrong.
                raw = a2b_base64(vector)
                if len(raw) % 4:
                    return None
                floats = array("f", raw)
                if BIG_ENDIAN:  # pragma: no cover - the wire is little-endian
                    floats.byteswap()
                vector = floats.tolist()
                if not isfinite(sum(vector)):  # a finite sum: every float32 is finite
                    return None
            elif type(vector) is list:
                check_vector(vector)
            else:
                return None
        except (TypeError, ValueError):
            return None
        if dimensions is None:
            dimensions = len(vector)
        if len(vector) != dimensions or not vector:
            return None
        embeddings.append(build_embedding(object=item_kind, index=index, embedding=vector))
    # The models' own constructors without their generic steps: every value is checked above.
    return build_embedding_response(  # type: ignore[no-any-return]
        object=kind,
        data=embeddings,
        model=model,
        usage=build_usage(prompt_tokens=prompt_tokens, total_tokens=total_tokens),
    )


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
        # parse_embeddings() inlined, for the answer of every call: a small body is decoded
        # at once, and a valid answer built without the general path's frames.
        try:
            data = loads_whole(body) if len(body) < PIECEWISE_MIN_BYTES else loads(body)
        except (ValueError, TypeError, RecursionError):
            data = parse_json(head, body, request)  # raises the error parse_embeddings raises
        direct = build_valid_answer(data, self.contract)
        if direct is not None:
            return direct
        return _structure_answer(head, data, request, self.contract)


def _describe(exc: Exception) -> str:
    if isinstance(exc, (cattrs.ClassValidationError, cattrs.IterableValidationError)):
        return "; ".join(cattrs.transform_error(exc, path="body"))[:1000]
    return f"{type(exc).__name__}: {exc}"[:1000]
