"""The benchmark suite runs: a quick pass over its decode and memory groups (no timing asserted).

Speed targets live in benchmarks/ as ratios measured in one run (`make bench`); here we only
check that the code measuring them works, so that it cannot rot between benchmark runs.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


@pytest.mark.slow
def test_quick_benchmark_run_measures_every_row(tmp_path: Path) -> None:
    pytest.importorskip("numpy")  # tox and CI install it; the numpy rows need it
    out = tmp_path / "out"
    args = ["--quick", "--no-peers", "--only", "decode,memory", "--out", str(out)]
    result = subprocess.run(
        [sys.executable, str(RUN), *args],
        cwd=tmp_path,  # never the repo root: its ./aligneai would shadow the installed package
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads((out / "latest.json").read_text())
    assert report["failures"] == []
    rows = {row["name"]: row for row in report["rows"]}
    assert any("base64 -> numpy" in name for name in rows)
    assert any("stream of" in name for name in rows)
    for row in report["rows"]:
        assert not row["error"], row
        if not row["skipped"]:
            # a figure was measured (memory growth may be slightly negative: pages returned)
            assert math.isfinite(row["ours"]["median"]), row
    assert "| Measurement |" in (out / "latest.md").read_text()
