"""The benchmark server: answers POST /v1/embeddings with fixed, pre-serialised payloads.

It exists so that the server is never the bottleneck of a client benchmark: a raw asyncio
protocol (no framework, no routing, no JSON work per request) on 127.0.0.1, keep-alive, meant to
run in its own process on its own core. The request body is ignored (so it serves our client's
``inputs`` and openai's ``input`` alike); the answer is chosen by the ``x-bench-payload`` header:

- ``small-float``, ``small-base64``: 1 input x 8 dims;
- ``medium-float``, ``medium-base64``: 16 x 1024;
- ``large-float``, ``large-base64``: 512 x 1536;
- ``stream-float``, ``stream-base64``: an SSE stream (``event: embedding`` items, then
  ``event: done``) of ``x-bench-stream-items`` items (default 1000) of 768 dims each.

base64 vectors are little-endian float32, standard base64, as the API sends them; float vectors
are the same float32 values written with 9 significant digits (what real servers send).

    python benchmarks/server.py [--port 0] [--cpu N] [--payload-dir DIR] [--max-seconds S]

It prints ``READY <port>`` once listening, and stops on SIGTERM/SIGINT, when its standard input
reaches EOF (so it never outlives the benchmark runner that started it), or after --max-seconds.
Standard library only.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import base64
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

SIZES = {"small": (1, 8), "medium": (16, 1024), "large": (512, 1536)}
FORMATS = ("float", "base64")
STREAM_DIMS = 768  # a common embedding size (BERT-base models: e5-base, mpnet, nomic)
DEFAULT_STREAM_ITEMS = 1000
_STREAM_BLOCK = 256  # events per HTTP chunk of a stream
_MAX_HEAD = 64 * 1024


# -- payloads ---------------------------------------------------------------------------------


def vector(dims: int, rng: random.Random) -> array.array[float]:
    """One embedding-like float32 vector (components of a unit-ish vector)."""
    scale = 1.0 / max(dims, 1) ** 0.5
    return array.array("f", [rng.gauss(0.0, scale) for _ in range(dims)])


def encode_vector(values: array.array[float], fmt: str) -> str:
    """The JSON text of one vector in the wire format ``fmt``."""
    if fmt == "base64":
        little = array.array("f", values)
        if sys.byteorder == "big":  # pragma: no cover - the wire is little-endian
            little.byteswap()
        return '"' + base64.b64encode(little.tobytes()).decode("ascii") + '"'
    return "[" + ",".join([format(x, ".9g") for x in values]) + "]"


def embeddings_body(n: int, dims: int, fmt: str, seed: int = 0) -> bytes:
    """The JSON body of a CreateEmbeddingResponse with ``n`` vectors of ``dims``."""
    rng = random.Random(seed)
    items = [
        f'{{"object":"embedding","index":{i},"embedding":{encode_vector(vector(dims, rng), fmt)}}}'
        for i in range(n)
    ]
    usage = f'{{"prompt_tokens":{4 * n},"total_tokens":{4 * n}}}'
    data = ",".join(items)
    text = f'{{"object":"list","data":[{data}],"model":"bench-model","usage":{usage}}}'
    return text.encode("ascii")


def build_payloads() -> dict[str, bytes]:
    """Every fixed payload, by its ``x-bench-payload`` name."""
    return {
        f"{size}-{fmt}": embeddings_body(n, dims, fmt)
        for size, (n, dims) in SIZES.items()
        for fmt in FORMATS
    }


def write_payloads(directory: Path) -> dict[str, Path]:
    """Write every payload to ``directory/<name>.json`` (the runner shares them with workers)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, body in build_payloads().items():
        path = directory / f"{name}.json"
        path.write_bytes(body)
        paths[name] = path
    return paths


def load_payloads(directory: Path | None) -> dict[str, bytes]:
    """Payloads from ``directory`` (written by `write_payloads`), or built now."""
    if directory is None:
        return build_payloads()
    return {
        f"{size}-{fmt}": (directory / f"{size}-{fmt}.json").read_bytes()
        for size in SIZES
        for fmt in FORMATS
    }


def stream_event_parts(fmt: str) -> tuple[bytes, bytes]:
    """The bytes of one stream item around its index: ``prefix + b"17" + suffix``."""
    encoded = encode_vector(vector(STREAM_DIMS, random.Random(1)), fmt)
    prefix = b'event: embedding\ndata: {"object":"embedding","index":'
    suffix = f',"embedding":{encoded}}}\n\n'.encode("ascii")
    return prefix, suffix


def stream_done_event(items: int) -> bytes:
    """The final ``done`` event of a stream."""
    done = {
        "object": "list",
        "model": "bench-model",
        "usage": {"prompt_tokens": items, "total_tokens": items},
    }
    return b"event: done\ndata: " + json.dumps(done, separators=(",", ":")).encode() + b"\n\n"


# -- HTTP ---------------------------------------------------------------------------------------


def _response(status: str, content_type: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "x-request-id: req_bench\r\n"
        "\r\n"
    )
    return head.encode("ascii") + body


def _header(head: bytes, name: bytes) -> bytes | None:
    """The value of header ``name`` (lower case) in the lower-cased request head, or None."""
    start = head.find(b"\r\n" + name + b":")
    if start < 0:
        return None
    start += len(name) + 3
    end = head.find(b"\r\n", start)
    return (head[start:] if end < 0 else head[start:end]).strip()


