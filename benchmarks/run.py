"""AligneAI benchmarks (issue #8): per-call cost, throughput, decoding, import time and memory.

    python benchmarks/run.py              # the full suite (< 10 minutes on 2 cores)
    python benchmarks/run.py --quick      # tiny counts (< 60 s): a smoke test of the whole suite
    python benchmarks/run.py --no-peers   # without openai (its rows show "—", its targets SKIP)

Every figure is measured in a fresh worker process (this same file, run with ``--worker``) pinned
to one core, against `server.py` pinned to the other core, and compared with a *floor* (the
least a client can do: raw urllib3 / aiohttp and ``json.loads``) and the *peer* (openai, same
server, same payload). The runner prints one table (medians, min-max, ratios, PASS/MISS against
the targets of issue #8) and writes it to ``benchmarks/results/latest.md`` and ``latest.json``
(``--out DIR`` writes elsewhere). See benchmarks/README.md for how to read it.

Never run it with the repository root on ``sys.path``: the source folder ``./aligneai`` has no
``core/`` and would shadow the installed package. Workers run in a temporary directory.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:  # benchmarks/ (never the repo root) for `import server`
    sys.path.insert(0, str(HERE))

import server as bench_server  # noqa: E402  (after the sys.path fix above)

MiB = 1024 * 1024
API_KEY = "bench-key"
MODEL = "bench-model"
# A legal stream has one item per input: at most MAX_INPUTS (the core's limit) items.
MAX_STREAM_ITEMS = 2048
STREAM_FLAT = 2 * MiB  # the stream memory target: the growth after the first stream
STREAM_WARMUP = 50  # items of the warm-up stream before a stream measurement
# Environment variables that would change what a client does (proxies, logging).
_SCRUBBED_ENV = (
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "ALIGNEAI_LOG",
    "OPENAI_LOG",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "ALIGNEAI_BASE_URL",
    "ALIGNEAI_API_KEY",
)


@dataclass(frozen=True)
class Budget:
    """How much of everything to run (``--quick`` or the full suite)."""

    sync_rounds: int
    sync_calls: dict[str, int]  # calls per round, by payload size
    sync_warmup: dict[str, int]
    async_concurrency: tuple[int, ...]
    async_rounds: int
    async_round_seconds: float
    decode_rounds: int
    import_runs: int
    rss_repeats: int
    stream_count: int  # consecutive streams over one client, of stream_items items each
    stream_items: int
    stream_repeats: int  # stream workers per client (each runs all the streams)
    worker_timeout: float
    total_seconds: float  # stop starting new measurements after this (a safety net)
    passes: int = 1  # see Runner.measure
    # openai takes seconds per large float call: --quick leaves those cases out.
    peer_large_float: bool = True


FULL = Budget(
    sync_rounds=6,
    sync_calls={"small": 200, "medium": 20, "large": 1},
    sync_warmup={"small": 30, "medium": 3, "large": 1},
    async_concurrency=(1, 16, 64),
    async_rounds=6,
    async_round_seconds=0.7,
    decode_rounds=15,
    import_runs=10,
    rss_repeats=3,
    stream_count=49,  # 100,352 items in all
    stream_items=MAX_STREAM_ITEMS,
    stream_repeats=2,
    worker_timeout=240.0,
    total_seconds=1200.0,  # a loaded 2-core machine takes ~13 minutes with bulk
    passes=2,
)
QUICK = Budget(
    sync_rounds=2,
    sync_calls={"small": 10, "medium": 2, "large": 1},
    sync_warmup={"small": 2, "medium": 1, "large": 0},
    async_concurrency=(1, 64),
    async_rounds=2,
    async_round_seconds=0.1,
    decode_rounds=2,
    import_runs=1,
    rss_repeats=1,
    stream_count=3,
    stream_items=1000,
    stream_repeats=1,
    worker_timeout=90.0,
    total_seconds=150.0,
    peer_large_float=False,
)


# =============================================================================================
# Workers: each runs in a fresh process and prints one "RESULT <json>" line.
# =============================================================================================


def _pin(cpu: int | None) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


def _inputs(n: int) -> list[str]:
    return [f"benchmark input number {i}" for i in range(n)]


def _b64_floats(value: str) -> list[float]:
    """The floor's base64 decoding: what any client must do at least."""
    import array
    import binascii

    floats = array.array("f", binascii.a2b_base64(value))
    if sys.byteorder == "big":  # pragma: no cover - the wire is little-endian
        floats.byteswap()
    return floats.tolist()


def _b64_matrix(data: list[dict[str, Any]]) -> Any:
    """The floor's base64 -> numpy matrix: one buffer, one frombuffer, no Python floats."""
    import binascii

    import numpy as np

    raw = b"".join([binascii.a2b_base64(item["embedding"]) for item in data])
    return np.frombuffer(raw, dtype="<f4").reshape(len(data), -1)


