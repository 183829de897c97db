"""A bounded buffer for response bodies, so that no server can make the client exhaust memory."""

from __future__ import annotations

from .errors import ResponseTooLargeError

__all__ = ["BodyBuffer"]


class BodyBuffer:
    """Collects the chunks of one body; raises `ResponseTooLargeError` past ``max_bytes``."""

    __slots__ = ("_chunks", "_max_bytes", "_size")

    def __init__(self, max_bytes: int) -> None:
        self._chunks: list[bytes] = []
        self._size = 0
        self._max_bytes = max_bytes

    def feed(self, chunk: bytes) -> None:
        """Add one chunk (of any size, empty included)."""
        self._size += len(chunk)
        if self._size > self._max_bytes:
            self._chunks.clear()
            raise ResponseTooLargeError(
                f"the response body is larger than max_response_bytes ({self._max_bytes} bytes)"
            )
        if chunk:
            self._chunks.append(chunk)

    def getvalue(self) -> bytes:
        """The whole body so far."""
        if len(self._chunks) == 1:
            return self._chunks[0]
        return b"".join(self._chunks)
