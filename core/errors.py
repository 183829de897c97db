"""The exceptions the library raises on purpose; every one of them derives from `APIError`.

They live in the core because the core decides which one a response or a failure becomes; the
facade re-exports them all from `aligneai`. No message built here ever contains the API key:
messages are made from statuses, server-provided error texts and argument names only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Union

from .headers import Headers
from .wire import REQUEST_ID

if TYPE_CHECKING:
    from .request import Request
    from .response import ResponseHead

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "InternalServerError",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "InvalidArgumentValueError",
    "MissingAPIKeyError",
    "MissingDependencyError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponseTooLargeError",
    "SSEDecodeError",
    "UnprocessableEntityError",
    "status_error_class",
]


class APIError(Exception):
    """The base of every exception this library raises on purpose.

    Attributes:
        message: a human-readable description.
        request: the request that was being made, when there was one (its repr hides the key).
    """

    message: str
    request: Request | None

    def __init__(self, message: str, *, request: Request | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.request = request

    def __reduce__(self) -> tuple[Any, ...]:
        # Exceptions pickle through their args, but ours take keyword arguments: rebuild from
        # the instance state instead, so errors survive multiprocessing and pickling.
        return (_rebuild_error, (type(self), self.args, self.__dict__))


def _rebuild_error(cls: type[APIError], args: tuple[Any, ...], state: dict[str, Any]) -> APIError:
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    err.__dict__.update(state)
    return err


class MissingAPIKeyError(APIError):
    """No API key was given and the ``ALIGNEAI_API_KEY`` environment variable is not set."""


class MissingDependencyError(APIError, ImportError):
    """An optional dependency (an extra such as ``aligneai[aiohttp]``) is not installed."""


class InvalidArgumentError(APIError):
    """An argument to a public function is invalid; raised before anything is sent.

    Attributes:
        argument: the name of the offending argument (e.g. ``"inputs"`` or ``"inputs[3]"``).
    """

    argument: str

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(f"{argument}: {message}")
        self.argument = argument


class InvalidArgumentTypeError(InvalidArgumentError, TypeError):
    """An argument has the wrong type (also a `TypeError`)."""


class InvalidArgumentValueError(InvalidArgumentError, ValueError):
    """An argument has the right type but an invalid value (also a `ValueError`)."""


class APIConnectionError(APIError):
    """The API could not be reached, or the connection failed before a full answer arrived."""

    def __init__(self, message: str = "Connection error.", *, request: Request | None = None):
        super().__init__(message, request=request)


class APITimeoutError(APIConnectionError):
    """A connect, read or total timeout expired."""

    def __init__(self, message: str = "Request timed out.", *, request: Request | None = None):
        super().__init__(message, request=request)


class ResponseTooLargeError(APIError):
    """A response body was larger than the client's ``max_response_bytes``."""


class SSEDecodeError(APIError):
    """A Server-Sent Events stream broke the protocol or one of the decoder's size bounds."""


class APIResponseValidationError(APIError):
    """A successful (2xx) response whose body does not match the API contract.

    Attributes:
        status_code: the HTTP status of the response.
        request_id: the ``x-request-id`` header, if the server sent one.
        body: the decoded JSON body, or the raw bytes when it was not JSON.
    """

    status_code: int
    request_id: str | None
    body: object

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        request_id: str | None = None,
        body: object = None,
        request: Request | None = None,
    ) -> None:
        super().__init__(message, request=request)
        self.status_code = status_code
        self.request_id = request_id
        self.body = body


class APIStatusError(APIError):
    """The API answered with a non-success (4xx or 5xx) status.

    Attributes:
        status_code: the HTTP status.
        request_id: the ``x-request-id`` header, if any.
        headers: the response headers, a read-only case-insensitive `Headers` mapping
            (``err.headers["Retry-After"]`` and ``err.headers.get("retry-after")`` agree).
        body: the decoded JSON body, the text of a non-JSON body, or None when empty.
        type, code, param: the fields of the contract's error object, when present.
        response: the response head (status and headers).
    """

    status_code: int
    request_id: str | None
    headers: Headers
    body: object
    type: str | None
    code: str | None
    param: str | None
    response: ResponseHead | None

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        headers: Union[Mapping[str, str], Iterable[tuple[str, str]], None] = None,  # noqa: UP007
        body: object = None,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        request: Request | None = None,
        response: ResponseHead | None = None,
    ) -> None:
        super().__init__(message, request=request)
        self.status_code = status_code
        self.headers = Headers(headers)
        self.request_id = self.headers.get(REQUEST_ID)
        self.body = body
        self.type = type
        self.code = code
        self.param = param
        self.response = response

    def __str__(self) -> str:
        rid = f" (request id {self.request_id})" if self.request_id else ""
        return f"Error code: {self.status_code}{rid} - {self.message}"


class BadRequestError(APIStatusError):
    """400 Bad Request."""


class AuthenticationError(APIStatusError):
    """401 Unauthorized: the API key is missing or not valid."""


class PermissionDeniedError(APIStatusError):
    """403 Forbidden."""


class NotFoundError(APIStatusError):
    """404 Not Found."""


class UnprocessableEntityError(APIStatusError):
    """422 Unprocessable Entity."""


class RateLimitError(APIStatusError):
    """429 Too Many Requests."""


class InternalServerError(APIStatusError):
    """Any status of 500 or above."""


_STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error_class(status_code: int) -> type[APIStatusError]:
    """Return the `APIStatusError` subclass for an HTTP status (plain `APIStatusError` if none)."""
    if status_code >= 500:
        return InternalServerError
    return _STATUS_ERRORS.get(status_code, APIStatusError)