class SyncCaller:
    """One sync client calling the benchmark server: ``call(payload_key=None) -> result``.

    The client sends ``x-bench-payload: <key>`` as a default header; ``call(key)`` overrides it
    per call (the RSS measurements warm up on a small payload first). Every call sends as many
    inputs as its payload has embeddings: the client checks each answer against its request
    (one embedding per input), so a 512-input call answered with one embedding is an error.
    """

    def __init__(
        self, client: str, port: int, key: str, fmt: str, n: int, *, matrix: bool = False
    ) -> None:
        self.client = client
        self.fmt = fmt
        base_url = f"http://127.0.0.1:{port}/v1"
        inputs = _inputs(n)
        # The inputs of a call with another payload: as many as that payload has embeddings.
        other: dict[str, list[str]] = {
            f"{size}-{f}": _inputs(count)
            for size, (count, _) in bench_server.SIZES.items()
            for f in bench_server.FORMATS
        }
        if client == "aligneai":
            from aligneai import AligneAI

            c = AligneAI(
                api_key=API_KEY,
                base_url=base_url,
                max_retries=0,
                default_headers={"x-bench-payload": key},
            )
            create: Callable[..., Any] = c.embeddings.create
            # base64 is the default wire format: the "base64" rows are the default path.
            kwargs: dict[str, Any] = {} if fmt == "base64" else {"encoding_format": "float"}
            if matrix:  # the numpy output path: base64 straight into a float32 matrix
                create, kwargs = c.embeddings.create_matrix, {}

            def call(override: str | None = None) -> Any:
                if override is None:
                    return create(inputs=inputs, **kwargs)
                headers = {"x-bench-payload": override}
                return create(inputs=other[override], extra_headers=headers, **kwargs)

            self.close: Callable[[], None] = c.close
        elif client == "openai":
            import openai

            oc = openai.OpenAI(
                api_key=API_KEY,
                base_url=base_url,
                max_retries=0,
                default_headers={"x-bench-payload": key},
            )
            ocreate = oc.embeddings.create
            # openai's default (no encoding_format) asks for base64 and decodes it to floats;
            # an explicit "base64" would hand back the strings, so it is never passed.
            okwargs: dict[str, Any] = {} if fmt == "base64" else {"encoding_format": "float"}

            def call(override: str | None = None) -> Any:
                if override is None:
                    return ocreate(model=MODEL, input=inputs, **okwargs)
                return ocreate(
                    model=MODEL,
                    input=other[override],
                    extra_headers={"x-bench-payload": override},
                    **okwargs,
                )

            self.close = oc.close
        elif client == "floor":
            import urllib3

            pool = urllib3.PoolManager()
            url = base_url + "/embeddings"
            headers = {
                "Authorization": f"Bearer {API_KEY}",
                "Content-Type": "application/json",
                "x-bench-payload": key,
            }
            request_body = {"inputs": inputs, "encoding_format": fmt}
            decode = fmt == "base64"

            def call(override: str | None = None) -> Any:
                body, h = request_body, headers
                if override is not None:
                    body = {"inputs": other[override], "encoding_format": fmt}
                    h = {**headers, "x-bench-payload": override}
                response = pool.request("POST", url, body=json.dumps(body).encode(), headers=h)
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}")
                data = json.loads(response.data)["data"]
                if decode:
                    return [_b64_floats(item["embedding"]) for item in data]
                return [item["embedding"] for item in data]

            self.close = pool.clear
        else:
            raise ValueError(client)
        self.call = call

    def vectors(self, result: Any) -> list[list[float]]:
        """The embeddings of a result, as lists of floats (for the sanity check)."""
        if self.client == "floor":
            return list(result)
        return [item.embedding for item in result.data]


def _check(vectors: list[list[float]], n: int, dims: int) -> None:
    if len(vectors) != n or any(len(v) != dims for v in vectors):
        raise AssertionError(f"expected {n} vectors of {dims}, got {[len(v) for v in vectors]}")
    if not all(type(x) is float for v in vectors[:2] for x in v[:8]):
        raise AssertionError("embeddings are not lists of floats")


def worker_sync(spec: dict[str, Any]) -> dict[str, Any]:
    """Sequential calls: client CPU (process_time) and wall per call, per round."""
    n, dims = bench_server.SIZES[spec["size"]]
    key = f"{spec['size']}-{spec['fmt']}"
    caller = SyncCaller(spec["client"], spec["port"], key, spec["fmt"], n)
    call = caller.call
    result = None
    for _ in range(spec["warmup"]):
        result = call()
    cpu, wall = [], []
    calls = spec["calls"]
    for _ in range(spec["rounds"]):
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in range(calls):
            result = call()
        w1, c1 = time.perf_counter(), time.process_time()
        cpu.append((c1 - c0) / calls)
        wall.append((w1 - w0) / calls)
    _check(caller.vectors(result), n, dims)
    caller.close()
    return {"cpu": cpu, "wall": wall}


def _async_caller(client: str, port: int, key: str) -> tuple[Any, Any]:
    """(call, close) coroutine functions for one async client, small payload, default format."""
    base_url = f"http://127.0.0.1:{port}/v1"
    inputs = _inputs(bench_server.SIZES["small"][0])
    if client == "aligneai":
        from aligneai import AsyncAligneAI

        c = AsyncAligneAI(
            api_key=API_KEY,
            base_url=base_url,
            max_retries=0,
            default_headers={"x-bench-payload": key},
        )
        create = c.embeddings.create

        async def call() -> Any:
            return await create(inputs=inputs)

        return call, c.close
    if client == "openai":
        import openai

        oc = openai.AsyncOpenAI(
            api_key=API_KEY,
            base_url=base_url,
            max_retries=0,
            default_headers={"x-bench-payload": key},
        )
        ocreate = oc.embeddings.create

        async def ocall() -> Any:
            return await ocreate(model=MODEL, input=inputs)

        return ocall, oc.close
    if client == "floor":
        import aiohttp

        session = aiohttp.ClientSession()
        url = base_url + "/embeddings"
        headers = {
            "Authorization": f"Bearer {API_KEY}",
            "Content-Type": "application/json",
            "x-bench-payload": key,
        }
        request_body = {"inputs": inputs, "encoding_format": "base64"}

        async def fcall() -> Any:
            async with session.post(
                url, data=json.dumps(request_body).encode(), headers=headers
            ) as response:
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}")
                raw = await response.read()
            return [_b64_floats(item["embedding"]) for item in json.loads(raw)["data"]]

        return fcall, session.close
    raise ValueError(client)


def worker_async(spec: dict[str, Any]) -> dict[str, Any]:
    """Throughput (requests/s) of ``concurrency`` tasks sharing one client."""
    import asyncio

    concurrency = spec["concurrency"]

    async def run_n(call: Any, n: int) -> float:
        shared = iter(range(n))

        async def task() -> None:
            for _ in shared:
                await call()

        start = time.perf_counter()
        await asyncio.gather(*[task() for _ in range(concurrency)])
        return time.perf_counter() - start

    async def main() -> list[float]:
        call, close = _async_caller(spec["client"], spec["port"], "small-base64")
        try:
            per_task = spec.get("per_task", 4)  # the least number of calls per task and round
            await run_n(call, max(per_task * concurrency, 20))  # connections, code paths
            n_cal = max(per_task * concurrency, 50)
            rate = n_cal / await run_n(call, n_cal)
            n = max(per_task * concurrency, int(rate * spec["round_seconds"]))
            rps = []
            for _ in range(spec["rounds"]):
                rps.append(n / await run_n(call, n))
            return rps
        finally:
            await close()

    return {"rps": asyncio.run(main())}


