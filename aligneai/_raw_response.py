"""The raw response of a call (status, headers, timings) and the parsing of its body."""

from __future__ import annotations

from typing import Generic, TypeVar

from aligneai.core.flow import FlowResult
from aligneai.core.headers import Headers
from aligneai.core.operations import Operation
from aligneai.core.parsing import parse_model

__all__ = ["RawResponse", "parse_result"]

T = TypeVar("T")


def parse_result(operation: Operation[T], result: FlowResult) -> T:
    """Parse the body of a finished non-streaming flow into the operation's model."""
    assert result.body is not None
    if operation.parser is not None:
        return operation.parser(result.head, result.body, result.request)
    return parse_model(result.head, result.body, operation.response_type, result.request)


class RawResponse(Generic[T]):
    """What ``with_raw_response`` methods return.

    Attributes:
        status_code: the HTTP status of the final attempt.
        headers: its headers, a read-only case-insensitive `Headers` mapping.
        request_id: its ``x-request-id``.
        retries_taken: how many retries the call needed (0 if the first attempt succeeded).
        elapsed: seconds from the start of the call to the final response head.
        content: the raw body.
    """

    __slots__ = ("_operation", "_parsed", "_result")

    def __init__(self, operation: Operation[T], result: FlowResult) -> None:
        self._operation = operation
        self._result = result
        self._parsed: T | None = None

    @property
    def status_code(self) -> int:
        """The HTTP status."""
        return self._result.head.status_code

    @property
    def headers(self) -> Headers:
        """The response headers; lookups ignore case (``headers["Content-Type"]``)."""
        return self._result.head.headers

    @property
    def request_id(self) -> str | None:
        """The server's ``x-request-id``."""
        return self._result.head.request_id

    @property
    def retries_taken(self) -> int:
        """How many retries the call needed."""
        return self._result.retries_taken

    @property
    def elapsed(self) -> float:
        """Seconds from the start of the call until the final response arrived."""
        return self._result.elapsed

    @property
    def content(self) -> bytes:
        """The raw response body."""
        return self._result.body or b""

    def parse(self) -> T:
        """Parse the body into the typed model (once; later calls return the same object)."""
        if self._parsed is None:
            self._parsed = parse_result(self._operation, self._result)
        return self._parsed

    def __repr__(self) -> str:
        return (
            f"<RawResponse {self.status_code} request_id={self.request_id!r} "
            f"retries_taken={self.retries_taken} elapsed={self.elapsed:.3f}s>"
        )
