"""Bulk embedding benchmark (issue #11): a corpus at the server's rate limit, three strategies.

    python benchmarks/bulk.py              # the full group (<= 3 minutes on 2 cores)
    python benchmarks/bulk.py --quick      # tiny sizes (< 15 s): checks that everything runs
    python benchmarks/run.py --only bulk   # the same group inside the suite's table

Against `aligneai.testing.LocalServer` with a tokens-per-minute limit that binds and a latency
that makes concurrency necessary (2 s per request of full size in the full run), measured side
by side in one run, each in a fresh worker process:

(a) ``loop``: a plain sequential loop over ``client.embeddings.create`` (LangChain's strategy);
(b) ``pool``: a fixed 64-thread pool over the batches with the client's default retries
    (cohere's strategy);
(c) ``create_many``: ``client.embeddings.create_many`` with its defaults (adaptive concurrency,
    budgets learned from the server's ``x-ratelimit-*`` headers).

For each: sustained tokens/s after a warm-up as a share of the binding limit, 429s as a share of
the requests after the warm-up (both from the server's own counters, sampled every 50 ms), lost /
duplicated / misplaced rows (every row checked against the deterministic embedder), wall time.
The token bucket is drained before each strategy starts, so that the limit binds from the first
second (a fresh bucket's 10-second burst would otherwise flatter the first seconds).

(d) ``kill``: a ``create_many`` into a .npy in a subprocess, killed with SIGKILL at a random
    point (after a random number of requests reached the server), then resumed: the inputs the
    resumed run re-sends (from the server's request log) must be no more than those in flight
    at the kill (sent, but not in the checkpoint), and the final file's rows must equal, byte
    for byte, those of an uninterrupted run.
(e) ``rss``: peak RSS growth of ``create_many(output=<.npy>)`` over a generator of 100,000 and
    1,000,000 short texts (and 100,000 with a 4x larger ``batch_size x max_concurrency``), each
    in a fresh process, against a minimal in-process server that does no embedding work (its
    vectors carry each input's index in component 0, so every row is still checked): the growth
    must follow ``batch_size x max_concurrency``, not the corpus.

Writes ``benchmarks/results/bulk.md`` and ``bulk.json`` (``--out DIR`` elsewhere; run.py's group
passes ``--json FILE``). Never run it with the repository root on ``sys.path`` (see run.py).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import random
import re
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from report import loadavg  # benchmarks/report.py: the suite's formatting

HERE = Path(__file__).resolve().parent
MiB = 1024 * 1024
API_KEY = "bench-key"
MODEL = "aligne-embed-small"
README_SECTION = "bulk-results"  # <!-- bulk-results:start --> ... :end (benchmarks/readme.py)


@dataclass(frozen=True)
class Plan:
    """The sizes of one run (``--quick`` or full)."""

    dims: int  # `dimensions` of every request (small: the server's embedder is pure Python)
    batch: int  # inputs per request, the same for all three strategies
    latency: float  # server: fixed seconds per admitted request ...
    latency_per_input: float  # ... plus this per input (latency + batch * this = full size)
    tokens_per_minute: int  # the binding budget
    requests_per_minute: int  # a budget that does not bind (about 2x what the tokens allow)
    warmup: float  # seconds after a strategy's first request that the sustained figures skip
    loop_inputs: int  # the sequential loop's corpus (it is ~10x slower than the limit)
    corpus: int  # the pool's and create_many's corpus
    pool_threads: int
    kill_inputs: int
    kill_batch: int
    kill_concurrency: int
    kill_latency: float
    rss_small: int
    rss_large: int
    rss_batch: int
    rss_concurrency: int
    rss_dims: int
    worker_timeout: float


FULL = Plan(
    dims=16,
    batch=100,
    latency=0.5,
    latency_per_input=0.015,  # 2 s for a request of 100 inputs
    tokens_per_minute=396_000,  # 6,600 tokens/s: 12 requests of 1,100 tokens in flight
    requests_per_minute=720,
    warmup=10.0,  # 5 round trips of a full request
    loop_inputs=1_200,  # 12 requests, 24 s
    corpus=40_000,  # 440,000 tokens: 67 s at the limit
    pool_threads=64,
    kill_inputs=6_000,
    kill_batch=100,
    kill_concurrency=8,
    kill_latency=0.25,
    rss_small=100_000,
    rss_large=1_000_000,
    rss_batch=512,
    rss_concurrency=4,
    rss_dims=32,
    worker_timeout=150.0,
)
QUICK = Plan(
    dims=8,
    batch=20,
    latency=0.05,
    latency_per_input=0.0075,  # 0.2 s for a request of 20 inputs
    tokens_per_minute=528_000,  # 8,800 tokens/s: 8 requests of 220 tokens in flight
    requests_per_minute=5_000,
    warmup=1.0,  # 5 round trips of a full request
    loop_inputs=100,  # 5 requests, 1 s
    corpus=2_400,  # 26,400 tokens: 3 s at the limit
    pool_threads=64,
    kill_inputs=800,
    kill_batch=20,
    kill_concurrency=4,
    kill_latency=0.05,
    rss_small=5_000,
    rss_large=15_000,
    rss_batch=256,
    rss_concurrency=2,
    rss_dims=8,
    worker_timeout=60.0,
)

STRATEGIES = {
    "loop": "sequential loop over create (LangChain's strategy)",
    "pool": "64-thread pool, default retries (cohere's strategy)",
    "create_many": "create_many",
}


# =============================================================================================
# The corpus
# =============================================================================================

_INDEX_RE = re.compile(r"^record (\d+) ")


def text(i: int) -> str:
    """Input ``i`` of the rate-limited corpus: distinct texts of exactly 11 tokens each."""
    return f"record {i} covers topic {i % 89} in section {i % 13} of part {i % 7}"


TOKENS_PER_TEXT = 11


def index_of(value: str) -> int:
    """The index ``i`` of a text made by `text`."""
    match = _INDEX_RE.match(value)
    if match is None:
        raise AssertionError(f"not a corpus text: {value!r}")
    return int(match.group(1))


def short_texts(n: int) -> Iterator[str]:
    """The memory runs' corpus: a generator (nothing held) of short texts ``"t<i>"``."""
    return (f"t{i}" for i in range(n))