_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/event-stream\r\n"
    b"Cache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n"
    b"x-request-id: req_bench\r\n"
    b"\r\n"
)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class BenchProtocol(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; answers each request with a prepared payload."""

    def __init__(self, responses: dict[bytes, bytes], streams: dict[bytes, tuple[bytes, bytes]]):
        self._responses = responses
        self._streams = streams
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None
        self._streaming = False
        self._can_write: asyncio.Future[None] | None = None
        self._task: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._can_write is not None and not self._can_write.done():
            self._can_write.set_result(None)

    def pause_writing(self) -> None:
        self._can_write = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._can_write is not None and not self._can_write.done():
            self._can_write.set_result(None)
        self._can_write = None

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if not self._streaming:
            self._process()

    def _process(self) -> None:
        buf = self._buf
        transport = self._transport
        while transport is not None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > _MAX_HEAD:
                    transport.close()
                return
            head = bytes(buf[:end]).lower()
            length = _header(head, b"content-length")
            if length is not None:
                total = end + 4 + int(length)
            elif _header(head, b"transfer-encoding") == b"chunked":
                last = buf.find(b"\r\n0\r\n\r\n", end)
                if last < 0:
                    return
                total = last + 7
            else:
                total = end + 4
            if len(buf) < total:
                return
            del buf[:total]
            key = _header(head, b"x-bench-payload") or b""
            if key in self._streams:
                items = int(_header(head, b"x-bench-stream-items") or DEFAULT_STREAM_ITEMS)
                self._streaming = True
                self._task = asyncio.ensure_future(self._stream(self._streams[key], items))
                return
            response = self._responses.get(key)
            if response is None:
                message = {"error": {"message": f"unknown x-bench-payload {key!r}"}}
                response = _response(
                    "404 Not Found", "application/json", json.dumps(message).encode()
                )
            transport.write(response)

    async def _stream(self, parts: tuple[bytes, bytes], items: int) -> None:
        prefix, suffix = parts
        transport = self._transport
        if transport is None:
            return
        transport.write(_STREAM_HEAD)
        for start in range(0, items, _STREAM_BLOCK):
            block = b"".join(
                [
                    prefix + b"%d" % i + suffix
                    for i in range(start, min(start + _STREAM_BLOCK, items))
                ]
            )
            transport.write(_chunk(block))
            if self._can_write is not None:
                await self._can_write
            if self._transport is None:
                return
        transport.write(_chunk(stream_done_event(items)) + b"0\r\n\r\n")
        self._streaming = False
        self._process()


async def serve(port: int, payloads: dict[str, bytes], max_seconds: float) -> None:
    """Serve until SIGTERM/SIGINT, EOF on stdin, or ``max_seconds``."""
    loop = asyncio.get_running_loop()
    responses = {
        name.encode(): _response("200 OK", "application/json", body)
        for name, body in payloads.items()
    }
    streams = {f"stream-{fmt}".encode(): stream_event_parts(fmt) for fmt in FORMATS}
    server = await loop.create_server(
        lambda: BenchProtocol(responses, streams), "127.0.0.1", port, backlog=1024
    )
    stop = loop.create_future()

    def _stop() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows
            loop.add_signal_handler(sig, _stop)
    if not sys.stdin.closed and not sys.stdin.isatty():
        # The runner holds our stdin open; EOF means it went away.
        def _watch_stdin() -> None:
            sys.stdin.buffer.read()
            loop.call_soon_threadsafe(_stop)

        threading.Thread(target=_watch_stdin, name="stdin-watch", daemon=True).start()
    loop.call_later(max_seconds, _stop)
    actual_port = server.sockets[0].getsockname()[1]
    print(f"READY {actual_port}", flush=True)
    await stop
    server.close()
    await server.wait_closed()


def start(
    payload_dir: Path,
    *,
    cpu: int | None = None,
    max_seconds: float | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[str], int]:
    """Write the payloads into ``payload_dir`` and run this server in a process: (it, its port).

    The server holds the process's stdin: `stop` closes it, and so does the caller's exit.
    """
    write_payloads(payload_dir)
    command = [sys.executable, str(Path(__file__).resolve()), "--payload-dir", str(payload_dir)]
    if cpu is not None:
        command += ["--cpu", str(cpu)]
    if max_seconds is not None:
        command += ["--max-seconds", str(max_seconds)]
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=cwd, env=env
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("READY "):
        stop(process)
        raise RuntimeError(f"the benchmark server did not start: {line!r}")
    return process, int(line.split()[1])


def stop(process: subprocess.Popen[str]) -> None:
    """Stop a server that `start` started (EOF on its stdin; killed after 10 s)."""
    if process.stdin is not None:
        process.stdin.close()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover
        process.kill()
        process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU")
    parser.add_argument("--payload-dir", type=Path, default=None)
    parser.add_argument("--max-seconds", type=float, default=1800.0)
    args = parser.parse_args(argv)
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    payloads = load_payloads(args.payload_dir)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, payloads, args.max_seconds))
    # The stdin watcher thread may still be blocked in read(): don't wait for it.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
