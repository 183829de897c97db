"""The benchmark suite runs: one quick pass over every one of its groups (no timing asserted).

Speed targets live in benchmarks/ as ratios measured in one run (`make bench`); here we only
check that the code measuring them works, so that it cannot rot between benchmark runs.

The ``icount`` group counts instructions under valgrind's callgrind: four runs of Python under
callgrind take over a minute even with ``--quick``, so here a stand-in ``valgrind`` (first on
``PATH``) answers each run with a made-up instruction count that depends on the client and the
number of calls. That checks the group's plumbing and arithmetic (two runs per client, the
difference over 500 calls, the ratio to the floor) against numbers written down here; the
workers it would run under callgrind are the ones the ``sync`` and ``async`` groups measure
for real (the async one with a fixed number of calls).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

RUN = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"
# The groups `--only` takes (benchmarks/groups.py, GROUPS; `run.py --list-groups` prints them):
# a new group fails this test until it is added here (and its rows are checked below).
GROUPS = {"sync", "async", "decode", "import", "memory", "icount", "bulk"}
# The row groups (the `group` of each row in latest.json) the run must produce.
ROW_GROUPS = {"sync", "async", "decode", "import", "memory", "stream"}
# The stand-in's instruction counts: a fixed start-up cost plus a cost per call, per client.
PER_CALL = {"aligneai": 1200, "floor": 1000}
START_UP = 7_000_000
# The bulk group's "time to 95 % of the limit" of a strategy that never got there (bulk.py).
NEVER_REACHED = "never reached"

FAKE_VALGRIND = f"""#!{sys.executable}
import json, sys
args = sys.argv[1:]
assert args[0] == "--tool=callgrind", args
spec = json.loads(args[args.index("--worker") + 1])
per_call = {PER_CALL!r}[spec["client"]]
count = {START_UP} + per_call * (spec["calls"] + spec["warmup"])
print(f"==1== Collected : {{count}}", file=sys.stderr)
"""


@pytest.mark.slow
def test_quick_benchmark_run_measures_every_group(tmp_path: Path) -> None:
    pytest.importorskip("numpy")  # tox and CI install it; the numpy rows need it
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    valgrind = bin_dir / "valgrind"
    valgrind.write_text(FAKE_VALGRIND)
    valgrind.chmod(valgrind.stat().st_mode | stat.S_IXUSR)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    listed = subprocess.run(
        [sys.executable, str(RUN), "--list-groups"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert set(listed.stdout.split()) == GROUPS
    out = tmp_path / "out"
    args = [
        "--quick",
        "--no-peers",
        "--icount",
        "--only",
        ",".join(sorted(GROUPS)),
        "--out",
        str(out),
    ]
    result = subprocess.run(
        [sys.executable, str(RUN), *args],
        cwd=tmp_path,  # never the repo root: its ./aligneai would shadow the installed package
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads((out / "latest.json").read_text())
    assert report["mode"] == "quick"
    assert report["failures"] == []
    rows = report["rows"]
    assert {row["group"] for row in rows} >= ROW_GROUPS
    names = [row["name"] for row in rows]
    assert any("base64 -> numpy" in name for name in names)
    assert any("streams of" in name for name in names)
    assert any(name.startswith("throughput c=64") for name in names)
    assert any(name.startswith("import aligneai") for name in names)
    for row in rows:
        assert not row["error"], row
        if row["skipped"] == NEVER_REACHED and row["group"] == "bulk":
            continue  # a measured result: the sequential loop never gets near the limit
        assert not row["skipped"], row  # an optional package missing: every one is installed
        # a figure was measured (memory growth may be slightly negative: pages returned)
        assert math.isfinite(row["ours"]["median"]), row

    icount = [row for row in rows if row["unit"] == "instr"]
    # The sync small default call, then the async one at concurrency 1 and 64.
    assert [(row["group"], row["name"].split(",")[0]) for row in icount] == [
        ("sync", "small 1x8 base64 (default)"),
        ("async", "c=1"),
        ("async", "c=64"),
    ], names
    for row in icount:
        assert row["ours"]["median"] == PER_CALL["aligneai"]
        assert row["floor"]["median"] == PER_CALL["floor"]
        assert row["ratio_floor"] == pytest.approx(PER_CALL["aligneai"] / PER_CALL["floor"])
    assert "| Measurement |" in (out / "latest.md").read_text()


def _load_readme_module() -> Any:
    path = RUN.parent / "readme.py"
    spec = importlib.util.spec_from_file_location("bench_readme", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_update_readme_writes_every_file_that_has_the_markers(tmp_path: Path) -> None:
    # The tables follow their markers: benchmarks/README.md, README.md or a page of docs/.
    readme = _load_readme_module()
    (tmp_path / "docs").mkdir()
    (tmp_path / "benchmarks").mkdir()
    marked = "intro\n<!-- latest-results:start -->\nold table\n<!-- latest-results:end -->\nend\n"
    (tmp_path / "docs" / "performance.md").write_text(marked)
    (tmp_path / "benchmarks" / "README.md").write_text(marked.replace("intro", "bench"))
    (tmp_path / "README.md").write_text("no markers here\n")
    (tmp_path / "docs" / "index.md").write_text("<!-- latest-results:start --> only a start\n")

    written = readme.update_sections("latest-results", "| new |", readme.candidates(tmp_path))

    assert written == [tmp_path / "benchmarks" / "README.md", tmp_path / "docs" / "performance.md"]
    expected = "intro\n<!-- latest-results:start -->\n| new |\n<!-- latest-results:end -->\nend\n"
    assert (tmp_path / "docs" / "performance.md").read_text() == expected
    assert (tmp_path / "benchmarks" / "README.md").read_text() == expected.replace("intro", "bench")
    assert (tmp_path / "README.md").read_text() == "no markers here\n"
    assert (tmp_path / "docs" / "index.md").read_text() == (
        "<!-- latest-results:start --> only a start\n"
    )


def test_update_readme_without_markers_anywhere_stops(tmp_path: Path) -> None:
    readme = _load_readme_module()
    (tmp_path / "README.md").write_text("<!-- bulk-results:start -->\n<!-- bulk-results:end -->\n")
    with pytest.raises(SystemExit, match="latest-results"):
        readme.update_sections("latest-results", "| new |", readme.candidates(tmp_path))
    assert (tmp_path / "README.md").read_text() == (
        "<!-- bulk-results:start -->\n<!-- bulk-results:end -->\n"
    )
