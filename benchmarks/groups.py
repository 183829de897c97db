"""The benchmark groups: what each measures, with which targets, as table rows.

Each group is a function of the `Runner` (which starts the workers) returning its rows;
`GROUPS` maps the names ``--only`` takes to them. Issue #8 sets the targets.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from typing import Any, Callable

import server as bench_server  # benchmarks/ is on sys.path (runner.py puts it there)
from report import MiB, Row, Target, fill, merge, merge_all
from runner import Runner

STREAM_FLAT = 2 * MiB  # the stream memory target: the growth after the first stream


def sync_rows(runner: Runner) -> list[Row]:
    """Sequential calls, every size and format: client CPU and wall per call."""
    b = runner.budget
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

    got = runner.measure("sync", cases, make_spec, b.sync_rounds)
    rows = []
    for size, fmt in cases:
        n, dims = bench_server.SIZES[size]
        what = f"{size} {n}x{dims} {fmt}" + (" (default)" if fmt == "base64" else "")
        cpu_targets: list[Target] = []
        if size == "small":
            # Issue #16: the default format's small call within 1.2x the floor.
            limit = 1.2 if fmt == "base64" else 1.3
            cpu_targets = [Target("floor", "<=", limit), Target("peer", "<=", 0.4)]
        elif size == "medium" and fmt == "base64":
            cpu_targets = [Target("peer", "<=", 0.5)]
        elif size == "large" and fmt == "base64":
            cpu_targets = [Target("peer", "<=", 0.8)]
        for metric, targets in (("cpu", cpu_targets), ("wall", [])):
            label = "CPU" if metric == "cpu" else "wall"
            row = Row("sync", f"{what}, client {label} per call", "s", targets=targets)
            fill(row, got[(size, fmt)], metric)
            rows.append(row)
    return rows


def async_rows(runner: Runner) -> list[Row]:
    """Requests/s of 1, 16 and 64 tasks sharing one async client (small, default format)."""
    rows = []
    if not runner.have["aiohttp"]:
        return [Row("async", "throughput", "req/s", skipped="aiohttp is not installed")]
    levels = list(runner.budget.async_concurrency)

    def make_spec(concurrency: Any, client: str, rounds: int) -> dict[str, Any]:
        return {
            "client": client,
            "concurrency": concurrency,
            "rounds": rounds,
            "round_seconds": runner.budget.async_round_seconds,
            "per_task": 1 if runner.args.quick else 4,
        }

    got = runner.measure("async", levels, make_spec, runner.budget.async_rounds)
    for concurrency in levels:
        # Issue #16: at least 0.9x raw aiohttp's throughput at every concurrency.
        targets = [Target("floor", ">=", 0.9)]
        if concurrency == 64:
            targets.append(Target("peer", ">=", 5.0))
        row = Row(
            "async",
            f"throughput c={concurrency}, small base64 (default)",
            "req/s",
            targets=targets,
        )
        fill(row, got[concurrency], "rps")
        rows.append(row)
        cpu_row = Row(
            "async",
            f"c={concurrency}, small base64 (default), client CPU per call",
            "s",
        )
        fill(cpu_row, got[concurrency], "cpu")
        rows.append(cpu_row)
    return rows


def decode_rows(runner: Runner) -> list[Row]:
    """CPU to decode the large payload (no network) into a model or a numpy matrix."""
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
    if runner.have["orjson"]:
        specs.append(
            (
                "float JSON -> model (vs orjson)",
                "float/aligneai",
                "float/orjson.loads",
                [],
                False,
            )
        )
    runnable = [spec for spec in specs if runner.have["numpy"] or not spec[4]]
    variants = sorted({v for spec in runnable for v in spec[1:3]})
    payloads = str(runner.payload_dir)

    def make_spec(variant: Any, client: str, rounds: int) -> dict[str, Any]:
        return {"variant": variant, "rounds": rounds, "payload_dir": payloads}

    # One "client" per variant: measure() alternates the variants pass by pass.
    merged = runner.measure("decode", variants, make_spec, runner.budget.decode_rounds, ["-"])
    cache = {variant: merged[variant]["-"] for variant in variants}
    rows = []
    for name, ours, floor, targets, needs_numpy in specs:
        row = Row("decode", f"large {n}x{dims} {name}, CPU", "s", targets=targets)
        if needs_numpy and not runner.have["numpy"]:
            row.skipped = "numpy is not installed"
            rows.append(row)
            continue
        got = {"aligneai": cache[ours], "floor": cache[floor]}
        row.note = f"floor: {floors[floor]}"
        fill(row, got, "cpu")
        rows.append(row)
    return rows


def import_rows(runner: Runner) -> list[Row]:
    """``import aligneai`` in a fresh process: -X importtime cumulative, and wall."""
    runner.progress("import time")
    pin = (
        ""
        if runner.client_cpu is None
        else f"import os; os.sched_setaffinity(0, {{{runner.client_cpu}}}); "
    )
    runs = runner.budget.import_runs

    def python(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args],
            cwd=runner.tmp,
            env=runner.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )

    baseline = top_level_imports(python("-X", "importtime", "-c", pin + "pass").stderr)

    def measure(statement: str) -> tuple[list[float], list[float]]:
        if not runner.args.quick:
            python("-c", pin + statement)  # warm the file cache
        cumulative, wall = [], []
        for _ in range(runs):
            found = top_level_imports(python("-X", "importtime", "-c", pin + statement).stderr)
            cumulative.append(sum(us for name, us in found.items() if name not in baseline) / 1e6)
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
    for client in runner.clients():
        try:
            results[client] = measure(stmts[client])
        except subprocess.CalledProcessError as exc:
            runner.failures.append(f"import {client}: {exc.stderr.strip().splitlines()[-1:]}")
    bare = []
    for _ in range(runs):
        t0 = time.perf_counter()
        python("-c", pin + "pass")
        bare.append(time.perf_counter() - t0)
    runner.raw["import"] = {k: {"cumulative": v[0], "wall": v[1]} for k, v in results.items()}
    rows = []
    for index, name, targets in (
        (0, "import aligneai (-X importtime, cumulative)", [Target("peer", "<=", 0.25)]),
        (1, "import aligneai, wall of a fresh process", []),
    ):
        row = Row("import", name, "s", targets=targets)
        got = {k: ({"v": v[index]} if v else None) for k, v in results.items()}
        fill(row, got, "v")
        row.note = "floor: import urllib3, attrs, cattrs"
        if index == 1:
            row.note += f"; bare interpreter {statistics.median(bare) * 1e3:.0f} ms"
        rows.append(row)
    return rows


def rss_rows(runner: Runner) -> list[Row]:
    """Peak RSS growth of one large call (float, base64, numpy), then the stream rows."""
    rows = []
    repeats = runner.budget.rss_repeats
    for fmt in ("float", "base64"):
        runner.progress(f"rss large {fmt}")
        clients = [
            client
            for client in runner.clients()
            if client != "openai" or runner.budget.peer_large_float or fmt == "base64"
        ]
        samples: dict[str, list[dict[str, Any] | None]] = {c: [] for c in clients}
        for _ in range(repeats):
            for client in clients:
                samples[client].append(runner.worker("rss", client=client, fmt=fmt))
        got = {client: merge(found, "growth") for client, found in samples.items()}
        row = Row(
            "memory",
            f"peak RSS growth, one large call, {fmt}" + (" (default)" if fmt == "base64" else ""),
            "B",
            targets=[Target("floor", "<=", 1.1)],
        )
        fill(row, got, "growth")
        rows.append(row)
    row = Row(
        "memory",
        "peak RSS growth, one large call, create_matrix() (base64 -> numpy)",
        "B",
        targets=[Target("abs", "<", 16 * MiB)],
        note="floor: json.loads + frombuffer",
    )
    if runner.have["numpy"]:
        runner.progress("rss large numpy")
        got = {
            "aligneai": merge(
                [
                    runner.worker("rss", client="aligneai", fmt="base64", numpy=True)
                    for _ in range(repeats)
                ],
                "growth",
            ),
            "floor": merge([runner.worker("rss_floor_numpy") for _ in range(repeats)], "growth"),
        }
        fill(row, got, "growth")
    else:
        row.skipped = "numpy is not installed"
    rows.append(row)
    rows += stream_rows(runner)
    return rows


def stream_rows(runner: Runner) -> list[Row]:
    """Consecutive streams over one client: memory flat after the first, and items/s."""
    b = runner.budget
    count, items, dims = b.stream_count, b.stream_items, bench_server.STREAM_DIMS
    runner.progress(f"stream {count} x {items} items")
    samples: dict[str, list[dict[str, Any] | None]] = {"aligneai": [], "floor": []}
    for _ in range(b.stream_repeats):
        for client in samples:  # the floor reads the same streams (urllib3 + json.loads)
            samples[client].append(
                runner.worker("stream", client=client, streams=count, items=items)
            )
    got = {client: merge_all(found) for client, found in samples.items()}
    what = f"{count} streams of {items:,} items x {dims} dims in a row, one client"
    growth_row = Row("memory", f"{what}: peak RSS growth after the first stream", "B")
    rate_row = Row("stream", f"{what}, base64", "items/s")
    fill(growth_row, got, "growth")
    fill(rate_row, got, "items_per_s")
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
    if growth_row.floor is not None:
        # A ratio of two figures near zero says nothing: the floor's growth goes in the note.
        floor_growth, growth_row.floor = growth_row.floor.median, None
        growth_row.note += (
            f"{'; ' if growth_row.note else ''}the floor (urllib3 reading the same streams) "
            f"grew by {floor_growth / MiB:.2f} MiB"
        )
    return [growth_row, rate_row]


def icount_rows(runner: Runner) -> list[Row]:
    """Instructions per small call under callgrind: a noise-free view of the CPU rows.

    Timings on a shared 2-core machine move by tens of percent with the other processes;
    user-space instruction counts do not (they repeat within 1 %). Each client runs one
    worker with 100 calls and one with 600 under ``valgrind --tool=callgrind``; the
    difference / 500 is the count per call (start-up and warm-up cancel out). The sync small
    default call, then the async one at concurrency 1 and 64 (issue #16).
    """
    runner.progress("instruction counts (callgrind)")
    cases: list[tuple[Row, dict[str, Any]]] = [
        (
            Row(
                "sync",
                "small 1x8 base64 (default), user-space instructions per call (callgrind)",
                "instr",
                targets=[Target("floor", "<=", 1.2), Target("peer", "<=", 0.4)],
            ),
            {"kind": "sync", "size": "small", "fmt": "base64", "rounds": 1},
        )
    ]
    if runner.have["aiohttp"]:
        for concurrency in (1, 64):
            name = f"c={concurrency}, small base64 (default), user-space instructions per call"
            cases.append(
                (
                    Row("async", name + " (callgrind)", "instr"),
                    {"kind": "async", "concurrency": concurrency},
                )
            )
    valgrind = shutil.which("valgrind")
    rows = []
    for row, base in cases:
        rows.append(row)
        if valgrind is None:
            row.skipped = "valgrind is not installed"
            continue
        got: dict[str, dict[str, Any] | None] = {}
        for client in runner.clients():
            counts = []
            for calls in (100, 600):
                spec = dict(base, client=client, calls=calls, warmup=20)
                spec.update(port=runner.port, cpu=runner.client_cpu)
                count = _callgrind_count(runner, valgrind, spec)
                if count is None:
                    break
                counts.append(count)
            if len(counts) == 2:
                got[client] = {"icount": [(counts[1] - counts[0]) / 500]}
            else:
                got[client] = None
                runner.failures.append(f"icount {row.name} {client}: callgrind failed")
        fill(row, got, "icount")
    return rows


def _callgrind_count(runner: Runner, valgrind: str, spec: dict[str, Any]) -> int | None:
    """The user-space instructions of one worker run under callgrind, or None if it failed."""
    prefix = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    proc = runner.run_worker_process(spec, prefix, timeout_factor=2)
    if proc is None:
        return None
    found = [line for line in proc.stderr.splitlines() if "Collected :" in line]
    if proc.returncode != 0 or not found:
        return None
    return int(found[-1].split()[-1])


def bulk_rows(runner: Runner) -> list[Row]:
    """benchmarks/bulk.py's rows (issue #11), run in its own process."""
    import bulk  # benchmarks/bulk.py: its own servers and workers, in a subprocess

    return bulk.runner_rows(runner)


def top_level_imports(stderr: str) -> dict[str, int]:
    """Cumulative microseconds of each top-level import in ``-X importtime`` output."""
    found: dict[str, int] = {}
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


# The groups `--only` takes, in the order they run. icount runs only when asked for (--icount
# or --only icount): it needs valgrind and minutes. tests/test_benchmarks_smoke.py lists them.
GROUPS: dict[str, Callable[[Runner], list[Row]]] = {
    "sync": sync_rows,
    "async": async_rows,
    "decode": decode_rows,
    "import": import_rows,
    "memory": rss_rows,
    "icount": icount_rows,
    "bulk": bulk_rows,
}
OPT_IN = {"icount"}
