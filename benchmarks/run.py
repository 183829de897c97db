"""AligneAI benchmarks (issue #8): per-call cost, throughput, decoding, import time and memory.

    python benchmarks/run.py              # the full suite (about 13 minutes on a busy 2-core box)
    python benchmarks/run.py --quick      # tiny counts (< 75 s): a smoke test of the whole suite
    python benchmarks/run.py --no-peers   # without openai (its rows show "—", its targets SKIP)

Every figure is measured in a fresh worker process (this same file, run with ``--worker``) pinned
to one core, against `server.py` pinned to the other core, and compared with a *floor* (the
least a client can do: raw urllib3 / aiohttp and ``json.loads``) and the *peer* (openai, same
server, same payload). The runner prints one table (medians, min-max, ratios, PASS/MISS against
the targets of issue #8) and writes it to ``benchmarks/results/latest.md`` and ``latest.json``
(``--out DIR`` writes elsewhere). See benchmarks/README.md for how to read it.

This file is the command line only. The parts, one job each: workers.py (the measurements, one
per process), runner.py (the server, the budget, the worker processes), groups.py (what each
group measures and its targets), report.py (rows, the table, latest.md/.json), readme.py (the
table into the Markdown files that have a place for it); bulk.py and server.py as before.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # benchmarks/ (never the repo root) for its modules
    sys.path.insert(0, str(HERE))

README_SECTION = "latest-results"  # <!-- latest-results:start --> ... :end (readme.py)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (``--worker`` is the runner's, to start one measurement)."""
    parser = argparse.ArgumentParser(
        description="Benchmark AligneAI against a floor and the openai peer."
    )
    parser.add_argument("--quick", action="store_true", help="tiny counts (< 75 s): smoke test")
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
        "--update-readme",
        action="store_true",
        help="copy the table into every Markdown file with a latest-results section",
    )
    parser.add_argument(
        "--fail-on-miss", action="store_true", help="exit 1 when a target is missed"
    )
    parser.add_argument(
        "--icount",
        action="store_true",
        help="also count instructions per small call under valgrind (about +6 min; noise-free)",
    )
    parser.add_argument("--list-groups", action="store_true", help="print the groups and exit")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the suite (or, with ``--worker``, one measurement); 1 if something failed."""
    args = parse_args(argv)
    if args.worker:  # a measurement process: load nothing but the workers
        from workers import worker_main

        return worker_main(args.worker)

    from groups import GROUPS, OPT_IN
    from readme import update_sections
    from report import report
    from runner import Runner, installed

    if args.list_groups:
        print("\n".join(GROUPS))
        return 0
    default = [name for name in GROUPS if name not in OPT_IN or args.icount]
    selected = args.only.split(",") if args.only else default
    unknown = set(selected) - set(GROUPS)
    if unknown:
        raise SystemExit(f"--only: unknown groups {sorted(unknown)}; choose from {list(GROUPS)}")
    if not installed("aligneai"):
        raise SystemExit("aligneai is not installed in this Python: see benchmarks/README.md")
    runner = Runner(args)
    rows = runner.run([GROUPS[name] for name in selected])
    text, data = report(rows, runner.info())
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.md").write_text(text, encoding="utf-8")
    (args.out / "latest.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    written = [args.out / "latest.md", args.out / "latest.json"]
    if args.update_readme:
        written += update_sections(README_SECTION, text.split("\n", 2)[2])  # without the title
    print("written: " + ", ".join(str(path) for path in written), file=sys.stderr)
    if any(row.error for row in rows) or runner.failures:
        return 1
    if args.fail_on_miss and any(row.verdict().startswith("MISS") for row in rows):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