def _decode_variant(name: str, payload_dir: Path) -> Callable[[], Any]:
    fmt = "float" if name.startswith("float") else "base64"
    body = (payload_dir / f"large-{fmt}.json").read_bytes()
    if name.endswith("/aligneai") or name.endswith("/aligneai-numpy"):
        from aligneai.core.models import CreateEmbeddingResponse
        from aligneai.core.parsing import parse_model
        from aligneai.core.response import ResponseHead

        head = ResponseHead(200, {})
        if name.endswith("-numpy"):
            if fmt == "base64":
                # The numpy output path (embeddings.create_matrix): no Python floats at all.
                from aligneai.core.matrix import parse_matrix

                return lambda: parse_matrix(head, body).matrix
            return lambda: parse_model(head, body, CreateEmbeddingResponse).to_numpy()
        return lambda: parse_model(head, body, CreateEmbeddingResponse)
    if name == "float/json.loads":
        return lambda: json.loads(body)
    if name == "float/orjson.loads":
        import orjson

        return lambda: orjson.loads(body)
    if name == "float/floor-numpy":
        import numpy as np

        return lambda: np.array(
            [item["embedding"] for item in json.loads(body)["data"]], dtype=np.float32
        )
    if name == "base64/floor":
        return lambda: [_b64_floats(item["embedding"]) for item in json.loads(body)["data"]]
    if name == "base64/floor-numpy":
        return lambda: _b64_matrix(json.loads(body)["data"])
    raise ValueError(name)


def worker_decode(spec: dict[str, Any]) -> dict[str, Any]:
    """CPU time of decoding the large payload (no network), per round."""
    run = _decode_variant(spec["variant"], Path(spec["payload_dir"]))
    run()  # warm-up (imports, caches)
    cpu = []
    for _ in range(spec["rounds"]):
        c0 = time.process_time()
        run()
        cpu.append(time.process_time() - c0)
    return {"cpu": cpu}