def expected_matrix(n: int, dims: int, start: int = 0) -> Any:
    """The deterministic embedder's float32 vectors of ``text(start) ... text(start + n - 1)``."""
    import numpy as np

    from aligneai.testing import embed

    return np.array([embed(text(i), dims) for i in range(start, start + n)], dtype=np.float32)


def check_rows(matrix: Any, expected: Any, present: Any = None) -> dict[str, int]:
    """Count lost, duplicated and misplaced rows of ``matrix`` against ``expected``.

    ``present`` (bool per row, default all) says which rows the strategy delivered: the others
    are lost. A delivered row that equals another input's vector is duplicated (that input's
    result landed twice), one that equals no input's vector is misplaced.
    """
    import numpy as np

    n = len(expected)
    if present is None:
        present = np.ones(n, dtype=bool)
    if matrix is None or matrix.shape[0] != n:
        got = 0 if matrix is None else matrix.shape[0]
        return {"lost": max(n - got, 0), "duplicated": max(got - n, 0), "misplaced": 0, "rows": n}
    where = {expected[i].tobytes(): i for i in range(n)}
    lost = duplicated = misplaced = 0
    for i in range(n):
        if not present[i]:
            lost += 1
            continue
        row = matrix[i].tobytes()
        if row == expected[i].tobytes():
            continue
        if row in where:
            duplicated += 1
        else:
            misplaced += 1
    return {"lost": lost, "duplicated": duplicated, "misplaced": misplaced, "rows": n}


# =============================================================================================
# Workers: each runs in a fresh process (this file with --worker) and prints "RESULT <json>".
# =============================================================================================


def _pin(cpu: int | None) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


def _client(spec: dict[str, Any], max_connections: int = 10) -> Any:
    from aligneai import AligneAI
    from aligneai.transports.urllib3_transport import Urllib3Transport

    return AligneAI(
        api_key=API_KEY,
        base_url=spec["url"],
        timeout=120.0,
        transport=Urllib3Transport(max_connections=max_connections, trust_env=False),
    )


def _batches(n: int, size: int) -> list[tuple[int, list[str]]]:
    return [
        (start, [text(i) for i in range(start, min(start + size, n))])
        for start in range(0, n, size)
    ]


def worker_loop(spec: dict[str, Any]) -> dict[str, Any]:
    """(a) LangChain's ``embed_documents``: one request after another, results in a list."""
    import numpy as np

    client = _client(spec)
    n, dims = spec["inputs"], spec["dims"]
    vectors: list[list[float]] = []
    _handshake(spec)
    t0 = time.perf_counter()
    for _, batch in _batches(n, spec["batch"]):
        response = client.embeddings.create(inputs=batch, dimensions=dims)
        vectors.extend(item.embedding for item in response.data)
    wall = time.perf_counter() - t0
    client.close()
    matrix = np.array(vectors, dtype=np.float32).reshape(-1, dims)
    return {"wall": wall, "errors": 0, "check": check_rows(matrix, expected_matrix(n, dims))}


def worker_pool(spec: dict[str, Any]) -> dict[str, Any]:
    """(b) cohere's ``embed``: every batch submitted to a fixed pool of 64 threads.

    The client keeps its default retries (2, honouring ``retry-after``). A batch that still
    fails is counted as lost rows and the others go on (cohere itself raises the first error
    and loses every batch, done or not).
    """
    import numpy as np

    threads = spec["threads"]
    client = _client(spec, max_connections=threads)  # one connection per thread, as httpx's 100
    n, dims = spec["inputs"], spec["dims"]
    matrix = np.zeros((n, dims), dtype=np.float32)
    present = np.zeros(n, dtype=bool)
    errors: dict[str, int] = {}

    def one(job: tuple[int, list[str]]) -> None:
        start, batch = job
        response = client.embeddings.create(inputs=batch, dimensions=dims)
        matrix[start : start + len(batch)] = [item.embedding for item in response.data]
        present[start : start + len(batch)] = True

    _handshake(spec)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(one, job) for job in _batches(n, spec["batch"])]
        for future in futures:
            error = future.exception()
            if error is not None:
                errors[type(error).__name__] = errors.get(type(error).__name__, 0) + 1
    wall = time.perf_counter() - t0
    client.close()
    check = check_rows(matrix, expected_matrix(n, dims), present)
    return {"wall": wall, "errors": sum(errors.values()), "error_kinds": errors, "check": check}


def worker_create_many(spec: dict[str, Any]) -> dict[str, Any]:
    """(c) ``create_many`` with its defaults, in memory."""
    client = _client(spec)
    n, dims = spec["inputs"], spec["dims"]
    _handshake(spec)
    t0 = time.perf_counter()
    result = client.embeddings.create_many(
        (text(i) for i in range(n)), dimensions=dims, batch_size=spec["batch"]
    )
    wall = time.perf_counter() - t0
    client.close()
    return {
        "wall": wall,
        "errors": len(result.failed),
        "client": {
            "requests": result.requests,
            "retries": result.retries,
            "rate_limited": result.rate_limited,
            "elapsed": result.elapsed,
        },
        "check": check_rows(result.matrix, expected_matrix(n, dims)),
    }


def worker_npy(spec: dict[str, Any]) -> dict[str, Any]:
    """(d) ``create_many`` into a .npy (the run that gets killed, the resume, the reference)."""
    client = _client(spec)
    t0 = time.perf_counter()
    print("STARTED", flush=True)
    result = client.embeddings.create_many(
        (text(i) for i in range(spec["inputs"])),
        dimensions=spec["dims"],
        batch_size=spec["batch"],
        max_concurrency=spec["concurrency"],
        output=spec["output"],
        resume=spec["resume"],
    )
    wall = time.perf_counter() - t0
    client.close()
    return {"wall": wall, "requests": result.requests, "count": result.count}


def _status_kib(*fields: str) -> dict[str, int]:
    found: dict[str, int] = {}
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                name = line.split(b":", 1)[0].decode()
                if name in fields:
                    found[name] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return found


def _maxrss_bytes() -> int:
    """Peak RSS: VmHWM on Linux (ru_maxrss would include the exec'ing parent's image)."""
    peak = _status_kib("VmHWM").get("VmHWM")
    if peak is not None:
        return peak
    import resource

    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value if sys.platform == "darwin" else value * 1024


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # VmHWM := current RSS
    except OSError:
        return False
    return True


