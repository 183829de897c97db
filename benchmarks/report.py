"""Benchmark rows and the report: medians, ratios, targets, the table, latest.md/.json.

A `Row` is one line of the table: AligneAI's samples (``ours``), the floor's and the peer's,
and the targets (issue #8) that give it PASS or MISS. `report` renders the rows with a header
that says where and when they were measured. Nothing here runs a measurement.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
PACKAGE_DIRS = ("core", "transports", "aligneai")  # what `make bench` installs


@dataclass
class Stats:
    """Median, min and max of a measurement's samples."""

    median: float
    min: float
    max: float

    @classmethod
    def of(cls, samples: list[float]) -> Stats:
        """The statistics of samples (at least one)."""
        return cls(statistics.median(samples), min(samples), max(samples))


@dataclass
class Target:
    """A target of issue #8: a ratio to the floor or the peer, or an absolute bound."""

    against: str  # "floor", "peer" or "abs"
    op: str  # "<=", ">=", "<"
    value: float

    def describe(self, unit: str, scale: float) -> str:
        """The target as the table shows it, in the row's display unit."""
        sign = {"<=": "≤", ">=": "≥", "<": "<"}[self.op]
        if self.against == "abs":  # the value is in the row's base unit (s, B, ...)
            return f"{sign} {number(self.value * scale)} {unit}"
        return f"{sign}{self.value:g}x {self.against}"

    def check(self, ratio: float) -> bool:
        """Whether a ratio (or an absolute value, for ``abs``) meets the target."""
        if self.op == "<=":
            return ratio <= self.value
        if self.op == ">=":
            return ratio >= self.value
        return ratio < self.value


@dataclass
class Row:
    """One line of the table."""

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
        """AligneAI's median over the other's (None when either is missing)."""
        if self.ours is None or other is None or other.median == 0:
            return None
        return self.ours.median / other.median

    def verdict(self) -> str:
        """PASS, MISS (``*``: judged on the targets that could be measured), SKIP or ERROR."""
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


def number(value: float) -> str:
    """A figure with 3-4 significant digits, as the tables show it."""
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
    text = number(stats.median * scale)
    if stats.min != stats.max:
        text += f" ({number(stats.min * scale)}-{number(stats.max * scale)})"
    return text


def render_table(rows: list[Row]) -> str:
    """The rows as a Markdown table."""
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


def fill(row: Row, got: Mapping[str, Mapping[str, Any] | None], metric: str) -> None:
    """Set the row's statistics from each client's merged samples of ``metric``."""
    slots = {"aligneai": "ours", "floor": "floor", "openai": "peer"}
    for client, result in got.items():
        if result is None:
            if client == "aligneai":
                row.error = "the measurement failed (see the failures below the table)"
            continue
        setattr(row, slots[client], Stats.of(result[metric]))


def merge_all(samples: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Every key's samples of several results (lists), concatenated; None if none ran."""
    found = [s for s in samples if s is not None]
    if not found:
        return None
    return {key: [v for s in found for v in s[key]] for key in found[0] if key != "exact"}


def merge(samples: list[dict[str, Any] | None], key: str) -> dict[str, Any] | None:
    """One value per result (``key`` of each), as a list of samples; None if none ran."""
    values = [s[key] for s in samples if s is not None]
    return {key: values} if values else None


def _versions() -> dict[str, str]:
    import importlib.metadata

    found = {}
    for dist in ("aligneai", "openai", "urllib3", "aiohttp", "attrs", "cattrs", "orjson", "numpy"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[dist] = importlib.metadata.version(dist)
    return found


def loadavg() -> str:
    """The 1-minute load average, as the report prints it."""
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


def git_revision() -> str:
    """``git describe --always --dirty`` of the checkout (``-dirty``: uncommitted changes)."""
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


def uncommitted_package_files() -> list[str]:
    """Files of the package (core/, transports/, aligneai/) that differ from the commit.

    `make bench` installs the working tree as it is: with changes not yet committed there,
    the figures are those of the commit plus these files.
    """
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", *PACKAGE_DIRS],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return [line[3:] for line in out.stdout.splitlines() if line[3:]]


@dataclass(frozen=True)
class RunInfo:
    """What the report's header says about the run (the runner fills it in)."""

    quick: bool
    peers: bool  # openai measured
    pinning: str  # how client and server were placed on the CPUs
    load_start: str  # the 1-minute load average when the run started
    elapsed: float  # seconds
    failures: list[str]
    samples: dict[str, Any]  # every worker's raw result, for latest.json


def report(rows: list[Row], run: RunInfo) -> tuple[str, dict[str, Any]]:
    """The Markdown report (latest.md) and its data (latest.json)."""
    versions = _versions()
    revision = git_revision()
    changed = uncommitted_package_files()
    measured = (
        f"revision {revision} (the package: the commit plus uncommitted changes to "
        + ", ".join(changed)
        + ")"
        if changed
        else f"revision {revision} (the package as committed)"
    )
    mode = "quick (tiny counts: smoke test only, the numbers are noise)" if run.quick else "full"
    peers = (
        "openai " + versions.get("openai", "?")
        if run.peers
        else "none (--no-peers or openai missing)"
    )
    lines = [
        "# AligneAI benchmarks",
        "",
        f"- run: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {mode}, {run.elapsed:.0f} s, " + measured,
        f"- machine: {_cpu_model()}, {os.cpu_count()} CPUs, {platform.system()} "
        f"{platform.release()}; {run.pinning}",
        f"- Python {platform.python_version()} ({platform.python_implementation()}); "
        + ", ".join(f"{k} {v}" for k, v in versions.items()),
        f"- load average at the start and the end: {run.load_start} / {loadavg()} "
        "(other processes on the machine disturb every figure)",
        f"- peer: {peers}; floor: raw urllib3.PoolManager / aiohttp.ClientSession + json.loads",
        "- ratios are AligneAI's median / the other's median (lower is better, except req/s "
        "and items/s); PASS* / MISS* = judged on the targets that could be measured",
        "",
        render_table(rows),
    ]
    if run.failures:
        lines += ["", "Failures:", ""] + [f"- {failure}" for failure in run.failures]
    text = "\n".join(lines) + "\n"
    data = {
        "mode": "quick" if run.quick else "full",
        "elapsed_s": run.elapsed,
        "revision": revision,
        "uncommitted_package_files": changed,
        "pinning": run.pinning,
        "versions": versions,
        "python": platform.python_version(),
        "peers": run.peers,
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
        "failures": run.failures,
        "samples": run.samples,
    }
    return text, data
