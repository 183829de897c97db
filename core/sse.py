"""An incremental, sans-IO decoder for Server-Sent Events (``text/event-stream``).

It follows the WHATWG HTML "event stream interpretation" rules: feed it the bytes of a response
body in chunks of any size, and it returns the events each chunk completes. It never does IO and
never blocks, so the sync and async transports share it.

Memory is bounded: a line that grows past ``max_line_bytes`` raises `SSEDecodeError` while it is
still incomplete (so a server that never sends a newline cannot exhaust memory, however the bytes
are chunked), and so does an event whose data grows past ``max_event_bytes``.
"""

from __future__ import annotations

import enum
from typing import NoReturn

import attrs

from .errors import SSEDecodeError

__all__ = ["SSEDecodeError", "SSEDecoder", "ServerSentEvent"]

_BOM = b"\xef\xbb\xbf"
_CR = 0x0D
_LF = 0x0A
# Python's int() refuses (or, with the limit lifted, is quadratic on) huge digit strings. No
# sane reconnection time has this many digits, and 640 is the lowest limit CPython lets
# sys.set_int_max_str_digits() set, so int() on a shorter string can never fail.
_MAX_RETRY_DIGITS = 640


@attrs.frozen
class ServerSentEvent:
    """One dispatched Server-Sent Event.

    Attributes:
        event: the event type; ``"message"`` when the event had no (or an empty) ``event:`` field.
        data: the values of the event's ``data:`` lines, joined with newlines.
        id: the last event ID in effect when the event was dispatched. As in the spec it persists
            across events until the server sends another ``id:``; None if it never sent one, and
            ``""`` if it reset it with an empty ``id:`` (send no ``Last-Event-ID`` then).
        retry: the reconnection time in milliseconds from this event's ``retry:`` field, if it had
            a valid one (see also `SSEDecoder.reconnection_time`).
    """

    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None


