"""The benchmark runner: the server, the budget, and the worker processes that measure.

`Runner` starts `server.py` pinned to one core, runs every measurement in a fresh worker
process (``run.py --worker``) pinned to the other, merges the workers' samples (`measure`
alternates the clients case by case over the passes of the full suite) and runs the groups it
is given (groups.py). Where and what of the run the report needs is `Runner.info`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # benchmarks/ (never the repo root) for `import server`
    sys.path.insert(0, str(HERE))

import server as bench_server  # noqa: E402  (after the sys.path fix above)
from report import Row, RunInfo, loadavg  # noqa: E402
from workers import MAX_STREAM_ITEMS  # noqa: E402

# Environment variables that would change what a client does (proxies, logging).
SCRUBBED_ENV = (
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


class Runner:
    """One benchmark run: its budget, its server, its worker processes and what they found."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.budget = QUICK if args.quick else FULL
        self.started = time.monotonic()
        self.load_start = loadavg()
        self.tmp = Path(tempfile.mkdtemp(prefix="aligneai-bench-"))
        self.payload_dir = self.tmp / "payloads"
        self.env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
        self.env["PYTHONDONTWRITEBYTECODE"] = "1"
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        if len(cpus) >= 2 and hasattr(os, "sched_setaffinity"):
            self.client_cpu: int | None = cpus[0]
            self.server_cpu: int | None = cpus[1]
            self.pinning = f"client on CPU {cpus[0]}, server on CPU {cpus[1]}"
        else:
            self.client_cpu = self.server_cpu = None
            self.pinning = "not pinned (fewer than 2 CPUs, or no sched_setaffinity)"
        self.have = {name: installed(name) for name in ("openai", "numpy", "aiohttp", "orjson")}
        self.peers = self.have["openai"] and not args.no_peers
        self.server: subprocess.Popen[str] | None = None
        self.port = 0
        self.failures: list[str] = []
        self.raw: dict[str, Any] = {}

    # -- processes --------------------------------------------------------------------------

    def time_left(self) -> float:
        """Seconds of the budget left before no new measurement starts."""
        return self.budget.total_seconds - (time.monotonic() - self.started)

    def start_server(self) -> None:
        """Write the payloads and start server.py (pinned); its port is `port`."""
        self.server, self.port = bench_server.start(
            self.payload_dir,
            cpu=self.server_cpu,
            max_seconds=self.budget.total_seconds * 2 + 120,
            cwd=self.tmp,
            env=self.env,
        )

    def stop_server(self) -> None:
        """Stop the server (EOF on its stdin)."""
        if self.server is not None:
            bench_server.stop(self.server)

    def worker(self, kind: str, **spec: Any) -> dict[str, Any] | None:
        """Run one measurement in a fresh process; None (and a recorded failure) if it fails."""
        label = f"{kind} {json.dumps(spec, sort_keys=True)}"
        if self.time_left() <= 0:
            self.failures.append(f"{label}: skipped, the time budget is spent")
            return None
        spec.update(kind=kind, port=self.port, cpu=self.client_cpu)
        proc = self.run_worker_process(spec)
        if proc is None:
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

    def run_worker_process(
        self, spec: dict[str, Any], prefix: Sequence[str] = (), timeout_factor: float = 1.0
    ) -> subprocess.CompletedProcess[str] | None:
        """Run ``run.py --worker spec`` (after ``prefix``, e.g. valgrind) in a fresh process.

        In the runner's temporary directory and environment, output captured; None if it
        outlives ``timeout_factor`` worker timeouts.
        """
        command = [*prefix, sys.executable, str(HERE / "run.py"), "--worker", json.dumps(spec)]
        try:
            return subprocess.run(
                command,
                cwd=self.tmp,
                env=self.env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=self.budget.worker_timeout * timeout_factor,
            )
        except subprocess.TimeoutExpired:
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
        """One line on stderr, with the seconds since the start."""
        elapsed = time.monotonic() - self.started
        print(f"[{elapsed:6.1f} s] {text}", file=sys.stderr, flush=True)

    def clients(self) -> list[str]:
        """The clients measured: AligneAI, the floor, and the peer unless left out."""
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

    def run(self, groups: list[Callable[[Runner], list[Row]]]) -> list[Row]:
        """Start the server, run the groups in order, stop the server; all their rows."""
        rows: list[Row] = []
        self.start_server()
        try:
            for group in groups:
                rows += group(self)
        finally:
            self.stop_server()
            shutil.rmtree(self.tmp, ignore_errors=True)
        return rows

    def info(self) -> RunInfo:
        """What the report says about this run (so far)."""
        return RunInfo(
            quick=self.args.quick,
            peers=self.peers,
            pinning=self.pinning,
            load_start=self.load_start,
            elapsed=time.monotonic() - self.started,
            failures=self.failures,
            samples=self.raw,
        )


def installed(module: str) -> bool:
    """Whether ``module`` can be imported here (without importing it)."""
    import importlib.util

    return importlib.util.find_spec(module) is not None