def worker_rss(spec: dict[str, Any]) -> dict[str, Any]:
    """(e) Peak RSS growth of ``create_many`` into a .npy over a generator of short texts.

    Also samples RssAnon / RssFile every 20 ms: pages of a memory-mapped output count in RSS
    but belong to the page cache (the kernel writes them back and drops them under pressure).
    """
    import gc

    import numpy as np

    client = _client(spec)
    n = spec["inputs"]
    # Warm up the whole path (imports, pools, first allocations) on a small run.
    warm = Path(spec["output"]).with_suffix(".warm.npy")
    client.embeddings.create_many(
        short_texts(2 * spec["batch"]), dimensions=spec["dims"], batch_size=spec["batch"],
        max_concurrency=spec["concurrency"], output=str(warm),
    )  # fmt: skip
    warm.unlink()
    gc.collect()
    peaks = {"RssAnon": 0, "RssFile": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            for name, value in _status_kib("RssAnon", "RssFile").items():
                peaks[name] = max(peaks[name], value)

    base = _status_kib("RssAnon", "RssFile")
    exact = _reset_peak()
    before = _maxrss_bytes()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    result = client.embeddings.create_many(
        short_texts(n), dimensions=spec["dims"], batch_size=spec["batch"],
        max_concurrency=spec["concurrency"], output=spec["output"],
    )  # fmt: skip
    wall = time.perf_counter() - t0
    after = _maxrss_bytes()
    stop.set()
    sampler.join()
    count = result.count
    del result
    client.close()
    written = np.load(spec["output"], mmap_mode="r")
    wrong = int(np.count_nonzero(written[:, 0] != np.arange(n, dtype=np.float32)))
    shape = list(written.shape)
    del written
    os.unlink(spec["output"])
    return {
        "growth": after - before,
        "exact": exact,
        "anon_growth": max(peaks["RssAnon"] - base.get("RssAnon", 0), 0),
        "file_growth": max(peaks["RssFile"] - base.get("RssFile", 0), 0),
        "wall": wall,
        "count": count,
        "shape": shape,
        "wrong_rows": wrong,
    }


def worker_batch(spec: dict[str, Any]) -> dict[str, Any]:
    """Several measurements in one process (--quick only: it saves the start-up costs)."""
    return {"results": [WORKERS[job["kind"]]({**spec, **job}) for job in spec["jobs"]]}


WORKERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "batch": worker_batch,
    "loop": worker_loop,
    "pool": worker_pool,
    "create_many": worker_create_many,
    "npy": worker_npy,
    "rss": worker_rss,
}


def _handshake(spec: dict[str, Any]) -> None:
    """Tell the harness the worker is set up and wait for its go (see `Harness.worker`)."""
    if spec.get("handshake"):
        print("READY", flush=True)
        sys.stdin.readline()


def worker_main(spec_json: str) -> int:
    spec = json.loads(spec_json)
    _pin(spec.get("cpu"))
    result = WORKERS[spec["kind"]](spec)
    print("RESULT " + json.dumps(result), flush=True)
    return 0


# =============================================================================================
# The memory runs' server: HTTP/1.1 keep-alive, no embedding work
# =============================================================================================


class IndexServer:
    """A minimal embeddings server: the vector of input ``"t<i>"`` is ``[i, 0, 0, ...]``.

    It parses each request (so a client that sent wrong texts would get wrong rows) but
    computes nothing else, so a million inputs take seconds and the figures are the client's.
    Runs its own asyncio loop in a daemon thread; `stop` ends it.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self.requests = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bulk-index-server", daemon=True)

    def start(self) -> IndexServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the index server did not start")
        return self

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=1024)
        )
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()
        server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = await reader.readexactly(length) if length else b""
                status, payload = self._answer(head.split(b" ", 2)[:2], body)
                writer.write(
                    b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (status, len(payload), payload)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _answer(self, request_line: list[bytes], body: bytes) -> tuple[int, bytes]:
        if request_line != [b"POST", b"/v1/embeddings"]:
            error = {"error": {"message": "not here", "type": "not_found_error", "code": None}}
            return 404, json.dumps(error).encode()
        self.requests += 1
        request = json.loads(body)
        dims = request.get("dimensions") or 8
        tail = bytes(4 * (dims - 1))
        pack = struct.Struct("<f").pack
        b64 = base64.b64encode
        parts = [
            b'{"object":"embedding","index":%d,"embedding":"%s"}'
            % (position, b64(pack(float(value[1:])) + tail))
            for position, value in enumerate(request["inputs"])
        ]
        tokens = len(parts)  # "t<i>" is one token
        return 200, (
            b'{"object":"list","data":[%s],"model":"%s","usage":{"prompt_tokens":%d,'
            b'"total_tokens":%d}}'
            % (b",".join(parts), request.get("model", MODEL).encode(), tokens, tokens)
        )


# =============================================================================================
# The harness
# =============================================================================================


@dataclass
class Sample:
    t: float
    requests: int
    accepted: int
    rate_limited: int
    tokens: int
    inputs: int


class Sampler:
    """Reads the server's counters every 50 ms in a thread (the same clock for every strategy)."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _take(self) -> None:
        s = self.server.stats
        self.samples.append(
            Sample(time.monotonic(), s.requests, s.accepted, s.rate_limited, s.tokens, s.inputs)
        )

    def _run(self) -> None:
        self._take()
        while not self._stop.wait(0.05):
            self._take()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()
            self._take()


def bucket_levels(samples: list[Sample], tokens_per_minute: float) -> list[float]:
    """The server's token bucket level at each sample, replayed from the admitted tokens.

    The local server's documented rule (aligneai/testing/_ratelimit.py): a bucket of
    ``tokens_per_minute / 6`` refilled at ``tokens_per_minute / 60`` a second, charged the
    tokens of each admitted request. The first sample comes right after the drain, so the
    bucket starts empty there.
    """
    capacity, rate = tokens_per_minute / 6.0, tokens_per_minute / 60.0
    levels = [0.0]
    for previous, sample in zip(samples, samples[1:]):
        refilled = min(capacity, levels[-1] + rate * (sample.t - previous.t))
        levels.append(refilled - (sample.tokens - previous.tokens))
    return levels