class _State(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"
    ERROR = "error"


class SSEDecoder:
    """Turns the bytes of an event stream into `ServerSentEvent` objects, incrementally.

    Feed the body with `feed` in chunks of any size, then call `close` at the end of the body.
    Before (or after) closing, `has_pending_data` tells whether the body stopped in the middle of
    a line or an event, i.e. whether the stream was probably truncated.

    After an `SSEDecodeError` the decoder is in an error state and every later `feed` raises
    again; events completed earlier in the chunk that raised are not returned.

    Args:
        max_line_bytes: the longest line (without its line ending) accepted, in bytes.
        max_event_bytes: the most data (the ``data:`` values joined with newlines, in bytes) one
            event may carry.
    """

    def __init__(self, *, max_line_bytes: int = 1 << 20, max_event_bytes: int = 64 << 20) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be at least 1")
        if max_event_bytes < 1:
            raise ValueError("max_event_bytes must be at least 1")
        self._max_line_bytes = max_line_bytes
        self._max_event_bytes = max_event_bytes
        self._state = _State.OPEN
        # Bytes of the current, unfinished line. Invariant between calls: it holds no CR or LF,
        # so a new chunk only needs scanning from its own start (no re-scan of old bytes), and
        # its length is at most max(max_line_bytes, 2): before the first line, up to two bytes
        # of a possible BOM are held until the third tells whether it is one.
        self._buf = bytearray()
        # Nothing but (a prefix of) a BOM has been seen yet: a BOM is only skipped there.
        self._at_start = True
        # The previous chunk ended with CR: a LF starting the next chunk belongs to that CR.
        self._pending_cr = False
        # The event being built. Data is kept as undecoded lines and decoded once at dispatch.
        self._data: list[bytes] = []
        self._data_bytes = 0
        self._event_type = ""
        self._id_buffer: str | None = None
        self._retry: int | None = None
        # A field line was seen since the last blank line (so an event is under way).
        self._in_event = False
        self._last_event_id: str | None = None
        self._reconnection_time: int | None = None
        # Once closed or failed, has_pending_data reports this: whether data was discarded.
        self._discarded = False

    @property
    def last_event_id(self) -> str | None:
        """The last event ID string, updated at each blank line; None until the server sends one.

        An ``id:`` in an event that never ended (no blank line before the end of the stream)
        does not count, so this is the ID to resume from with the ``Last-Event-ID`` header
        (when it is not empty).
        """
        return self._last_event_id

    @property
    def reconnection_time(self) -> int | None:
        """The reconnection time (ms) from the latest valid ``retry:`` field, None if none yet.

        Unlike `ServerSentEvent.retry` this also covers ``retry:`` fields in blocks that
        dispatch no event (such as ``retry: 5000`` followed by a blank line).
        """
        return self._reconnection_time

    @property
    def has_pending_data(self) -> bool:
        """True if an unfinished line or an undispatched event is buffered.

        After `close` (or an `SSEDecodeError`) it tells whether data was discarded. A stream
        that ends while this is True was cut off mid-line or mid-event; complete comment lines
        and blank lines never make it True.
        """
        if self._state is not _State.OPEN:
            return self._discarded
        return bool(self._buf) or self._in_event

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        """Decode the next chunk of the stream; return the events it completes, in order.

        Raises:
            SSEDecodeError: a line or an event's data exceeds its limit, or the decoder was
                closed or failed before.
        """
        if self._state is not _State.OPEN:
            if self._state is _State.CLOSED:
                raise SSEDecodeError("SSE decoder fed after close()")
            raise SSEDecodeError("SSE decoder fed after a previous SSEDecodeError")
        if type(data) is not bytes:
            # bytearray or memoryview chunks (readinto buffers): find/splitlines need bytes, and
            # the buffered tail must not alias memory the caller will reuse.
            data = bytes(data)
        if not data:
            return []
        buf = self._buf
        if self._at_start:
            if buf:
                data = bytes(buf) + data
                buf.clear()
            if len(data) < len(_BOM) and _BOM.startswith(data):
                # Too early to tell whether the stream starts with a BOM; wait for more.
                buf += data
                return []
            self._at_start = False
            if data.startswith(_BOM):
                data = data[len(_BOM) :]
                if not data:
                    return []
        if self._pending_cr:
            self._pending_cr = False
            if data[0] == _LF:
                data = data[1:]
                if not data:
                    return []
        max_line = self._max_line_bytes
        has_cr = b"\r" in data
        if not has_cr and b"\n" not in data:
            # Still inside one line: only the new bytes were scanned, and the length check
            # happens now, before the line is complete and before buffering, which is what
            # bounds memory.
            if len(buf) + len(data) > max_line:
                self._fail(f"SSE line longer than {max_line} bytes (max_line_bytes)")
            buf += data
            return []
        events: list[ServerSentEvent] = []
        # The common cases, LF or CRLF line endings: walk the chunk with find() (memchr) and
        # slice values straight out of it, rather than splitting it into line copies first. A CR
        # right before a LF is part of the ending; any other CR (a CR line ending) hands the
        # rest of the chunk to the general path.
        find = data.find
        pos = 0
        nl = find(b"\n")
        while nl >= 0:
            end = nl - 1 if has_cr and nl > pos and data[nl - 1] == _CR else nl
            if has_cr and find(b"\r", pos, end) >= 0:
                self._feed_lines(data[pos:], events)
                return events
            if buf:
                # Only the first line continues the buffered bytes; the rest of the chunk is
                # not copied for it.
                line = bytes(buf) + data[:end]
                buf.clear()
                self._line(line, 0, len(line))
            elif end == pos:
                event = self._dispatch()
                if event is not None:
                    events.append(event)
            else:
                self._line(data, pos, end)
            pos = nl + 1
            nl = find(b"\n", pos)
        if has_cr and find(b"\r", pos) >= 0:
            self._feed_lines(data[pos:], events)
            return events
        if pos < len(data):
            if len(data) - pos > max_line:
                self._fail(f"SSE line longer than {max_line} bytes (max_line_bytes)")
            buf += data[pos:]
        return events

    def _feed_lines(self, data: bytes, events: list[ServerSentEvent]) -> None:
        # The general case, for the part of a chunk from the first line that ends in a lone CR
        # (or in a CR that ends the chunk): splitlines() handles CR, LF and CRLF alike. The
        # buffered bytes are still unconsumed when this is called.
        buf = self._buf
        if buf:
            data = bytes(buf) + data
            buf.clear()
        lines = data.splitlines()
        last = data[-1]
        if last == _CR:
            # If the next chunk starts with LF, it completes this CRLF rather than ending a line.
            self._pending_cr = True
        elif last != _LF:
            tail = lines.pop()
            if len(tail) > self._max_line_bytes:
                self._fail(f"SSE line longer than {self._max_line_bytes} bytes (max_line_bytes)")
            buf += tail
        for line in lines:
            if line:
                self._line(line, 0, len(line))
            else:
                event = self._dispatch()
                if event is not None:
                    events.append(event)

    def close(self) -> None:
        """Mark the end of the stream; an unfinished line or event is discarded (as the spec says).

        Idempotent. Afterwards `feed` raises; `has_pending_data` tells whether data was
        discarded.
        """
        if self._state is _State.OPEN:
            self._discarded = self.has_pending_data
        self._state = _State.CLOSED
        self._buf = bytearray()
        self._data = []
        self._data_bytes = 0

    def _fail(self, message: str) -> NoReturn:
        self._state = _State.ERROR
        # The offending line or event is lost, so report it as discarded data.
        self._discarded = True
        raise SSEDecodeError(message)

    def _line(self, buf: bytes, start: int, end: int) -> None:
        """Interpret the non-empty line ``buf[start:end]`` (slicing only what is needed)."""
        if end - start > self._max_line_bytes:
            self._fail(f"SSE line longer than {self._max_line_bytes} bytes (max_line_bytes)")
        colon = buf.find(b":", start, end)
        if colon == start:
            return  # a comment (often a keep-alive)
        self._in_event = True
        if colon < 0:
            name = buf[start:end]
            value = b""
        else:
            name = buf[start:colon]
            # Exactly one space after the colon is part of the syntax, not of the value.
            vstart = colon + 2 if buf.startswith(b" ", colon + 1, end) else colon + 1
            value = buf[vstart:end]
        # Names are compared as bytes: decoding cannot turn other bytes into these ASCII names.
        if name == b"data":
            # Each line adds its bytes and one "\n"; the last "\n" is dropped at dispatch.
            self._data_bytes += len(value) + 1
            if self._data_bytes > self._max_event_bytes + 1:
                self._fail(
                    f"SSE event data longer than {self._max_event_bytes} bytes (max_event_bytes)"
                )
            self._data.append(value)
        elif name == b"event":
            self._event_type = value.decode("utf-8", "replace")
        elif name == b"id":
            if b"\x00" not in value:
                self._id_buffer = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():
            # bytes.isdigit() is ASCII-only, unlike int(), which also takes "_", spaces and
            # non-ASCII digits; an empty value is not a number either.
            digits = value.lstrip(b"0") or b"0"
            if len(digits) <= _MAX_RETRY_DIGITS:
                self._retry = self._reconnection_time = int(digits)
        # Any other field name is ignored, as the spec requires.

    def _dispatch(self) -> ServerSentEvent | None:
        # The last event ID is committed at every blank line, even one that dispatches no event,
        # so "id: 5" + blank line (a common keep-alive) still moves the resume point.
        self._last_event_id = self._id_buffer
        self._in_event = False
        event_type = self._event_type
        retry = self._retry
        self._event_type = ""
        self._retry = None
        if not self._data:
            return None
        data = b"\n".join(self._data).decode("utf-8", "replace")
        self._data = []
        self._data_bytes = 0
        return ServerSentEvent(
            event=event_type or "message", data=data, id=self._last_event_id, retry=retry
        )