def _maxrss_bytes() -> int:
    """This process's peak RSS, in bytes.

    On Linux, VmHWM: the kernel's ru_maxrss is max(VmHWM, the peak RSS of the process image
    replaced by exec), i.e. a fresh worker would inherit the runner's own peak; VmHWM is the
    worker's alone, and `_reset_peak` can reset it. Elsewhere, ru_maxrss.
    """
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _reset_peak() -> bool:
    """Reset the peak RSS to the current RSS (Linux: clear_refs 5); False where impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def worker_rss(spec: dict[str, Any]) -> dict[str, Any]:
    """Peak RSS growth (ru_maxrss delta) of one large call, after a warm-up on a small one."""
    import gc

    n, dims = bench_server.SIZES["large"]
    fmt = spec["fmt"]
    numpy_out = spec.get("numpy", False)  # aligneai only: the floor's is worker_rss_floor_numpy
    caller = SyncCaller(spec["client"], spec["port"], f"large-{fmt}", fmt, n, matrix=numpy_out)
    if numpy_out:
        import numpy  # noqa: F401  (imported before the baseline, as an application would)
    warm = caller.call(f"small-{fmt}")
    del warm
    gc.collect()
    reset = _reset_peak()
    before = _maxrss_bytes()
    result = caller.call().matrix if numpy_out else caller.call()
    after = _maxrss_bytes()
    if numpy_out:
        assert result.shape == (n, dims)
    else:
        _check(caller.vectors(result), n, dims)
    return {"growth": after - before, "exact": reset}


def worker_rss_floor_numpy(spec: dict[str, Any]) -> dict[str, Any]:
    """The floor of a numpy result: urllib3, json.loads, one frombuffer."""
    import gc

    import numpy  # noqa: F401
    import urllib3

    pool = urllib3.PoolManager()
    url = f"http://127.0.0.1:{spec['port']}/v1/embeddings"

    def call(key: str) -> Any:
        n = bench_server.SIZES[key.split("-")[0]][0]  # one input per embedding, as the client
        body = json.dumps({"inputs": _inputs(n), "encoding_format": "base64"}).encode()
        response = pool.request(
            "POST",
            url,
            body=body,
            headers={"Content-Type": "application/json", "x-bench-payload": key},
        )
        return _b64_matrix(json.loads(response.data)["data"])

    call("small-base64")
    gc.collect()
    reset = _reset_peak()
    before = _maxrss_bytes()
    matrix = call("large-base64")
    after = _maxrss_bytes()
    assert matrix.shape == bench_server.SIZES["large"]
    return {"growth": after - before, "exact": reset}


def _stream_opener(client: str, port: int) -> tuple[Callable[[int], Any], Callable[[], None]]:
    """(stream, close): ``stream(n)`` sends n inputs and iterates the n items of the answer.

    Each item comes out as ``(index, embedding as a list of floats)``. The floor reads the same
    SSE body with urllib3 and decodes each ``embedding`` event (json.loads + base64): the least
    a client can do with it.
    """
    base_url = f"http://127.0.0.1:{port}/v1"
    # One input per streamed item: the client checks the indexes against its inputs.
    inputs = {n: _inputs(n) for n in (STREAM_WARMUP, MAX_STREAM_ITEMS)}

    def headers_for(n: int) -> dict[str, str]:
        return {"x-bench-payload": "stream-base64", "x-bench-stream-items": str(n)}

    if client == "aligneai":
        from aligneai import AligneAI

        c = AligneAI(api_key=API_KEY, base_url=base_url, max_retries=0)

        def stream(n: int) -> Any:
            texts = inputs.get(n) or _inputs(n)
            with c.embeddings.create(inputs=texts, stream=True, extra_headers=headers_for(n)) as s:
                for item in s:
                    yield item.index, item.embedding

        return stream, c.close
    if client == "floor":
        import urllib3

        pool = urllib3.PoolManager()
        url = base_url + "/embeddings"

        def fstream(n: int) -> Any:
            texts = inputs.get(n) or _inputs(n)
            body = json.dumps({"inputs": texts, "encoding_format": "base64", "stream": True})
            headers = {
                "Authorization": f"Bearer {API_KEY}",
                "Content-Type": "application/json",
                **headers_for(n),
            }
            response = pool.request(
                "POST", url, body=body.encode(), headers=headers, preload_content=False
            )
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}")
            buffer = b""
            for chunk in response.stream(65536):
                buffer += chunk
                *events, buffer = buffer.split(b"\n\n")
                for event in events:
                    name, _, data = event.partition(b"\ndata: ")
                    if name == b"event: embedding":
                        item = json.loads(data)
                        yield item["index"], _b64_floats(item["embedding"])
            response.release_conn()

        return fstream, pool.clear
    raise ValueError(client)


def worker_stream(spec: dict[str, Any]) -> dict[str, Any]:
    """Consecutive streams over one client: peak RSS after the first stream vs after the last.

    A legal stream has one item per input, so at most `MAX_STREAM_ITEMS`: a long-running
    consumer is many such streams in a row. Memory that stays flat after the first stream (its
    buffers and code paths) does not grow with what streamed through; items/s over all streams.
    """
    import gc

    streams, items = spec["streams"], spec["items"]
    stream, close = _stream_opener(spec["client"], spec["port"])
    for _ in stream(STREAM_WARMUP):  # imports, the connection, first allocations
        pass
    gc.collect()
    reset = _reset_peak()
    start_rss = _maxrss_bytes()
    at_first = start_rss
    peaks: list[int] = []  # the peak RSS after each stream
    t0 = time.perf_counter()
    for number in range(streams):
        seen = 0
        for index, embedding in stream(items):
            seen += 1
            if len(embedding) != bench_server.STREAM_DIMS or not 0 <= index < items:
                raise AssertionError(f"bad stream item {index}")
        if seen != items:
            raise AssertionError(f"stream {number} gave {seen} of {items} items")
        peaks.append(_maxrss_bytes())
        if number == 0:
            at_first = peaks[0]
    elapsed = time.perf_counter() - t0
    at_end = _maxrss_bytes()
    close()
    prefix, suffix = bench_server.stream_event_parts("base64")
    per_stream = sum(len(prefix) + len(suffix) + len(str(i)) for i in range(items))
    return {
        "growth": [at_end - at_first],
        "first_growth": [at_first - start_rss],
        "wire_bytes": [(streams - 1) * per_stream],
        "items_per_s": [streams * items / elapsed],
        "later_growth": [at_end - peaks[min(1, len(peaks) - 1)]],  # after the second stream
        "peaks": [peak - start_rss for peak in peaks],
        "exact": reset,
    }


def worker_batch(spec: dict[str, Any]) -> dict[str, Any]:
    """Several measurements in one process (--quick only: it saves the start-up costs)."""
    return {"results": [WORKERS[job["kind"]]({**spec, **job}) for job in spec["jobs"]]}


WORKERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "batch": worker_batch,
    "sync": worker_sync,
    "async": worker_async,
    "decode": worker_decode,
    "rss": worker_rss,
    "rss_floor_numpy": worker_rss_floor_numpy,
    "stream": worker_stream,
}


def worker_main(spec_json: str) -> int:
    spec = json.loads(spec_json)
    _pin(spec.get("cpu"))
    result = WORKERS[spec["kind"]](spec)
    print("RESULT " + json.dumps(result), flush=True)
    return 0


# =============================================================================================
# The runner
# =============================================================================================


@dataclass
class Stats:
    median: float
    min: float
    max: float

    @classmethod
    def of(cls, samples: list[float]) -> Stats:
        return cls(statistics.median(samples), min(samples), max(samples))


@dataclass
class Target:
    against: str  # "floor", "peer" or "abs"
    op: str  # "<=", ">=", "<"
    value: float

    def describe(self, unit: str, scale: float) -> str:
        sign = {"<=": "≤", ">=": "≥", "<": "<"}[self.op]
        if self.against == "abs":  # the value is in the row's base unit (s, B, ...)
            return f"{sign} {_num(self.value * scale)} {unit}"
        return f"{sign}{self.value:g}x {self.against}"

    def check(self, ratio: float) -> bool:
        if self.op == "<=":
            return ratio <= self.value
        if self.op == ">=":
            return ratio >= self.value
        return ratio < self.value


@dataclass
class Row:
    group: str
    name: str
    unit: str  # "s", "req/s", "B", "items/s"
    ours: Stats | None = None
    floor: Stats | None = None
    peer: Stats | None = None
    targets: list[Target] = field(default_factory=list)
    note: str = ""
    error: str = ""
    skipped: str = ""  # why the row was not measured (an optional package is missing)

    def ratio(self, other: Stats | None) -> float | None:
        if self.ours is None or other is None or other.median == 0:
            return None
        return self.ours.median / other.median

    def verdict(self) -> str:
        if self.error:
            return "ERROR"
        if self.skipped:
            return "SKIP" if self.targets else ""
        if not self.targets:
            return ""
        if self.ours is None:
            return "SKIP"
        results = []
        for target in self.targets:
            if target.against == "abs":
                results.append(target.check(self.ours.median))
                continue
            ratio = self.ratio(self.floor if target.against == "floor" else self.peer)
            if ratio is not None:
                results.append(target.check(ratio))
        if not results:
            return "SKIP"
        status = "PASS" if all(results) else "MISS"
        return status if len(results) == len(self.targets) else status + "*"


def _display_unit(row: Row) -> tuple[str, float]:
    if row.unit == "s":
        ref = row.ours.median if row.ours else (row.floor.median if row.floor else 1.0)
        if ref < 1e-3:
            return "µs", 1e6
        if ref < 1.0:
            return "ms", 1e3
        return "s", 1.0
    if row.unit == "B":
        return "MiB", 1.0 / MiB
    if row.unit == "instr":
        return "k instr", 1e-3
    return row.unit, 1.0


def _num(value: float) -> str:
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _cell(stats: Stats | None, scale: float) -> str:
    if stats is None:
        return "—"
    text = _num(stats.median * scale)
    if stats.min != stats.max:
        text += f" ({_num(stats.min * scale)}-{_num(stats.max * scale)})"
    return text


def render_table(rows: list[Row]) -> str:
    header = (
        "| Measurement | Unit | AligneAI median (min-max) | Floor | Peer (openai) "
        "| xfloor | xpeer | Target | Result |"
    )
    lines = [header, "|" + "---|" * 9]
    for row in rows:
        unit, scale = _display_unit(row)
        rf, rp = row.ratio(row.floor), row.ratio(row.peer)
        targets = ", ".join(t.describe(unit, scale) for t in row.targets)
        if row.error:
            ours = "ERROR: " + row.error
        elif row.skipped:
            ours = "skipped: " + row.skipped
        else:
            ours = _cell(row.ours, scale)
        name = f"{row.group}: {row.name}" + (f" — {row.note}" if row.note else "")
        lines.append(
            "| "
            + " | ".join(
                [
                    name,
                    unit,
                    ours,
                    _cell(row.floor, scale),
                    _cell(row.peer, scale),
                    "—" if rf is None else f"{rf:.2f}x",
                    "—" if rp is None else f"{rp:.2f}x",
                    targets or "—",
                    row.verdict() or "—",
                ]
            )
            + " |"
        )
    return "\n".join(lines)


class Runner:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.budget = QUICK if args.quick else FULL
        self.started = time.monotonic()
        self.load_start = _loadavg()
        self.tmp = Path(tempfile.mkdtemp(prefix="aligneai-bench-"))
        self.payload_dir = self.tmp / "payloads"
        self.env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        self.env["PYTHONDONTWRITEBYTECODE"] = "1"
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        if len(cpus) >= 2 and hasattr(os, "sched_setaffinity"):
            self.client_cpu: int | None = cpus[0]
            self.server_cpu: int | None = cpus[1]
            self.pinning = f"client on CPU {cpus[0]}, server on CPU {cpus[1]}"
        else:
            self.client_cpu = self.server_cpu = None
            self.pinning = "not pinned (fewer than 2 CPUs, or no sched_setaffinity)"
        self.have = {name: _installed(name) for name in ("openai", "numpy", "aiohttp", "orjson")}
        self.peers = self.have["openai"] and not args.no_peers
        self.server: subprocess.Popen[str] | None = None
        self.port = 0
        self.failures: list[str] = []
        self.raw: dict[str, Any] = {}

    # -- processes --------------------------------------------------------------------------

    def time_left(self) -> float:
        return self.budget.total_seconds - (time.monotonic() - self.started)

    def start_server(self) -> None:
        bench_server.write_payloads(self.payload_dir)
        command = [sys.executable, str(HERE / "server.py"), "--payload-dir", str(self.payload_dir)]
        if self.server_cpu is not None:
            command += ["--cpu", str(self.server_cpu)]
        command += ["--max-seconds", str(self.budget.total_seconds * 2 + 120)]
        self.server = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=self.tmp,
            env=self.env,
        )
        assert self.server.stdout is not None
        line = self.server.stdout.readline()
        if not line.startswith("READY "):
            raise RuntimeError(f"the benchmark server did not start: {line!r}")
        self.port = int(line.split()[1])

    def stop_server(self) -> None:
        if self.server is None:
            return
        assert self.server.stdin is not None
        self.server.stdin.close()  # EOF: the server stops
        try:
            self.server.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            self.server.kill()
            self.server.wait()

    def worker(self, kind: str, **spec: Any) -> dict[str, Any] | None:
        """Run one measurement in a fresh process; None (and a recorded failure) if it fails."""
        label = f"{kind} {json.dumps(spec, sort_keys=True)}"
        if self.time_left() <= 0:
            self.failures.append(f"{label}: skipped, the time budget is spent")
            return None
        spec.update(kind=kind, port=self.port, cpu=self.client_cpu)
        command = [sys.executable, str(HERE / "run.py"), "--worker", json.dumps(spec)]
        try:
            proc = subprocess.run(
                command,
                cwd=self.tmp,
                env=self.env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=self.budget.worker_timeout,
            )
        except subprocess.TimeoutExpired:
            self.failures.append(f"{label}: timed out after {self.budget.worker_timeout:g} s")
            return None
        for line in reversed(proc.stdout.splitlines()):
            if line.startswith("RESULT "):
                result: dict[str, Any] = json.loads(line[len("RESULT ") :])
                self.raw.setdefault(kind, []).append({"spec": spec, "result": result})
                return result
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        self.failures.append(f"{label}: exit {proc.returncode}: {tail[0]}")
        return None

    def workers(self, kind: str, specs: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
        """Run measurements in fresh processes (with --quick, all in one process)."""
        if not self.args.quick or len(specs) < 2:
            return [self.worker(kind, **spec) for spec in specs]
        batch = self.worker("batch", jobs=[{"kind": kind, **spec} for spec in specs])
        if batch is None:
            return [None] * len(specs)
        results: list[dict[str, Any] | None] = batch["results"]
        return results

    def progress(self, text: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[{elapsed:6.1f} s] {text}", file=sys.stderr, flush=True)

    # -- measurements -----------------------------------------------------------------------

    def clients(self) -> list[str]:
        return ["aligneai", "floor"] + (["openai"] if self.peers else [])

    def measure(
        self,
        kind: str,
        cases: list[Any],
        make_spec: Callable[[Any, str, int], dict[str, Any] | None],
        rounds: int,
        clients: list[str] | None = None,
    ) -> dict[Any, dict[str, dict[str, Any] | None]]:
        """Run ``kind`` for every case and client; merge the per-round samples.

        The full suite splits the rounds into `Budget.passes` passes and alternates the clients
        within each case (case by case), so that a slow drift of the machine (other processes)
        spreads over all clients instead of landing on one. --quick runs each client's cases
        in one process. ``make_spec`` returns None for a combination that is left out.
        """
        got: dict[Any, dict[str, dict[str, Any] | None]] = {case: {} for case in cases}
        clients = clients or self.clients()

        def merge(case: Any, client: str, result: dict[str, Any] | None) -> None:
            if result is None:
                if client not in got[case]:
                    got[case][client] = None
                return
            old = got[case].get(client)
            if old is None:
                got[case][client] = {k: list(v) for k, v in result.items()}
            else:
                for key, values in result.items():
                    old[key].extend(values)

        if self.args.quick:
            for client in clients:
                self.progress(kind if client == "-" else f"{kind} {client}")
                pairs = [(c, make_spec(c, client, rounds)) for c in cases]
                todo = [(c, spec) for c, spec in pairs if spec is not None]
                results = self.workers(kind, [spec for _, spec in todo])
                for (case, _), result in zip(todo, results):
                    merge(case, client, result)
            return got
        passes = self.budget.passes
        per_pass = max(1, -(-rounds // passes))
        for index in range(passes):
            for case in cases:
                self.progress(f"{kind} {case} (pass {index + 1} of {passes})")
                for client in clients:
                    spec = make_spec(case, client, per_pass)
                    if spec is not None:
                        merge(case, client, self.worker(kind, **spec))
        return got

    def sync_rows(self) -> list[Row]:
        b = self.budget
        cases = [(size, fmt) for size in bench_server.SIZES for fmt in ("float", "base64")]

        def make_spec(case: Any, client: str, rounds: int) -> dict[str, Any] | None:
            size, fmt = case
            if client == "openai" and not b.peer_large_float and case == ("large", "float"):
                return None
            return {
                "client": client,
                "size": size,
                "fmt": fmt,
                "rounds": rounds,
                "calls": b.sync_calls[size],
                "warmup": b.sync_warmup[size],
            }

        got = self.measure("sync", cases, make_spec, b.sync_rounds)
        rows = []
        for size, fmt in cases:
            n, dims = bench_server.SIZES[size]
            what = f"{size} {n}x{dims} {fmt}" + (" (default)" if fmt == "base64" else "")
            cpu_targets: list[Target] = []
            if size == "small":
                cpu_targets = [Target("floor", "<=", 1.3), Target("peer", "<=", 0.4)]
            elif size == "medium" and fmt == "base64":
                cpu_targets = [Target("peer", "<=", 0.5)]
            elif size == "large" and fmt == "base64":
                cpu_targets = [Target("peer", "<=", 0.8)]
            for metric, targets in (("cpu", cpu_targets), ("wall", [])):
                label = "CPU" if metric == "cpu" else "wall"
                row = Row("sync", f"{what}, client {label} per call", "s", targets=targets)
                _fill(row, got[(size, fmt)], metric)
                rows.append(row)
        return rows

    def async_rows(self) -> list[Row]:
        rows = []
        if not self.have["aiohttp"]:
            return [Row("async", "throughput", "req/s", skipped="aiohttp is not installed")]
        levels = list(self.budget.async_concurrency)

        def make_spec(concurrency: Any, client: str, rounds: int) -> dict[str, Any]:
            return {
                "client": client,
                "concurrency": concurrency,
                "rounds": rounds,
                "round_seconds": self.budget.async_round_seconds,
                "per_task": 1 if self.args.quick else 4,
            }

        got = self.measure("async", levels, make_spec, self.budget.async_rounds)
        for concurrency in levels:
            targets = (
                [Target("floor", ">=", 0.7), Target("peer", ">=", 5.0)] if concurrency == 64 else []
            )
            row = Row(
                "async",
                f"throughput c={concurrency}, small base64 (default)",
                "req/s",
                targets=targets,
            )
            _fill(row, got[concurrency], "rps")
            rows.append(row)
        return rows

    def decode_rows(self) -> list[Row]:
        n, dims = bench_server.SIZES["large"]

        le12, le13 = [Target("floor", "<=", 1.2)], [Target("floor", "<=", 1.3)]
        specs: list[tuple[str, str, str, list[Target], bool]] = [
            # (name, ours, floor, targets, needs numpy)
            ("float JSON -> model", "float/aligneai", "float/json.loads", le12, False),
            ("base64 -> model (lists)", "base64/aligneai", "base64/floor", le12, False),
            ("base64 -> numpy", "base64/aligneai-numpy", "base64/floor-numpy", le13, True),
            ("float JSON -> numpy", "float/aligneai-numpy", "float/floor-numpy", [], True),
        ]
        floors = {
            "float/json.loads": "json.loads",
            "base64/floor": "json.loads + a2b_base64 + array.tolist",
            "base64/floor-numpy": "json.loads + a2b_base64 + frombuffer",
            "float/floor-numpy": "json.loads + np.array",
            "float/orjson.loads": "orjson.loads",
        }
        if self.have["orjson"]:
            specs.append(
                (
                    "float JSON -> model (vs orjson)",
                    "float/aligneai",
                    "float/orjson.loads",
                    [],
                    False,
                )
            )
        runnable = [spec for spec in specs if self.have["numpy"] or not spec[4]]
        variants = sorted({v for spec in runnable for v in spec[1:3]})
        payloads = str(self.payload_dir)

        def make_spec(variant: Any, client: str, rounds: int) -> dict[str, Any]:
            return {"variant": variant, "rounds": rounds, "payload_dir": payloads}

        # One "client" per variant: measure() alternates the variants pass by pass.
        merged = self.measure("decode", variants, make_spec, self.budget.decode_rounds, ["-"])
        cache = {variant: merged[variant]["-"] for variant in variants}
        rows = []
        for name, ours, floor, targets, needs_numpy in specs:
            row = Row("decode", f"large {n}x{dims} {name}, CPU", "s", targets=targets)
            if needs_numpy and not self.have["numpy"]:
                row.skipped = "numpy is not installed"
                rows.append(row)
                continue
            got = {"aligneai": cache[ours], "floor": cache[floor]}
            row.note = f"floor: {floors[floor]}"
            _fill(row, got, "cpu")
            rows.append(row)
        return rows

    def import_rows(self) -> list[Row]:
        self.progress("import time")
        pin = (
            ""
            if self.client_cpu is None
            else f"import os; os.sched_setaffinity(0, {{{self.client_cpu}}}); "
        )
        runs = self.budget.import_runs

        def python(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, *args],
                cwd=self.tmp,
                env=self.env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
            )

        baseline = _top_level_imports(python("-X", "importtime", "-c", pin + "pass").stderr)

        def measure(statement: str) -> tuple[list[float], list[float]]:
            if not self.args.quick:
                python("-c", pin + statement)  # warm the file cache
            cumulative, wall = [], []
            for _ in range(runs):
                found = _top_level_imports(python("-X", "importtime", "-c", pin + statement).stderr)
                cumulative.append(
                    sum(us for name, us in found.items() if name not in baseline) / 1e6
                )
                t0 = time.perf_counter()
                python("-c", pin + statement)
                wall.append(time.perf_counter() - t0)
            return cumulative, wall

        stmts = {
            "aligneai": "import aligneai",
            "floor": "import urllib3, attrs, cattrs",
            "openai": "import openai",
        }
        results = {}
        for client in self.clients():
            try:
                results[client] = measure(stmts[client])
            except subprocess.CalledProcessError as exc:
                self.failures.append(f"import {client}: {exc.stderr.strip().splitlines()[-1:]}")
        bare = []
        for _ in range(runs):
            t0 = time.perf_counter()
            python("-c", pin + "pass")
            bare.append(time.perf_counter() - t0)
        self.raw["import"] = {k: {"cumulative": v[0], "wall": v[1]} for k, v in results.items()}
        rows = []
        for index, name, targets in (
            (0, "import aligneai (-X importtime, cumulative)", [Target("peer", "<=", 0.25)]),
            (1, "import aligneai, wall of a fresh process", []),
        ):
            row = Row("import", name, "s", targets=targets)
            got = {k: ({"v": v[index]} if v else None) for k, v in results.items()}
            _fill(row, got, "v")
            row.note = "floor: import urllib3, attrs, cattrs"
            if index == 1:
                row.note += f"; bare interpreter {statistics.median(bare) * 1e3:.0f} ms"
            rows.append(row)
        return rows

    def rss_rows(self) -> list[Row]:
        rows = []
        repeats = self.budget.rss_repeats
        for fmt in ("float", "base64"):
            self.progress(f"rss large {fmt}")
            clients = [
                client
                for client in self.clients()
                if client != "openai" or self.budget.peer_large_float or fmt == "base64"
            ]
            samples: dict[str, list[dict[str, Any] | None]] = {c: [] for c in clients}
            for _ in range(repeats):
                for client in clients:
                    samples[client].append(self.worker("rss", client=client, fmt=fmt))
            got = {client: _merge(found, "growth") for client, found in samples.items()}
            row = Row(
                "memory",
                f"peak RSS growth, one large call, {fmt}"
                + (" (default)" if fmt == "base64" else ""),
                "B",
                targets=[Target("floor", "<=", 1.1)],
            )
            _fill(row, got, "growth")
            rows.append(row)
        row = Row(
            "memory",
            "peak RSS growth, one large call, create_matrix() (base64 -> numpy)",
            "B",
            targets=[Target("abs", "<", 16 * MiB)],
            note="floor: json.loads + frombuffer",
        )
        if self.have["numpy"]:
            self.progress("rss large numpy")
            got = {
                "aligneai": _merge(
                    [
                        self.worker("rss", client="aligneai", fmt="base64", numpy=True)
                        for _ in range(repeats)
                    ],
                    "growth",
                ),
                "floor": _merge([self.worker("rss_floor_numpy") for _ in range(repeats)], "growth"),
            }
            _fill(row, got, "growth")
        else:
            row.skipped = "numpy is not installed"
        rows.append(row)
        rows += self.stream_rows()
        return rows

    def stream_rows(self) -> list[Row]:
        """Consecutive streams over one client: memory flat after the first, and items/s."""
        b = self.budget
        count, items, dims = b.stream_count, b.stream_items, bench_server.STREAM_DIMS
        self.progress(f"stream {count} x {items} items")
        samples: dict[str, list[dict[str, Any] | None]] = {"aligneai": [], "floor": []}
        for _ in range(b.stream_repeats):
            for client in samples:  # the floor reads the same streams (urllib3 + json.loads)
                samples[client].append(
                    self.worker("stream", client=client, streams=count, items=items)
                )
        got = {client: _merge_all(found) for client, found in samples.items()}
        what = f"{count} streams of {items:,} items x {dims} dims in a row, one client"
        growth_row = Row("memory", f"{what}: peak RSS growth after the first stream", "B")
        rate_row = Row("stream", f"{what}, base64", "items/s")
        _fill(growth_row, got, "growth")
        _fill(rate_row, got, "items_per_s")
        ours = got["aligneai"]
        if ours is not None:
            wire = statistics.median(ours["wire_bytes"])
            first = statistics.median(ours["first_growth"])
            later = statistics.median(ours["later_growth"])
            # Flat: the streams after the first add less than a fixed small amount, however
            # many ran and however much data went through them.
            growth_row.targets = [Target("abs", "<", STREAM_FLAT)]
            growth_row.note = (
                f"{wire / MiB:,.0f} MiB on the wire after the first stream; the first stream "
                f"grew it by {first / MiB:.1f} MiB, the last {count - 2} by {later / MiB:.1f} MiB"
            )
        return [growth_row, rate_row]

    # -- the whole run --------------------------------------------------------------------------

    def icount_rows(self) -> list[Row]:
        """Instructions per small call under callgrind: a noise-free view of the CPU rows.

        Timings on a shared 2-core machine move by tens of percent with the other processes;
        user-space instruction counts do not (they repeat within 1 %). Each client runs one
        worker with 100 calls and one with 600 under ``valgrind --tool=callgrind``; the
        difference / 500 is the count per call (start-up and warm-up cancel out).
        """
        self.progress("instruction counts (callgrind)")
        row = Row(
            "sync",
            "small 1x8 base64 (default), user-space instructions per call (callgrind)",
            "instr",
            targets=[Target("floor", "<=", 1.3), Target("peer", "<=", 0.4)],
        )
        valgrind = shutil.which("valgrind")
        if valgrind is None:
            row.skipped = "valgrind is not installed"
            return [row]
        got: dict[str, dict[str, Any] | None] = {}
        for client in self.clients():
            counts = []
            for calls in (100, 600):
                spec = {
                    "kind": "sync",
                    "client": client,
                    "size": "small",
                    "fmt": "base64",
                    "rounds": 1,
                    "calls": calls,
                    "warmup": 20,
                    "port": self.port,
                    "cpu": self.client_cpu,
                }
                command = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null"]
                command += [sys.executable, str(HERE / "run.py"), "--worker", json.dumps(spec)]
                try:
                    proc = subprocess.run(
                        command,
                        cwd=self.tmp,
                        env=self.env,
                        stdin=subprocess.DEVNULL,
                        capture_output=True,
                        text=True,
                        timeout=self.budget.worker_timeout * 2,
                    )
                except subprocess.TimeoutExpired:
                    break
                found = [line for line in proc.stderr.splitlines() if "Collected :" in line]
                if proc.returncode != 0 or not found:
                    break
                counts.append(int(found[-1].split()[-1]))
            if len(counts) == 2:
                got[client] = {"icount": [(counts[1] - counts[0]) / 500]}
            else:
                got[client] = None
                self.failures.append(f"icount {client}: callgrind failed")
        _fill(row, got, "icount")
        return [row]

    def bulk_rows(self) -> list[Row]:
        import bulk  # benchmarks/bulk.py: its own servers and workers, in a subprocess

        return bulk.runner_rows(self, Row, Stats, Target)

    def run(self) -> list[Row]:
        groups = {
            "sync": self.sync_rows,
            "async": self.async_rows,
            "decode": self.decode_rows,
            "import": self.import_rows,
            "memory": self.rss_rows,
            "icount": self.icount_rows,
            "bulk": self.bulk_rows,
        }
        default = [name for name in groups if name != "icount" or self.args.icount]
        selected = self.args.only.split(",") if self.args.only else default
        unknown = set(selected) - set(groups)
        if unknown:
            raise SystemExit(
                f"--only: unknown groups {sorted(unknown)}; choose from {list(groups)}"
            )
        rows: list[Row] = []
        self.start_server()
        try:
            for name in selected:
                rows += groups[name]()
        finally:
            self.stop_server()
            shutil.rmtree(self.tmp, ignore_errors=True)
        return rows


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _fill(row: Row, got: dict[str, dict[str, Any] | None], metric: str) -> None:
    slots = {"aligneai": "ours", "floor": "floor", "openai": "peer"}
    for client, result in got.items():
        if result is None:
            if client == "aligneai":
                row.error = "the measurement failed (see the failures below the table)"
            continue
        setattr(row, slots[client], Stats.of(result[metric]))


def _merge_all(samples: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Every key's samples of several results (lists), concatenated; None if none ran."""
    found = [s for s in samples if s is not None]
    if not found:
        return None
    return {key: [v for s in found for v in s[key]] for key in found[0] if key != "exact"}