def sustained(
    samples: list[Sample],
    warmup: float,
    tokens_per_minute: float,
    smooth: float,
    request_tokens: float,
) -> dict[str, Any]:
    """Tokens/s and 429 share after the warm-up, from the server's counters.

    The window starts ``warmup`` seconds after the strategy's first request reached the server
    and ends at its last admitted request (so the end of the corpus, when fewer requests are
    left than could be in flight, is in), whose own tokens are left out: n admissions span
    n - 1 intervals. ``share``: the window's tokens/s over the limit. ``allowed_share``: its
    tokens over what the limit allowed in it, the refill plus what the server's token bucket
    (replayed by `bucket_levels`) held at its start: budget a client left unused during its
    ramp lets it exceed the limit for a while, which ``share`` counts as throughput and
    ``allowed_share`` does not (it is at most 1). 429s are counted from the window's start to
    the end of the run. A run over within the warm-up is measured whole (``whole_run``).
    ``ramp_s``: from the first request to the first time the rate over ``smooth`` seconds
    reached 95 % of the limit (None: never).
    """
    limit_per_s = tokens_per_minute / 60.0
    base = samples[0]
    started = [s for s in samples if s.requests > base.requests]
    if not started:
        return {"error": "no request reached the server"}
    levels = bucket_levels(samples, tokens_per_minute)
    t_first = started[0].t
    final = samples[-1]
    end = next(i for i, s in enumerate(samples) if s.tokens == final.tokens)
    after = [i for i, s in enumerate(samples) if s.t >= t_first + warmup and i < end]
    whole_run = not after
    w = 0 if whole_run else after[0]
    # Whole run: from the sampler's start (the go, a few ms before the first request), so that
    # the refill counted in `allowed` covers the same time as the tokens counted.
    start_t = samples[w].t
    seconds = samples[end].t - start_t
    if seconds <= 0:
        return {"error": "no token was admitted"}
    # The last admission's own tokens are left out: n admissions span n - 1 intervals (a
    # sequential loop's window would otherwise count one request too many).
    admitted = max(samples[max(end - 1, 0)].tokens - samples[w].tokens, 0)
    allowed = levels[w] + limit_per_s * seconds
    requests = final.requests - samples[w].requests
    limited = final.rate_limited - samples[w].rate_limited
    ramp = None
    i = 0
    for sample in samples:
        while samples[i + 1].t <= sample.t - smooth:
            i += 1
        span = sample.t - samples[i].t
        if (
            span >= smooth * 0.9
            and (sample.tokens - samples[i].tokens) / span >= 0.95 * limit_per_s
        ):
            ramp = sample.t - t_first
            break
    by_window = []
    for k in range(int((final.t - t_first) / smooth) + 1):
        inside = [s for s in samples if t_first + k * smooth <= s.t < t_first + (k + 1) * smooth]
        if len(inside) >= 2:
            by_window.append(
                round((inside[-1].tokens - inside[0].tokens) / (inside[-1].t - inside[0].t))
            )
    return {
        "tokens_per_s": admitted / seconds,
        "share": admitted / seconds / limit_per_s,
        "allowed_share": admitted / allowed if allowed > 0 else 0.0,
        "bucket_at_window_start": levels[w],
        "window_s": seconds,
        "steady_from_s": max(start_t - t_first, 0.0),
        "steady_to_s": samples[end].t - t_first,
        "whole_run": whole_run,
        "ramp_s": ramp,
        "rate_limited_share": limited / requests if requests else 0.0,
        "requests_after_warmup": requests,
        "rate_limited_after_warmup": limited,
        "requests": final.requests - base.requests,
        "rate_limited": final.rate_limited - base.rate_limited,
        "tokens": final.tokens - base.tokens,
        "accepted": final.accepted - base.accepted,
        "smooth_s": smooth,
        "tokens_per_s_by_window": by_window,
    }


