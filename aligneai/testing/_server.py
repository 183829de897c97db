"""The local AligneAI server: a faithful fake of the REST API v1 with fault injection.

Standard library only (``http.server``), so ``aligneai embed --local`` works on a bare install
and tests can run it in a background thread::

    with LocalServer() as server:
        client = AligneAI(api_key="test", base_url=server.url)
        server.enqueue(StatusFault(503).with_headers(retry_after=0), NoFault())
        ...

What it answers lives in `_api` (pure functions); this module adds sockets, keep-alive,
chunked event streams, request recording and the faults of `_faults`.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import json
import math
import random
import signal
import socket
import socketserver
import sys
import threading
import time
import types
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO
from urllib.parse import parse_qs, urlsplit

from aligneai.core._version import __version__
from aligneai.core.errors import InvalidArgumentTypeError, InvalidArgumentValueError
from aligneai.core.wire import (
    EVENT_DONE,
    EVENT_EMBEDDING,
    EVENT_ERROR,
    EVENT_STREAM_CONTENT_TYPE,
    REQUEST_ID,
)
from aligneai.testing import _api
from aligneai.testing._faults import (
    ContractViolation,
    Delay,
    DropBeforeHeaders,
    DropMidBody,
    Fault,
    FaultSchedule,
    HtmlFault,
    MalformedJson,
    NoFault,
    SlowBody,
    SseCutMidEvent,
    SseDrop,
    SseErrorEvent,
    SseShuffle,
    StallBody,
    StatusFault,
    TruncatedJson,
    contract_violation_payload,
)
from aligneai.testing._ratelimit import RateLimiter, format_reset, retry_after_headers

__all__ = ["DEFAULT_MAX_BODY_BYTES", "LocalServer", "RecordedRequest", "ServerStats", "serve"]

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
_STOP_JOIN_SECONDS = 5.0
_LINGER_SECONDS = 2.0
_Headers = tuple[tuple[str, str], ...]

# What `MalformedJson` sends: starts like JSON, so only a real parser notices.
_MALFORMED_JSON = b'{"object": "list", "data": [{"object": "embedding", "index": 0, embedding: ]'
# What `HtmlFault` sends: the error page of an nginx in front of the API.
_HTML_PAGE = (
    "<html>\r\n<head><title>{code} {phrase}</title></head>\r\n<body>\r\n"
    "<center><h1>{code} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received, as it arrived.

    Attributes:
        method: the HTTP method.
        path: the path without the query (e.g. ``"/v1/embeddings"``).
        query: the query parameters, each with all its values.
        headers: the headers, names in lower case (repeated headers joined with ``", "``).
        body: the raw body.
        json: the body decoded as JSON, or None when it is not JSON.
        fault: the fault the request got, or None when it was answered normally (`NoFault`).
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    json: Any
    fault: Fault | None = None


@dataclass(frozen=True)
class ServerStats:
    """What a `LocalServer` has done since it was built or last `reset` (for benchmarks).

    Attributes:
        requests: every request received (answered, refused or faulted).
        accepted: embeddings requests admitted (past validation, the token cap and the limiter).
        rate_limited: requests refused with 429 by the rate limiter (injected faults excluded).
        tokens: tokens of the accepted embeddings requests (`count_tokens`; what ``usage`` says).
        inputs: texts in the accepted embeddings requests.
    """

    requests: int = 0
    accepted: int = 0
    rate_limited: int = 0
    tokens: int = 0
    inputs: int = 0


@dataclass(frozen=True)
class _Settings:
    """The behaviour settings of a `LocalServer` (validated by its constructor)."""

    api_key: str | None
    request_log_limit: int
    max_body_bytes: int
    verbose: bool
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_request_tokens: int | None = None
    latency: float = 0.0
    latency_per_input: float = 0.0


class _RequestTooLarge(Exception):
    pass


class _BadFraming(Exception):
    pass


class _State:
    """What the handler threads share: settings, faults, limiter, counters and the request log."""

    def __init__(
        self,
        settings: _Settings,
        clock: Callable[[], float],
        sleep: Callable[[float], None] | None,
    ) -> None:
        self.api_key = settings.api_key
        self.max_body_bytes = settings.max_body_bytes
        self.verbose = settings.verbose
        self.settings = settings
        self.clock = clock
        self.sleep = sleep
        self.schedule = FaultSchedule()
        self.stopping = threading.Event()
        self.limiter: RateLimiter | None = None
        if settings.requests_per_minute is not None or settings.tokens_per_minute is not None:
            self.limiter = RateLimiter(
                settings.requests_per_minute, settings.tokens_per_minute, clock()
            )
        self._stats_lock = threading.Lock()
        self._stats = ServerStats()
        self._log_lock = threading.Lock()
        self._log: collections.deque[RecordedRequest] = collections.deque(
            maxlen=settings.request_log_limit
        )

    def count(self, **increments: int) -> None:
        """Add to the counters of `ServerStats` (by field name)."""
        with self._stats_lock:
            self._stats = ServerStats(
                **{
                    name: value + increments.get(name, 0)
                    for name, value in vars(self._stats).items()
                }
            )

    def stats(self) -> ServerStats:
        """The counters now."""
        with self._stats_lock:
            return self._stats

    def reset_counters(self) -> None:
        """Zero the counters and refill the rate-limit buckets."""
        with self._stats_lock:
            self._stats = ServerStats()
        if self.limiter is not None:
            self.limiter.refill(self.clock())

    def record(self, request: RecordedRequest) -> None:
        with self._log_lock:
            self._log.append(request)

    def recorded(self) -> list[RecordedRequest]:
        with self._log_lock:
            return list(self._log)

    def clear_log(self) -> None:
        with self._log_lock:
            self._log.clear()


def _decode_json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _sse(event: str, data: bytes) -> bytes:
    return b"event: " + event.encode("ascii") + b"\ndata: " + data + b"\n\n"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


_LAST_CHUNK = b"0\r\n\r\n"


@dataclass(frozen=True)
class _Request:
    """The parts of a request the contract answers (the method is the handler's)."""

    path: str
    headers: dict[str, str]
    body: bytes


# Sends a body's pieces (``stream``: the pieces are events or chunks, else parts of one body);
# False when it ended the connection early.
_Writer = Callable[[Sequence[bytes], bool], bool]
# Turns a stream's items and ``done`` object into the events to send.
_Events = Callable[[list[Any], Any], list[bytes]]


def _events(items: list[Any], done: Any) -> list[bytes]:
    """The normal stream: one ``embedding`` event per item, then ``done``."""
    events = [_sse(EVENT_EMBEDDING, _api.encode_json(item)) for item in items]
    events.append(_sse(EVENT_DONE, _api.encode_json(done)))
    return events


def _cut_events(after_items: int, items: list[Any], done: Any) -> list[bytes]:
    """Whole events first, then half of the next one (the ``done`` event if none is left)."""
    events = _events(items, done)
    cut = min(after_items, len(events) - 1)
    return [*events[:cut], events[cut][: len(events[cut]) // 2]]


def _error_events(fault: SseErrorEvent, items: list[Any], done: Any) -> list[bytes]:
    """``after_items`` embedding events, then the ``error`` event instead of the rest."""
    code = fault.status_code
    data = {"error": _api.default_error_payload(code, fault.message)["error"], "status": code}
    kept = _events(items, done)[: min(fault.after_items, len(items))]
    return [*kept, _sse(EVENT_ERROR, _api.encode_json(data))]


def _shuffled_events(seed: int, items: list[Any], done: Any) -> list[bytes]:
    shuffled = list(items)
    random.Random(seed).shuffle(shuffled)
    return _events(shuffled, done)


def _truncated_json(answer: _api.JsonAnswer) -> bytes:
    full = _api.encode_json(answer.payload)
    return full[: len(full) // 2]


def _contract_violation(answer: _api.JsonAnswer) -> bytes:
    source = answer.payload if answer.status == 200 else {}
    return _api.encode_json(contract_violation_payload(source))


class _Handler(BaseHTTPRequestHandler):
    """Serves one connection: keep-alive requests, each answered by `_api` and a fault."""

    protocol_version = "HTTP/1.1"
    server_version = f"aligneai-local/{__version__}"
    sys_version = ""
    server: _HTTPServer
    # Per request: the limiter's headers once it decided (else a snapshot is sent), and the
    # embeddings request it admitted (which gets the configured latency).
    _limit_headers: _Headers | None = None
    _admitted: _api.EmbeddingRequest | None = None

    def setup(self) -> None:
        super().setup()
        # Small writes (SSE events, slow-body pieces) must leave at once, not wait for an ACK.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # -- plumbing -------------------------------------------------------------------------

    def version_string(self) -> str:
        """Return the ``Server`` header value."""
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        """Write an access log line only when the server is verbose."""
        if self.server.state.verbose:
            super().log_message(format, *args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer protocol errors found by `http.server` (bad request line...) in contract JSON."""
        self.close_connection = True
        body = _api.encode_json(_api.default_error_payload(code, message))
        self._send_head(code, "application/json", len(body), (("Connection", "close"),))
        if self.command != "HEAD":
            self.wfile.write(body)

    def _wait(self, seconds: float) -> bool:
        """Sleep ``seconds``; True when the server is stopping (so the answer is abandoned)."""
        return self.server.state.stopping.wait(seconds)

    def _drop(self) -> None:
        """Close the connection at once, in the middle of whatever was being sent."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _lingering_close(self) -> None:
        """Close after an answer sent before the request body was read.

        Closing a socket with unread input makes the kernel send a reset, which can destroy
        the answer before the client reads it; so stop writing, then discard what the client
        still sends, for a bounded time, before closing.
        """
        self.close_connection = True
        deadline = time.monotonic() + _LINGER_SECONDS
        try:
            self.connection.shutdown(socket.SHUT_WR)
            while time.monotonic() < deadline:
                self.connection.settimeout(max(deadline - time.monotonic(), 0.01))
                if not self.connection.recv(1 << 16):
                    break
        except OSError:
            pass

    def _send_head(
        self, status: int, content_type: str, length: int | None, extra: Iterable[tuple[str, str]]
    ) -> None:
        headers: dict[str, tuple[str, str]] = {}
        defaults: list[tuple[str, str]] = [("Content-Type", content_type)]
        if length is not None:
            defaults.append(("Content-Length", str(length)))
        defaults.append((REQUEST_ID, "req_" + uuid.uuid4().hex))
        state = self.server.state
        limits = self._limit_headers
        if limits is None and state.limiter is not None:
            limits = state.limiter.headers(state.clock())
        defaults.extend(limits or ())
        for name, value in [*defaults, *extra]:
            headers[name.lower()] = (name, value)  # later ones (fault headers) win
        self.send_response(status)
        for name, value in headers.values():
            self.send_header(name, value)
        self.end_headers()

    # -- reading --------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        limit = self.server.state.max_body_bytes
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked(limit)
        raw = self.headers.get("Content-Length")
        if raw is None:
            return b""
        try:
            length = int(raw)
        except ValueError:
            raise _BadFraming(f"invalid Content-Length: {raw!r}") from None
        if length < 0:
            raise _BadFraming(f"invalid Content-Length: {raw!r}")
        if length > limit:
            raise _RequestTooLarge
        body = self.rfile.read(length)
        if len(body) < length:
            raise ConnectionAbortedError("the client closed the connection mid-body")
        return body

    def _read_chunked(self, limit: int) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1026)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BadFraming("invalid chunk size") from None
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers: ignored
                return b"".join(parts)
            total += size
            if total > limit:
                raise _RequestTooLarge
            parts.append(self.rfile.read(size))
            self.rfile.readline(3)

    # -- dispatch -------------------------------------------------------------------------

    def do_GET(self) -> None:
        """Handle a GET request."""
        self._handle()

    def do_POST(self) -> None:
        """Handle a POST request."""
        self._handle()

    def do_PUT(self) -> None:
        """Handle a PUT request (always 405 or 404)."""
        self._handle()

    def do_PATCH(self) -> None:
        """Handle a PATCH request (always 405 or 404)."""
        self._handle()

    def do_DELETE(self) -> None:
        """Handle a DELETE request (always 405 or 404)."""
        self._handle()

    def do_HEAD(self) -> None:
        """Handle a HEAD request (always 405 or 404, without a body)."""
        self._handle()

    def do_OPTIONS(self) -> None:
        """Handle an OPTIONS request (always 405 or 404)."""
        self._handle()

    def parse_request(self) -> bool:
        """Parse the request line and headers; route every method through the contract.

        `http.server` answers 501 to a method without a ``do_<METHOD>`` handler; the API
        answers 405 (with ``Allow``) on a known path and 404 elsewhere, whatever the method
        (``TRACE``, ``CONNECT``, ``PROPFIND``...), so such methods get `_handle` too.
        """
        # A new request on this connection: nothing of the previous one's decision carries over
        # (not even to http.server's own error answers).
        self._limit_headers = None
        self._admitted = None
        if not super().parse_request():
            return False
        handler = "do_" + self.command
        if not hasattr(self, handler):
            setattr(self, handler, self._handle)
        return True

    def _handle(self) -> None:
        try:
            self._handle_request()
        except OSError:
            # The client went away (or the server is stopping): nothing to answer, no traceback.
            self.close_connection = True

    def _handle_request(self) -> None:
        state = self.server.state
        state.count(requests=1)
        split = urlsplit(self.path)
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        query = parse_qs(split.query, keep_blank_values=True)
        try:
            body = self._read_body()
        except (_RequestTooLarge, _BadFraming) as exc:
            state.record(RecordedRequest(self.command, split.path, query, headers, b"", None))
            status, code = (413, "request_too_large")
            message = f"The request body exceeds {state.max_body_bytes} bytes."
            if isinstance(exc, _BadFraming):
                status, code, message = 400, "invalid_framing", str(exc)
            payload = _api.error_payload(status, message, code=code)
            self._send_json(status, payload, (("Connection", "close"),))
            self._lingering_close()
            return
        fault = state.schedule.next_for(split.path)
        # The log keeps its first meaning: None for a request answered normally.
        shown = None if isinstance(fault, NoFault) else fault
        state.record(
            RecordedRequest(
                self.command, split.path, query, headers, body, _decode_json(body), shown
            )
        )
        self._respond(split.path, headers, body, fault)

    def _respond(self, path: str, headers: dict[str, str], body: bytes, fault: Fault) -> None:
        """Answer one request as ``fault`` says: the one place that dispatches on the fault."""
        request = _Request(path, headers, body)
        extra = fault.headers
        if isinstance(fault, NoFault):
            self._answer(request, extra)
        elif isinstance(fault, StatusFault):
            self._send_bytes(fault.status_code, fault.content_type, fault.body, extra)
        elif isinstance(fault, HtmlFault):
            page = _HTML_PAGE.format(
                code=fault.status_code, phrase=_api.status_phrase(fault.status_code)
            )
            self._send_bytes(fault.status_code, "text/html", page.encode("utf-8"), extra)
        elif isinstance(fault, DropBeforeHeaders):
            self._drop()
        elif isinstance(fault, Delay):
            if self._wait(fault.seconds):
                self._drop()
            else:
                self._answer(request, extra)
        elif isinstance(fault, SlowBody):
            self._answer(request, extra, write=functools.partial(self._write_slowly, fault))
        elif isinstance(fault, StallBody):
            self._answer(request, extra, write=functools.partial(self._write_stalled, fault))
        elif isinstance(fault, DropMidBody):
            self._answer(request, extra, write=self._write_half_then_drop, cut_off=True)
        elif isinstance(fault, MalformedJson):
            self._answer_broken(request, extra, lambda _answer: _MALFORMED_JSON)
        elif isinstance(fault, TruncatedJson):
            self._answer_broken(request, extra, _truncated_json)
        elif isinstance(fault, ContractViolation):
            self._answer_broken(request, extra, _contract_violation)
        elif isinstance(fault, SseCutMidEvent):
            self._answer(request, extra, events=functools.partial(_cut_events, fault.after_items))
        elif isinstance(fault, SseDrop):
            events = functools.partial(_cut_events, fault.after_items)
            self._answer(request, extra, events=events, cut_off=True)
        elif isinstance(fault, SseErrorEvent):
            self._answer(request, extra, events=functools.partial(_error_events, fault))
        elif isinstance(fault, SseShuffle):
            self._answer(request, extra, events=functools.partial(_shuffled_events, fault.seed))
        else:
            raise TypeError(f"the local server does not know the fault {fault!r}")

    def _answer(
        self,
        request: _Request,
        extra: _Headers,
        *,
        write: _Writer | None = None,
        events: _Events = _events,
        cut_off: bool = False,
    ) -> None:
        """Send the contract's answer to ``request``.

        ``write`` sends the body's pieces (of JSON and event-stream answers alike); ``events``
        and ``cut_off`` (no last chunk, then close) only change event streams.
        """
        answer = self._contract_answer(request)
        if answer is None:
            return
        write = write if write is not None else self._write_all
        if isinstance(answer, _api.StreamAnswer):
            self._send_stream(answer, extra, write, events, cut_off)
        else:
            body = _api.encode_json(answer.payload)
            self._send_bytes(answer.status, "application/json", body, answer.headers + extra, write)

    def _answer_broken(
        self, request: _Request, extra: _Headers, corrupt: Callable[[_api.JsonAnswer], bytes]
    ) -> None:
        """Answer 200 JSON with what ``corrupt`` makes of the normal answer (streams included)."""
        answer = self._contract_answer(request)
        if answer is None:
            return
        as_json = answer.as_json() if isinstance(answer, _api.StreamAnswer) else answer
        self._send_bytes(200, "application/json", corrupt(as_json), extra)

    def _contract_answer(self, request: _Request) -> _api.Answer | None:
        """The contract's answer (admission and latency included); None when stopping."""
        state = self.server.state
        answer = _api.answer(
            self.command,
            request.path,
            request.headers,
            request.body,
            api_key=state.api_key,
            max_request_tokens=state.settings.max_request_tokens,
            admit=self._admit,
        )
        if self._admitted is not None and self._simulate_latency(len(self._admitted.inputs)):
            self._drop()
            return None
        return answer

    def _admit(self, request: _api.EmbeddingRequest | None, tokens: int) -> None:
        """Charge the rate limiter for one authorised request, or refuse it with 429."""
        state = self.server.state
        if state.limiter is not None:
            decision = state.limiter.decide(tokens if request is not None else 0, state.clock())
            self._limit_headers = decision.headers
            if not decision.admitted:
                state.count(rate_limited=1)
                limits = state.limiter.limits
                what = " and ".join(
                    f"{name} per minute (limit {limits[name]:.0f}"
                    + (f", this request needs {tokens})" if name == "tokens" else ")")
                    for name in decision.limited_by
                )
                raise _api.ApiError(
                    429,
                    f"Rate limit reached for {what}; "
                    f"retry in {format_reset(decision.retry_after)}.",
                    code="rate_limit_exceeded",
                    headers=retry_after_headers(decision.retry_after),
                )
        if request is not None:
            self._admitted = request
            state.count(accepted=1, tokens=tokens, inputs=len(request.inputs))

    def _simulate_latency(self, inputs: int) -> bool:
        """Wait the configured latency for ``inputs`` texts; True when the server is stopping."""
        settings = self.server.state.settings
        seconds = settings.latency + settings.latency_per_input * inputs
        if seconds <= 0.0:
            return False
        sleep = self.server.state.sleep
        if sleep is not None:
            sleep(seconds)
            return False
        return self._wait(seconds)

    # -- writing --------------------------------------------------------------------------

    def _send_json(self, status: int, payload: Any, headers: _Headers) -> None:
        self._send_bytes(status, "application/json", _api.encode_json(payload), headers)

    def _send_bytes(
        self,
        status: int,
        content_type: str,
        body: bytes,
        headers: Sequence[tuple[str, str]],
        write: _Writer | None = None,
    ) -> None:
        """Send a complete answer (or a broken one, as ``write`` sends the body)."""
        self._send_head(status, content_type, len(body), headers)
        if self.command == "HEAD":
            return
        (write or self._write_all)([body], False)

    def _send_stream(
        self,
        answer: _api.StreamAnswer,
        headers: _Headers,
        write: _Writer,
        events: _Events,
        cut_off: bool,
    ) -> None:
        """Send an event stream, chunked (HTTP/1.0 clients get it unframed, then a close)."""
        chunked = self.request_version == "HTTP/1.1"
        stream_headers: list[tuple[str, str]] = [("Cache-Control", "no-cache")]
        if chunked:
            stream_headers.append(("Transfer-Encoding", "chunked"))
        else:
            self.close_connection = True
        self._send_head(200, EVENT_STREAM_CONTENT_TYPE, None, [*stream_headers, *headers])
        if self.command == "HEAD":
            return
        sse = events(list(answer.items), answer.done)
        pieces = [_chunk(event) for event in sse] if chunked else sse
        if chunked and not cut_off:
            pieces.append(_LAST_CHUNK)
        if write(pieces, True) and cut_off:
            self._drop()

    # -- body writers (`_Writer`): True when the whole body went out and the connection is open

    def _write_all(self, pieces: Sequence[bytes], stream: bool) -> bool:
        for piece in pieces:
            self.wfile.write(piece)
        return True

    def _write_slowly(self, fault: SlowBody, pieces: Sequence[bytes], stream: bool) -> bool:
        """A stream one piece (event) at a time, a body in ``fault.chunks`` pieces; a wait first."""
        if not stream:
            body = b"".join(pieces)
            step = -(-len(body) // fault.chunks) or 1
            pieces = [body[start : start + step] for start in range(0, max(len(body), 1), step)]
        for piece in pieces:
            if self._wait(fault.chunk_delay):
                self._drop()
                return False
            self.wfile.write(piece)
        return True

    def _write_stalled(self, fault: StallBody, pieces: Sequence[bytes], stream: bool) -> bool:
        """Half the pieces (a body: half its bytes), a stall, then the rest."""
        if not stream:
            body = b"".join(pieces)
            pieces = [body[: len(body) // 2], body[len(body) // 2 :]]
        stall_at = len(pieces) // 2
        self._write_all(pieces[:stall_at], stream)
        if stall_at > 0 and self._wait(fault.seconds):
            self._drop()
            return False
        return self._write_all(pieces[stall_at:], stream)

    def _write_half_then_drop(self, pieces: Sequence[bytes], stream: bool) -> bool:
        wire = b"".join(pieces)
        self.wfile.write(wire[: len(wire) // 2])
        self._drop()
        return False


class _HTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that tracks its connections so that `close_all` can end them."""

    daemon_threads = True
    # socketserver's default backlog is 5: a client opening a hundred connections at once
    # (aiohttp's default pool) would see connects dropped and reset under load.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], state: _State) -> None:
        self.state = state
        self._conn_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._handler_threads: set[threading.Thread] = set()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn) that can take seconds.
        socketserver.TCPServer.server_bind(self)
        host, port = self.socket.getsockname()[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"aligneai-local-{client_address}",
            daemon=True,
        )
        with self._conn_lock:
            if self.state.stopping.is_set():
                self.shutdown_request(request)
                return
            self._connections.add(request)
            self._handler_threads.add(thread)
        thread.start()

    def _serve_connection(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._conn_lock:
                self._connections.discard(request)
                self._handler_threads.discard(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Client disconnects (and our own shutdown of idle keep-alive sockets) are routine.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    def close_all(self) -> list[threading.Thread]:
        """Shut every open connection (idle keep-alive ones too); return their threads."""
        with self._conn_lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
            return list(self._handler_threads)


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _optional_positive_int(name: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentTypeError(
            name, f"expected a positive int or None, got {type(value).__name__}"
        )
    if value < 1:
        raise InvalidArgumentValueError(name, f"must be at least 1, got {value}")
    return value


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgumentTypeError(
            name, f"expected seconds (float), got {type(value).__name__}"
        )
    if not math.isfinite(value) or value < 0:
        raise InvalidArgumentValueError(name, f"must be a finite number >= 0, got {value!r}")
    return float(value)


def _fault_path(path: object) -> str | None:
    """The request path (with ``/v1``) that ``enqueue(path=...)`` means, checked."""
    if path is None:
        return None
    if not isinstance(path, str):
        raise InvalidArgumentTypeError("path", f"expected str or None, got {type(path).__name__}")
    if not path.startswith("/") or "?" in path or "#" in path:
        raise InvalidArgumentValueError(
            "path", f"expected an endpoint path such as '/embeddings', got {path!r}"
        )
    prefix = _api.API_PREFIX
    full = path if path == prefix or path.startswith(prefix + "/") else prefix + path
    if not _api.is_known_path(full):
        raise InvalidArgumentValueError(
            "path",
            f"{path!r} is not an endpoint of the API, so no request would take the fault; "
            "use '/embeddings', '/models' or '/models/<id>' (the '/v1' prefix is optional)",
        )
    return full


class LocalServer:
    """A local, in-process AligneAI API v1 server with fault injection, for tests and demos.

    Args:
        host: the interface to bind (loopback by default).
        port: the port; 0 picks a free one (see `url` after `start`).
        api_key: accept only this key; None accepts any non-empty bearer key.
        request_log_limit: how many of the latest requests `requests` keeps.
        max_body_bytes: larger request bodies get 413.
        verbose: write an access log line per request to stderr.
        requests_per_minute: the request budget (None: unlimited). Each authorised request
            takes one request from a token bucket holding 1/6 of the budget (10 seconds'
            worth, at least 1) and refilled continuously; an empty bucket answers 429 with
            ``retry-after`` / ``retry-after-ms``.
        tokens_per_minute: the token budget of the embeddings requests (None: unlimited), a
            bucket like the request one; tokens are counted by `count_tokens`. A request larger
            than the burst is admitted once the bucket is full (leaving it in debt).
        max_request_tokens: an embeddings request holding more tokens is refused with 400
            ``request_too_large`` before any budget is charged (None: no cap).
        latency: seconds each admitted embeddings request takes before its answer starts.
        latency_per_input: seconds added per input text of such a request.
        clock: the limiter's monotonic clock (tests pass a fake one; default `time.monotonic`).
        sleep: how the latency is waited (tests pass a fake one; default: a wait that ends
            early when the server stops). It runs in the request's own thread.

    With a budget set, every answer carries ``x-ratelimit-limit-*``, ``x-ratelimit-remaining-*``
    and ``x-ratelimit-reset-*`` for that budget (``-requests``, ``-tokens``). It is thread-safe;
    use it as a context manager or call `start` and `stop`.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        request_log_limit: int = 10_000,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        verbose: bool = False,
        requests_per_minute: int | None = None,
        tokens_per_minute: int | None = None,
        max_request_tokens: int | None = None,
        latency: float = 0.0,
        latency_per_input: float = 0.0,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if request_log_limit < 0:
            raise InvalidArgumentValueError("request_log_limit", "must not be negative")
        if api_key is not None and not api_key:
            raise InvalidArgumentValueError("api_key", "must not be empty (None accepts any key)")
        settings = _Settings(
            api_key=api_key,
            request_log_limit=request_log_limit,
            max_body_bytes=max_body_bytes,
            verbose=verbose,
            requests_per_minute=_optional_positive_int("requests_per_minute", requests_per_minute),
            tokens_per_minute=_optional_positive_int("tokens_per_minute", tokens_per_minute),
            max_request_tokens=_optional_positive_int("max_request_tokens", max_request_tokens),
            latency=_seconds("latency", latency),
            latency_per_input=_seconds("latency_per_input", latency_per_input),
        )
        self._host = host
        self._port = port
        self._state = _State(settings, clock if clock is not None else time.monotonic, sleep)
        self._lifecycle = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        where = self.url if self._httpd is not None else "stopped"
        return f"<LocalServer {where}>"

    def start(self) -> LocalServer:
        """Bind and serve in a background daemon thread; return self."""
        with self._lifecycle:
            if self._httpd is not None:
                raise RuntimeError("the server is already running")
            self._state.stopping.clear()
            httpd = _HTTPServer((self._host, self._port), self._state)
            # A short poll interval makes stop() prompt; the selector still wakes on connections.
            thread = threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="aligneai-local-server",
                daemon=True,
            )
            thread.start()
            self._httpd, self._thread = httpd, thread
        return self

    def stop(self) -> None:
        """Stop serving, close every open connection and join the threads (idempotent)."""
        with self._lifecycle:
            httpd, thread = self._httpd, self._thread
            if httpd is None or thread is None:
                return
            self._state.stopping.set()  # wakes delays and stalls
            httpd.shutdown()
            for handler in httpd.close_all():
                handler.join(_STOP_JOIN_SECONDS)
            httpd.server_close()
            thread.join(_STOP_JOIN_SECONDS)
            self._httpd = self._thread = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (only while running)."""
        if self._httpd is None:
            raise RuntimeError("the server is not running: call start() first")
        return self._httpd.server_port

    @property
    def url(self) -> str:
        """The API base URL, e.g. ``http://127.0.0.1:54321/v1`` (only while running)."""
        return f"http://{_url_host(self._host)}:{self.port}{_api.API_PREFIX}"

    @property
    def api_key(self) -> str | None:
        """The only accepted key, or None when any non-empty key is accepted."""
        return self._state.api_key

    def enqueue(self, *faults: Fault, path: str | None = None) -> None:
        """Script faults: each of the next requests (to ``path`` only, if given) takes one, FIFO.

        `NoFault` answers normally, e.g. ``enqueue(StatusFault(503), NoFault())``.
        ``path`` is an endpoint's path, relative to the base URL (``"/embeddings"``,
        ``"/models"``, ``"/models/<id>"``) or with the ``/v1`` prefix; any other path raises
        `InvalidArgumentValueError` naming it, since no request could ever take the fault.
        """
        self._state.schedule.enqueue(faults, _fault_path(path))

    def set_fault_rate(self, fault: Fault, rate: float, *, seed: int = 0) -> None:
        """Give each request that no scripted fault serves ``fault`` with probability ``rate``."""
        self._state.schedule.set_rate(fault, rate, seed=seed)

    @property
    def pending_faults(self) -> int:
        """How many scripted faults no request has taken yet."""
        return self._state.schedule.pending()

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the recorded requests, oldest first."""
        return self._state.recorded()

    @property
    def stats(self) -> ServerStats:
        """The counters (requests, accepted, rate_limited, tokens, inputs) since the last reset."""
        return self._state.stats()

    def reset(self) -> None:
        """Clear the faults, the fault rate, the request log and the counters; refill budgets."""
        self._state.schedule.reset()
        self._state.clear_log()
        self._state.reset_counters()


def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    api_key: str | None = None,
    verbose: bool = True,
    out: TextIO | None = None,
    requests_per_minute: int | None = None,
    tokens_per_minute: int | None = None,
    max_request_tokens: int | None = None,
    latency: float = 0.0,
    latency_per_input: float = 0.0,
) -> None:
    """Run a `LocalServer` in the foreground until Ctrl-C or SIGTERM (``aligneai serve``).

    Prints the base URL first (one line, flushed) so that scripts can read it. The rate-limit,
    token-cap and latency arguments are `LocalServer`'s.
    """
    stream = out if out is not None else sys.stdout
    stop = threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda _signum, _frame: stop.set())
    try:
        server = LocalServer(
            host=host,
            port=port,
            api_key=api_key,
            verbose=verbose,
            requests_per_minute=requests_per_minute,
            tokens_per_minute=tokens_per_minute,
            max_request_tokens=max_request_tokens,
            latency=latency,
            latency_per_input=latency_per_input,
        )
        with server:
            print(f"AligneAI local server listening on {server.url}", file=stream, flush=True)
            print("Press Ctrl-C to stop.", file=stream, flush=True)
            # A timed wait keeps the main thread responsive to signals on every platform.
            while not stop.wait(0.2):
                pass
    finally:
        for restored, handler in previous.items():
            signal.signal(restored, handler)
    print("AligneAI local server stopped.", file=stream, flush=True)
