"""The benchmark workers: each measurement runs in a fresh process (``run.py --worker SPEC``).

A worker gets a JSON spec (``kind`` picks the function in `WORKERS`; ``port`` is the benchmark
server's, ``cpu`` the core to pin to), measures, and prints one ``RESULT <json>`` line: lists
of samples that the runner merges across workers. Nothing here knows about rows or targets.

Clients: ``aligneai``; ``floor``, the least any client can do over the same HTTP stack (raw
urllib3 / aiohttp, ``json.loads``, base64 decoding); ``openai``, the peer. Every call sends as
many inputs as its canned answer has embeddings: the client checks each answer against its
request (one embedding per input, the indexes a permutation of the inputs).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # benchmarks/ (never the repo root) for `import server`
    sys.path.insert(0, str(HERE))

import server as bench_server  # noqa: E402  (after the sys.path fix above)

API_KEY = "bench-key"
MODEL = "bench-model"
# A legal stream has one item per input: at most MAX_INPUTS (the core's limit) items. Not
# imported from aligneai.core: the floor's workers must not load the package.
MAX_STREAM_ITEMS = 2048
STREAM_WARMUP = 50  # items of the warm-up stream before a stream measurement


def pin(cpu: int | None) -> None:
    """Run this process on one CPU (where the OS allows it)."""
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


def async_caller(client: str, port: int, key: str) -> tuple[Any, Any]:
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
    """Throughput (requests/s) of ``concurrency`` tasks sharing one client.

    Rounds of about ``round_seconds`` each; or, when ``calls`` is given, ``warmup`` calls and
    then exactly ``calls`` (for counting instructions: the count must not depend on timing).
    """
    import asyncio

    concurrency = spec["concurrency"]

    cpu: list[float] = []  # the client process's CPU per call, per measured round

    async def run_n(call: Any, n: int) -> float:
        shared = iter(range(n))

        async def task() -> None:
            for _ in shared:
                await call()

        start, cpu_start = time.perf_counter(), time.process_time()
        await asyncio.gather(*[task() for _ in range(concurrency)])
        cpu.append((time.process_time() - cpu_start) / n)
        return time.perf_counter() - start

    async def main() -> list[float]:
        call, close = async_caller(spec["client"], spec["port"], "small-base64")
        try:
            if "calls" in spec:  # a fixed number of calls (the icount group, under callgrind)
                await run_n(call, spec["warmup"])
                return [spec["calls"] / await run_n(call, spec["calls"])]
            per_task = spec.get("per_task", 4)  # the least number of calls per task and round
            await run_n(call, max(per_task * concurrency, 20))  # connections, code paths
            n_cal = max(per_task * concurrency, 50)
            rate = n_cal / await run_n(call, n_cal)
            n = max(per_task * concurrency, int(rate * spec["round_seconds"]))
            rps = []
            cpu.clear()
            for _ in range(spec["rounds"]):
                rps.append(n / await run_n(call, n))
            return rps
        finally:
            await close()

    rps = asyncio.run(main())
    # CPU per call: the client-side cost that throughput reflects once the client is the
    # bottleneck, far less disturbed by other processes on a shared machine than req/s.
    return {"rps": rps, "cpu": cpu}


def decode_variant(name: str, payload_dir: Path) -> Callable[[], Any]:
    """One decoding of the large payload (no network), by variant name (``fmt/who``)."""
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
    run = decode_variant(spec["variant"], Path(spec["payload_dir"]))
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
    """Run the measurement a spec names and print its ``RESULT`` line."""
    spec = json.loads(spec_json)
    pin(spec.get("cpu"))
    result = WORKERS[spec["kind"]](spec)
    print("RESULT " + json.dumps(result), flush=True)
    return 0