@dataclass
class Harness:
    plan: Plan
    quick: bool
    tmp: Path
    client_cpu: int | None
    server_cpu: int | None
    env: dict[str, str]
    log: Callable[[str], None]
    failures: list[str] = field(default_factory=list)

    def worker(
        self, kind: str, spec: dict[str, Any], go: Callable[[], None] | None = None
    ) -> dict[str, Any] | None:
        """Run one measurement in a fresh process; None (and a failure noted) if it fails.

        With ``go``, the worker prints READY once its imports and client are set up and waits
        for a line on stdin: ``go()`` runs in between (the drain, the sampler's start), so the
        measured part starts right after it.
        """
        full = {"kind": kind, "cpu": self.client_cpu, "handshake": go is not None, **spec}
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(full)]
        process = subprocess.Popen(
            command, cwd=self.tmp, env=self.env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        # Every wait on the worker is bounded: past the timeout it is killed, pipes hit EOF.
        timer = threading.Timer(self.plan.worker_timeout, process.kill)
        timer.start()
        try:
            assert process.stdin is not None and process.stdout is not None
            if go is not None:
                ready = process.stdout.readline()
                if ready.strip() == "READY":
                    go()
                    process.stdin.write("GO\n")
                    process.stdin.flush()
            stdout, stderr = process.communicate(timeout=self.plan.worker_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            self.failures.append(f"{kind}: timed out after {self.plan.worker_timeout:g} s")
            return None
        finally:
            timer.cancel()
        for line in stdout.splitlines():
            if line.startswith("RESULT "):
                result: dict[str, Any] = json.loads(line[7:])
                return result
        tail = (stderr or stdout).strip().splitlines()[-3:]
        self.failures.append(f"{kind}: exit {process.returncode}: " + " | ".join(tail))
        return None

    # -- (a), (b), (c) ----------------------------------------------------------------------

    def strategies(self) -> dict[str, Any]:
        from aligneai.testing import LocalServer

        plan = self.plan
        limit = plan.tokens_per_minute / 60.0
        results: dict[str, Any] = {"limit_tokens_per_s": limit}
        server = LocalServer(
            api_key=API_KEY,
            tokens_per_minute=plan.tokens_per_minute,
            requests_per_minute=plan.requests_per_minute,
            latency=plan.latency,
            latency_per_input=plan.latency_per_input,
            request_log_limit=0,  # the counters are enough; a log of 10k bodies is not free
        )
        with server:
            for name, inputs in (
                ("loop", plan.loop_inputs),
                ("pool", plan.corpus),
                ("create_many", plan.corpus),
            ):
                results[name] = self.strategy(server, name, inputs)
        return results

    def strategy(self, server: Any, name: str, inputs: int) -> dict[str, Any] | None:
        """One strategy over ``inputs`` texts, starting against an empty token bucket."""
        plan = self.plan
        self.log(f"bulk: {name} over {inputs:,} inputs")
        server.reset()  # counters to zero, buckets full
        sampler = Sampler(server)
        drained: list[threading.Thread] = []

        def go() -> None:
            drained.append(self.drain(server))
            sampler.start()

        spec = {
            "url": server.url, "inputs": inputs, "dims": plan.dims, "batch": plan.batch,
            "threads": plan.pool_threads,
        }  # fmt: skip
        got = self.worker(name, spec, go)
        sampler.stop()
        for thread in drained:
            thread.join()
        if got is None:
            return None
        got["inputs"] = inputs
        round_trip = plan.latency + plan.batch * plan.latency_per_input
        got["server"] = sustained(
            sampler.samples,
            plan.warmup,
            plan.tokens_per_minute,
            smooth=2 * round_trip,
            request_tokens=plan.batch * TOKENS_PER_TEXT,
        )
        return got

    def drain(self, server: Any) -> threading.Thread:
        """Empty the token bucket (a fresh one holds 10 s of budget) with one large request.

        Returns once the server admitted it (its answer comes after the latency, in a thread
        returned for joining), so that the strategy starts against an empty bucket.
        """
        from aligneai import AligneAI

        burst = self.plan.tokens_per_minute // 6  # the local server's bucket: 1/6 of a minute
        pieces = 8
        words = -(-burst // pieces)
        accepted = server.stats.accepted

        def send() -> None:
            with AligneAI(api_key=API_KEY, base_url=server.url, max_retries=0) as client:
                client.embeddings.create(inputs=["a " * words] * pieces, dimensions=self.plan.dims)

        thread = threading.Thread(target=send, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while server.stats.accepted == accepted and time.monotonic() < deadline:
            time.sleep(0.001)
        return thread

    # -- (d) ----------------------------------------------------------------------------------

    def kill_resume(self, seed: int) -> dict[str, Any]:
        import numpy as np

        from aligneai.testing import LocalServer

        plan = self.plan
        n, batch = plan.kill_inputs, plan.kill_batch
        batches = -(-n // batch)
        rng = random.Random(seed)
        kill_after = rng.randint(max(2, batches // 5), max(3, batches * 4 // 5))
        reference = self.tmp / "reference.npy"
        output = self.tmp / "resumed.npy"
        spec = {
            "dims": plan.dims, "batch": batch, "inputs": n, "concurrency": plan.kill_concurrency,
        }  # fmt: skip
        with LocalServer(
            api_key=API_KEY, latency=plan.kill_latency, request_log_limit=10 * batches
        ) as server:
            spec["url"] = server.url
            self.log(f"bulk: kill -9 after {kill_after} of {batches} requests, then resume")
            # --quick compares with the embedder only (one process start less): the full run
            # shows that an uninterrupted run gives exactly the embedder's vectors.
            ref: dict[str, Any] | None = None
            if not self.quick:
                ref = self.worker("npy", {**spec, "output": str(reference), "resume": False})
                if ref is None:
                    return {"error": "the uninterrupted run failed"}
            server.reset()
            killed_at = self._run_and_kill(spec, output, server, kill_after)
            if killed_at is None:
                return {"error": "the run to kill finished or failed before the kill point"}
            before = self._sent(self._quiet_log(server))
            done = checkpoint_done(output)
            server.reset()
            resumed = self.worker("npy", {**spec, "output": str(output), "resume": True})
            if resumed is None:
                return {"error": "the resumed run failed"}
            after = self._sent(server.requests)
        sent_before = set(before)
        in_flight = sent_before - done
        resent = [i for i in after if i in sent_before]
        ours = np.load(output)
        expected = expected_matrix(n, plan.dims)
        theirs = np.load(reference) if ref is not None else expected
        same_shape = ours.shape == theirs.shape
        differing = (
            int(np.count_nonzero((ours.view(np.uint32) != theirs.view(np.uint32)).any(axis=1)))
            if same_shape
            else max(len(ours), len(theirs))
        )
        check = check_rows(ours, expected)
        return {
            "seed": seed,
            "kill_after_requests": kill_after,
            "killed_at_s": killed_at,
            "batches": batches,
            "sent_before_kill": len(before),
            "checkpointed_at_kill": len(done),
            "in_flight_at_kill": len(in_flight),
            "resent": len(resent),
            "resent_not_in_flight": len([i for i in resent if i not in in_flight]),
            "resent_twice_in_resume": len(after) - len(set(after)),
            "sent_after": len(after),
            "rows_differing_from_uninterrupted": differing,
            "check": check,
            "reference": "an uninterrupted run" if ref is not None else "the embedder (--quick)",
            "reference_wall": None if ref is None else ref["wall"],
            "resume_wall": resumed["wall"],
            "window": plan.kill_concurrency * batch,
        }

    def _run_and_kill(
        self, spec: dict[str, Any], output: Path, server: Any, kill_after: int
    ) -> float | None:
        full = {
            "kind": "npy",
            "cpu": self.client_cpu,
            **spec,
            "output": str(output),
            "resume": False,
        }
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(full)]
        process = subprocess.Popen(
            command, cwd=self.tmp, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        timer = threading.Timer(self.plan.worker_timeout, process.kill)
        timer.start()
        try:
            assert process.stdout is not None
            process.stdout.readline()  # "STARTED": imports done, the run begins
            t0 = time.monotonic()
            deadline = t0 + self.plan.worker_timeout
            while len(server.requests) < kill_after:
                if process.poll() is not None or time.monotonic() > deadline:
                    return None
                time.sleep(0.002)
            process.send_signal(signal.SIGKILL)
            return time.monotonic() - t0
        finally:
            timer.cancel()
            if process.poll() is None:
                process.kill()
            process.wait()
            for pipe in (process.stdout, process.stderr):
                if pipe is not None:
                    pipe.close()

    @staticmethod
    def _quiet_log(server: Any) -> list[Any]:
        """The request log once nothing new arrived for 0.3 s (requests still in the sockets)."""
        seen, stable_since = -1, time.monotonic()
        deadline = stable_since + 10
        while time.monotonic() < deadline:
            count = len(server.requests)
            if count != seen:
                seen, stable_since = count, time.monotonic()
            elif time.monotonic() - stable_since > 0.3:
                break
            time.sleep(0.02)
        return server.requests

    @staticmethod
    def _sent(requests: list[Any]) -> list[int]:
        """Indexes of the inputs in the logged embeddings requests (repeats kept)."""
        sent: list[int] = []
        for request in requests:
            if request.path.endswith("/embeddings") and isinstance(request.json, dict):
                sent.extend(index_of(value) for value in request.json.get("inputs", []))
        return sent

    # -- (e) ----------------------------------------------------------------------------------

    def rss(self) -> dict[str, Any]:
        plan = self.plan
        server = IndexServer().start()
        runs: dict[str, Any] = {}
        configs = [
            ("small", plan.rss_small, plan.rss_batch, plan.rss_concurrency),
            ("large", plan.rss_large, plan.rss_batch, plan.rss_concurrency),
            ("small_4x", plan.rss_small, plan.rss_batch * 2, plan.rss_concurrency * 2),
        ]
        specs = {
            name: {
                "kind": "rss", "url": server.url, "inputs": n, "batch": batch,
                "concurrency": concurrency, "dims": plan.rss_dims,
                "output": str(self.tmp / f"rss-{name}.npy"),
            }
            for name, n, batch, concurrency in configs
        }  # fmt: skip
        try:
            if self.quick:  # one process for all (start-up costs; quick figures are noise)
                self.log("bulk: peak RSS (quick: one process)")
                got = self.worker("batch", {"jobs": list(specs.values())})
                results = got["results"] if got is not None else [None] * len(specs)
                runs = dict(zip(specs, results))
            else:
                for name, spec in specs.items():
                    self.log(
                        f"bulk: peak RSS, {spec['inputs']:,} texts, batch_size {spec['batch']}, "
                        f"max_concurrency {spec['concurrency']}"
                    )
                    runs[name] = self.worker("rss", spec)
        finally:
            server.stop()
        for name, spec in specs.items():
            if runs.get(name) is not None:
                runs[name].update(
                    inputs=spec["inputs"], batch=spec["batch"], concurrency=spec["concurrency"]
                )
        return runs


def checkpoint_done(output: Path) -> set[int]:
    """Input indexes recorded as done in the checkpoint next to ``output`` (empty if none).

    The sidecar is ``<output>.checkpoint.json`` holding ``done``: ``[start, stop, digest]``
    ranges (aligneai/_bulk/_checkpoint.py).
    """
    path = output.with_name(output.name + ".checkpoint.json")
    if not path.exists():
        return set()
    data = json.loads(path.read_text(encoding="utf-8"))
    done: set[int] = set()
    for item in data.get("done", []):
        start, stop = item[0], item[1]
        done.update(range(start, stop))
    return done


# =============================================================================================
# Verdicts, tables
# =============================================================================================

TARGET_SHARE = 0.95
TARGET_429 = 0.02


def rss_bound(runs: dict[str, Any]) -> float | None:
    """The largest growth of the 1M run that counts as "not growing with the corpus".

    The small run's growth plus a quarter of it and 4 MiB (allocator noise); the 1M run writes
    10x the rows, so a client that held results would grow by hundreds of MiB.
    """
    small = runs.get("small")
    return None if small is None else small["growth"] * 1.25 + 4 * MiB


def summarize(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The group's rows (dicts in run.py's Row shape; ``ours``: samples; targets as tuples)."""
    rows: list[dict[str, Any]] = []
    strategies = data.get("strategies", {})
    limit = strategies.get("limit_tokens_per_s", 0.0)

    def row(name: str, unit: str, value: float | None, targets: list[Any] = (), note: str = "",
            error: str = "", skipped: str = "") -> None:  # fmt: skip
        missing = "" if value is not None or skipped else (error or "not measured (see failures)")
        rows.append(
            {
                "group": "bulk", "name": name, "unit": unit,
                "ours": None if value is None else [value],
                "targets": list(targets), "note": note, "error": missing, "skipped": skipped,
            }
        )  # fmt: skip

    for key, label in STRATEGIES.items():
        got = strategies.get(key)
        server = (got or {}).get("server", {})
        if got is None or "error" in server:
            row(f"{label}: sustained tokens/s after warm-up", "% of limit", None,
                error=server.get("error", ""))  # fmt: skip
            continue
        whole = " (over within the warm-up: whole run)" if server["whole_run"] else ""
        window = f"{server['steady_from_s']:.1f}-{server['steady_to_s']:.1f} s after the first"
        row(
            f"{label}: sustained tokens/s after warm-up",
            "% of limit",
            server["share"] * 100,
            note=f"{server['tokens_per_s']:,.0f} of {limit:,.0f} tokens/s, {window} request"
            + whole,
        )
        row(
            f"{label}: tokens after warm-up / what the limit allowed then",
            "%",
            server["allowed_share"] * 100,
            [("abs", ">=", TARGET_SHARE * 100)] if key == "create_many" else [],
            note=f"the refill plus the {server['bucket_at_window_start']:,.0f} tokens the bucket "
            "held at the start" + whole,
        )
        ramp = server["ramp_s"]
        row(
            f"{label}: time from the first request to 95 % of the limit",
            "s",
            ramp,
            note=f"rate over {server['smooth_s']:g} s windows",
            skipped="" if ramp is not None else "never reached",
        )
        row(
            f"{label}: 429s after warm-up",
            "% of requests",
            server["rate_limited_share"] * 100,
            [("abs", "<=", TARGET_429 * 100)] if key == "create_many" else [],
            note=f"{server['rate_limited_after_warmup']:,} of {server['requests_after_warmup']:,}",
        )
        check = got["check"]
        bad = check["lost"] + check["duplicated"] + check["misplaced"]
        row(
            f"{label}: lost + duplicated + misplaced rows",
            "rows",
            bad,
            [("abs", "<=", 0)] if key == "create_many" else [],
            note=f"{check['lost']:,} / {check['duplicated']:,} / {check['misplaced']:,} of "
            f"{check['rows']:,}",
        )
        row(f"{label}: wall time, {got['inputs']:,} inputs", "s", got["wall"])

    kill = data.get("kill")
    if kill is None or "error" in kill:
        row("kill -9 then resume: re-sent inputs", "inputs", None,
            error=(kill or {}).get("error", ""))  # fmt: skip
    else:
        row(
            "kill -9 then resume: inputs re-sent by the resumed run",
            "inputs",
            kill["resent"],
            [("abs", "<=", kill["in_flight_at_kill"])],
            note=f"in flight at the kill (sent, not checkpointed): {kill['in_flight_at_kill']:,}; "
            f"killed after {kill['kill_after_requests']} of {kill['batches']} requests",
        )
        bad = kill["rows_differing_from_uninterrupted"]
        row(
            f"kill -9 then resume: rows differing from {kill['reference']}",
            "rows",
            bad,
            [("abs", "<=", 0)],
            note=f"{kill['check']['rows']:,} rows, bytewise; vs the embedder: "
            f"{kill['check']['lost']} / {kill['check']['duplicated']} / "
            f"{kill['check']['misplaced']} lost / duplicated / misplaced",
        )

    runs = data.get("rss", {})
    bound = rss_bound(runs)
    for key in ("small", "large", "small_4x"):
        got = runs.get(key)
        if got is None:
            row(f"create_many -> .npy peak RSS growth ({key})", "B", None)
            continue
        targets = [("abs", "<=", bound)] if key == "large" and bound is not None else []
        if got["wrong_rows"] or got["count"] != got["inputs"]:
            targets.append(("abs", "<=", -1.0))  # wrong rows fail the row whatever the memory
        row(
            f"create_many -> .npy, {got['inputs']:,} short texts (generator): peak RSS growth",
            "B",
            got["growth"],
            targets,
            note=f"batch_size {got['batch']} x max_concurrency {got['concurrency']}; anon "
            f"{got['anon_growth'] / MiB:.1f} MiB, file-backed {got['file_growth'] / MiB:.1f} MiB; "
            f"{got['wall']:.1f} s; wrong rows {got['wrong_rows']}",
        )
    return rows


def side_by_side(data: dict[str, Any]) -> str:
    """The README table: the three strategies as columns, then the kill and memory lines."""
    plan = data["plan"]
    strategies = data.get("strategies", {})
    limit = strategies.get("limit_tokens_per_s", 0.0)
    lines: list[str] = []
    heads = ["", *(f"{label}" for label in STRATEGIES.values())]
    lines += ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]

    def cells(fn: Callable[[dict[str, Any]], str]) -> list[str]:
        out = []
        for key in STRATEGIES:
            got = strategies.get(key)
            try:
                out.append(fn(got) if got is not None else "failed")
            except (KeyError, TypeError):
                out.append("—")
        return out

    def line(label: str, fn: Callable[[dict[str, Any]], str]) -> None:
        lines.append("| " + " | ".join([label, *cells(fn)]) + " |")

    line("inputs", lambda g: f"{g['inputs']:,}")
    line(
        f"sustained tokens/s after {plan['warmup']:g} s (share of the {limit:,.0f} limit)",
        lambda g: (
            f"— (over in {g['server']['window_s']:.1f} s) ¹"
            if g["server"]["whole_run"]
            else f"{g['server']['tokens_per_s']:,.0f} ({g['server']['share'] * 100:.1f} %)"
        ),
    )
    line(
        "tokens after warm-up / what the limit allowed then ²",
        lambda g: (
            "— ¹" if g["server"]["whole_run"] else f"{g['server']['allowed_share'] * 100:.1f} %"
        ),
    )
    line(
        "time from the first request to 95 % of the limit",
        lambda g: "never" if g["server"]["ramp_s"] is None else f"{g['server']['ramp_s']:.1f} s",
    )
    line(
        "429s / requests after warm-up",
        lambda g: (
            f"{g['server']['rate_limited_after_warmup']:,} / "
            f"{g['server']['requests_after_warmup']:,} "
            f"({g['server']['rate_limited_share'] * 100:.1f} %)"
            + (" ¹" if g["server"]["whole_run"] else "")
        ),
    )
    line(
        "lost / duplicated / misplaced rows",
        lambda g: (
            f"{g['check']['lost']:,} / {g['check']['duplicated']} / {g['check']['misplaced']}"
        ),
    )
    line("wall time", lambda g: f"{g['wall']:.1f} s")
    line(
        "rows delivered per second (wall)",
        lambda g: f"{(g['check']['rows'] - g['check']['lost']) / g['wall']:,.0f}",
    )
    if any((strategies.get(key) or {}).get("server", {}).get("whole_run") for key in STRATEGIES):
        lines += ["", "¹ over within the warm-up: no sustained figure; 429s over the whole run"]
    lines += [
        "",
        "² the refill over the window plus what the server's token bucket held at its start: "
        "budget left unused during a slow ramp lets a client exceed the limit for a while, "
        "which the tokens/s above count and this does not (at most 100 %)",
    ]
    out = "\n".join(lines) if strategies else ""
    kill = data.get("kill")
    extra = []
    if kill and "error" not in kill:
        extra.append(
            f"- kill -9 after {kill['kill_after_requests']} of {kill['batches']} requests "
            f"({kill['killed_at_s']:.1f} s in), then `resume=True`: {kill['resent']:,} inputs "
            f"re-sent, {kill['in_flight_at_kill']:,} were in flight (sent, not checkpointed; "
            f"{kill['checkpointed_at_kill']:,} checkpointed); "
            f"{kill['rows_differing_from_uninterrupted']} of {kill['check']['rows']:,} rows "
            f"differ from {kill['reference']} (bytewise)."
        )
    elif kill:
        extra.append(f"- kill -9 then resume: {kill['error']}")
    runs = data.get("rss", {})
    for key in ("small", "large", "small_4x"):
        got = runs.get(key)
        if got:
            extra.append(
                f'- peak RSS growth, `create_many(output="….npy")` over {got["inputs"]:,} '
                f"short texts (a generator), batch_size {got['batch']} x max_concurrency "
                f"{got['concurrency']}: {got['growth'] / MiB:.1f} MiB "
                f"(anonymous {got['anon_growth'] / MiB:.1f} MiB; {got['wall']:.1f} s)"
            )
    return "\n\n".join(part for part in (out, "\n".join(extra)) if part)


# =============================================================================================
# Entry points
# =============================================================================================


def _cpus() -> tuple[int | None, int | None]:
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) >= 2 and hasattr(os, "sched_setaffinity"):
        return cpus[0], cpus[1]
    return None, None


def measure(quick: bool, only: set[str] | None = None, seed: int | None = None,
            log: Callable[[str], None] = print) -> dict[str, Any]:  # fmt: skip
    """Run the group in this process (the servers) and fresh workers; return the raw data."""
    plan = QUICK if quick else FULL
    client_cpu, server_cpu = _cpus()
    if server_cpu is not None:
        os.sched_setaffinity(0, {server_cpu})  # the servers' threads
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIGNEAI_", "OPENAI_"))}
    env = {
        k: v for k, v in env.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    seed = random.SystemRandom().randrange(1 << 30) if seed is None else seed
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="aligneai-bulk-"))
    harness = Harness(plan, quick, tmp, client_cpu, server_cpu, env, log)
    data: dict[str, Any] = {"plan": asdict(plan), "mode": "quick" if quick else "full"}
    parts = only or {"strategies", "kill", "rss"}
    try:
        if "strategies" in parts:
            data["strategies"] = harness.strategies()
        if "kill" in parts:
            data["kill"] = harness.kill_resume(seed)
        if "rss" in parts:
            data["rss"] = harness.rss()
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    data["elapsed_s"] = time.monotonic() - started
    data["failures"] = harness.failures
    data["pinning"] = (
        f"client on CPU {client_cpu}, servers on CPU {server_cpu}"
        if client_cpu is not None
        else "not pinned"
    )
    data["rows"] = summarize(data)
    data["table"] = side_by_side(data)
    return data


def report(data: dict[str, Any]) -> str:
    plan = data["plan"]
    limit = plan["tokens_per_minute"] / 60
    request_tokens = plan["batch"] * TOKENS_PER_TEXT
    request_seconds = plan["latency"] + plan["batch"] * plan["latency_per_input"]
    needed = limit / (request_tokens / request_seconds)
    header = [
        "# AligneAI bulk embedding benchmark",
        "",
        f"- run: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {data['mode']}, "
        f"{data['elapsed_s']:.0f} s; Python {platform.python_version()}; {data['pinning']}; "
        f"load average {loadavg()}",
        f"- server: `LocalServer(tokens_per_minute={plan['tokens_per_minute']:,}, "
        f"requests_per_minute={plan['requests_per_minute']:,}, latency={plan['latency']:g}, "
        f"latency_per_input={plan['latency_per_input']:g})`: {limit:,.0f} tokens/s bind; a "
        f"request of {plan['batch']} inputs ({request_tokens:,} tokens) takes "
        f"{request_seconds:g} s, so the limit needs {needed:.0f} requests in flight; the token "
        "bucket is drained before each strategy",
        f"- every strategy sends {plan['batch']} inputs per request, "
        f"`dimensions={plan['dims']}`; every row is checked against `aligneai.testing.embed`",
        "",
        data["table"],
    ]
    if data["failures"]:
        header += ["", "Failures:", ""] + [f"- {f}" for f in data["failures"]]
    return "\n".join(header) + "\n"


def runner_rows(runner: Any) -> list[Any]:
    """run.py's ``bulk`` group: this file in a subprocess, its rows as `report.Row` objects."""
    from report import Row, Stats, Target  # benchmarks/report.py (run.py's rows)

    out = runner.tmp / "bulk.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--json", str(out)]
    if runner.args.quick:
        command.append("--quick")
    runner.progress("bulk: rate-limited corpus, kill/resume, memory (~3 min; --quick 15 s)")
    plan = QUICK if runner.args.quick else FULL
    try:
        subprocess.run(
            command, cwd=runner.tmp, env=runner.env, timeout=plan.worker_timeout * 8,
            check=False, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        data = json.loads(out.read_text(encoding="utf-8"))
    except (OSError, ValueError, subprocess.SubprocessError) as error:
        runner.failures.append(f"bulk: {error}")
        return [Row("bulk", "the bulk group", "s", error=str(error))]
    runner.failures.extend(f"bulk: {failure}" for failure in data["failures"])
    runner.raw["bulk"] = {k: v for k, v in data.items() if k != "rows"}
    rows = []
    for spec in data["rows"]:
        ours = spec.pop("ours")
        targets = [Target(*t) for t in spec.pop("targets")]
        rows.append(Row(**spec, ours=None if ours is None else Stats.of(ours), targets=targets))
    return rows


def update_readme(table: str) -> None:
    """Copy the table (without its title) into every file with a ``bulk-results`` section."""
    from readme import update_sections  # benchmarks/readme.py

    for path in update_sections(README_SECTION, table.split("\n", 2)[2]):
        print(f"written: {path}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Bulk embedding benchmark (issue #11).")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (< 15 s): smoke test")
    parser.add_argument("--only", default="", help="parts: strategies,kill,rss")
    parser.add_argument("--seed", type=int, help="the kill point's seed (default: random)")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="bulk.md/.json here")
    parser.add_argument("--json", type=Path, help="write only the raw JSON here (run.py)")
    parser.add_argument("--update-readme", action="store_true", help="table into README.md")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(args.worker)
    only = set(args.only.split(",")) if args.only else None
    t0 = time.monotonic()
    data = measure(
        args.quick,
        only,
        args.seed,
        log=lambda line: print(f"[{time.monotonic() - t0:5.1f} s] {line}", file=sys.stderr),
    )
    text_ = report(data)
    if args.json:
        args.json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    else:
        print(text_)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bulk.md").write_text(text_, encoding="utf-8")
        (args.out / "bulk.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        if args.update_readme:
            update_readme(text_)
    return 1 if data["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
