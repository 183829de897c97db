"""Profile one benchmark scenario with pyinstrument, to find out why a row of run.py MISSes.

    python benchmarks/profile.py sync small base64            # 2,000 calls of AligneAI
    python benchmarks/profile.py sync medium base64 --client openai
    python benchmarks/profile.py async 64                     # AsyncAligneAI, 64 tasks
    python benchmarks/profile.py decode base64/aligneai-numpy # no network
    python benchmarks/profile.py sync large float --calls 5 --html /tmp/profile.html

It starts its own `server.py` on the other core (like run.py), warms up, then profiles the
measured loop only and prints pyinstrument's call tree (``--html FILE`` writes the HTML view).
For a sampling profile of a whole process instead, run the worker under py-spy, e.g.

    py-spy record -o /tmp/flame.svg -- python benchmarks/run.py --worker '{"kind": "sync", ...}'
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import server as bench_server  # noqa: E402
import workers as bench  # noqa: E402

DEFAULT_CALLS = {"small": 2000, "medium": 200, "large": 5}


def main() -> int:
    parser = argparse.ArgumentParser(description="Profile one benchmark scenario.")
    parser.add_argument("kind", choices=("sync", "async", "decode"))
    parser.add_argument(
        "args", nargs="*", help="sync: SIZE FORMAT; async: CONCURRENCY; decode: VARIANT"
    )
    parser.add_argument("--client", default="aligneai", choices=("aligneai", "floor", "openai"))
    parser.add_argument("--calls", type=int, default=None)
    parser.add_argument("--html", type=Path, default=None)
    parser.add_argument("--all", action="store_true", help="show library frames too")
    parser.add_argument(
        "--flat", choices=("self", "total"), default=None, help="a flat list of functions"
    )
    parser.add_argument("--interval", type=float, default=0.0005, help="sampling interval (s)")
    options = parser.parse_args()
    from pyinstrument import Profiler

    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    client_cpu, server_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    bench.pin(client_cpu)
    with tempfile.TemporaryDirectory(prefix="aligneai-profile-") as tmp:
        payload_dir = Path(tmp)
        server, port = bench_server.start(payload_dir, cpu=server_cpu)
        try:
            profiler = Profiler(interval=options.interval)
            if options.kind == "sync":
                size, fmt = options.args
                n = bench_server.SIZES[size][0]
                caller = bench.SyncCaller(options.client, port, f"{size}-{fmt}", fmt, n)
                calls = options.calls or DEFAULT_CALLS[size]
                for _ in range(max(1, calls // 10)):
                    caller.call()
                profiler.start()
                for _ in range(calls):
                    caller.call()
                profiler.stop()
            elif options.kind == "async":
                concurrency = int(options.args[0])
                calls = options.calls or 3000

                async def go() -> None:
                    call, close = bench.async_caller(options.client, port, "small-base64")

                    async def task(shared: Any) -> None:
                        for _ in shared:
                            await call()

                    warm = iter(range(max(2 * concurrency, 50)))
                    await asyncio.gather(*[task(warm) for _ in range(concurrency)])
                    shared = iter(range(calls))
                    profiler.start()
                    await asyncio.gather(*[task(shared) for _ in range(concurrency)])
                    profiler.stop()
                    await close()

                asyncio.run(go())
            else:
                run = bench.decode_variant(options.args[0], payload_dir)
                run()
                profiler.start()
                for _ in range(options.calls or 10):
                    run()
                profiler.stop()
        finally:
            bench_server.stop(server)
    if options.html:
        options.html.write_text(profiler.output_html(), encoding="utf-8")
        print(f"written: {options.html}")
    if options.flat:
        text = profiler.output_text(
            show_all=options.all, flat=True, flat_time=options.flat, time="percent_of_total"
        )
        print("\n".join(text.splitlines()[:60]))
    else:
        print(profiler.output_text(unicode=True, color=False, show_all=options.all))
    return 0


if __name__ == "__main__":
    sys.exit(main())