def _merge(samples: list[dict[str, Any] | None], key: str) -> dict[str, Any] | None:
    values = [s[key] for s in samples if s is not None]
    return {key: values} if values else None


def _top_level_imports(stderr: str) -> dict[str, int]:
    """Cumulative microseconds of each top-level import in ``-X importtime`` output."""
    found = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|", 2)
        if not cumulative.strip().isdigit():
            continue  # the header line
        name = name[1:]  # one space after the bar; more spaces mean a nested import
        if not name.startswith(" "):
            found[name.strip()] = found.get(name.strip(), 0) + int(cumulative)
    return found


def _versions() -> dict[str, str]:
    import importlib.metadata

    found = {}
    for dist in ("aligneai", "openai", "urllib3", "aiohttp", "attrs", "cattrs", "orjson", "numpy"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[dist] = importlib.metadata.version(dist)
    return found


def _loadavg() -> str:
    try:
        return f"{os.getloadavg()[0]:.1f}"  # the 1-minute average
    except (AttributeError, OSError):
        return "unknown"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def report(runner: Runner, rows: list[Row], elapsed: float) -> tuple[str, dict[str, Any]]:
    versions = _versions()
    mode = (
        "quick (tiny counts: smoke test only, the numbers are noise)"
        if runner.args.quick
        else "full"
    )
    peers = (
        "openai " + versions.get("openai", "?")
        if runner.peers
        else "none (--no-peers or openai missing)"
    )
    lines = [
        "# AligneAI benchmarks",
        "",
        f"- run: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {mode}, {elapsed:.0f} s, "
        f"revision {_git_revision()}",
        f"- machine: {_cpu_model()}, {os.cpu_count()} CPUs, {platform.system()} "
        f"{platform.release()}; {runner.pinning}",
        f"- Python {platform.python_version()} ({platform.python_implementation()}); "
        + ", ".join(f"{k} {v}" for k, v in versions.items()),
        f"- load average at the start and the end: {runner.load_start} / {_loadavg()} "
        "(other processes on the machine disturb every figure)",
        f"- peer: {peers}; floor: raw urllib3.PoolManager / aiohttp.ClientSession + json.loads",
        "- ratios are AligneAI's median / the other's median (lower is better, except req/s "
        "and items/s); PASS* / MISS* = judged on the targets that could be measured",
        "",
        render_table(rows),
    ]
    if runner.failures:
        lines += ["", "Failures:", ""] + [f"- {failure}" for failure in runner.failures]
    text = "\n".join(lines) + "\n"
    data = {
        "mode": "quick" if runner.args.quick else "full",
        "elapsed_s": elapsed,
        "pinning": runner.pinning,
        "versions": versions,
        "python": platform.python_version(),
        "peers": runner.peers,
        "rows": [
            {
                "group": row.group,
                "name": row.name,
                "unit": row.unit,
                "ours": None if row.ours is None else vars(row.ours),
                "floor": None if row.floor is None else vars(row.floor),
                "peer": None if row.peer is None else vars(row.peer),
                "ratio_floor": row.ratio(row.floor),
                "ratio_peer": row.ratio(row.peer),
                "targets": [vars(t) for t in row.targets],
                "result": row.verdict(),
                "note": row.note,
                "error": row.error,
                "skipped": row.skipped,
            }
            for row in rows
        ],
        "failures": runner.failures,
        "samples": runner.raw,
    }
    return text, data


README_START = "<!-- latest-results:start -->"
README_END = "<!-- latest-results:end -->"


def update_readme(table: str) -> None:
    readme = HERE / "README.md"
    text = readme.read_text(encoding="utf-8")
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise SystemExit(f"{readme}: no {README_START} ... {README_END} section")
    body = table.split("\n", 2)[2]  # drop the "# AligneAI benchmarks" title
    new = text[: start + len(README_START)] + "\n" + body + text[end:]
    readme.write_text(new, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark AligneAI against a floor and the openai peer."
    )
    parser.add_argument("--quick", action="store_true", help="tiny counts (< 60 s): smoke test")
    parser.add_argument(
        "--no-peers", action="store_true", help="skip openai (need not be installed)"
    )
    parser.add_argument(
        "--only", default="", help="groups: sync,async,decode,import,memory,icount,bulk"
    )
    parser.add_argument(
        "--out", type=Path, default=HERE / "results", help="where latest.md/.json go"
    )
    parser.add_argument(
        "--update-readme", action="store_true", help="copy the table into README.md"
    )
    parser.add_argument(
        "--fail-on-miss", action="store_true", help="exit 1 when a target is missed"
    )
    parser.add_argument(
        "--icount",
        action="store_true",
        help="also count instructions per small call under valgrind (about +6 min; noise-free)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(args.worker)
    if not _installed("aligneai"):
        raise SystemExit("aligneai is not installed in this Python: see benchmarks/README.md")
    runner = Runner(args)
    rows = runner.run()
    elapsed = time.monotonic() - runner.started
    text, data = report(runner, rows, elapsed)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.md").write_text(text, encoding="utf-8")
    (args.out / "latest.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    if args.update_readme:
        update_readme(text)
    print(f"written: {args.out / 'latest.md'}, {args.out / 'latest.json'}", file=sys.stderr)
    if any(row.error for row in rows) or runner.failures:
        return 1
    if args.fail_on_miss and any(row.verdict().startswith("MISS") for row in rows):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
