"""Bulk progress: events, the plain line's pacing on a fake clock, tqdm, callables."""

from __future__ import annotations

import io
import subprocess
import sys
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aligneai._bulk import _progress
from aligneai._bulk._progress import (
    LOG_INTERVAL,
    REDRAW_INTERVAL,
    ProgressEvent,
    format_progress,
    make_reporter,
)
from aligneai.core.errors import InvalidArgumentTypeError


class Stream(io.StringIO):
    """A text stream that says whether it is a terminal."""

    def __init__(self, terminal: bool) -> None:
        super().__init__()
        self.terminal = terminal
        self.flushes = 0

    def isatty(self) -> bool:
        return self.terminal

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def no_tqdm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)


def test_progress_event_is_frozen() -> None:
    event = ProgressEvent(done=3, total=10)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.done = 4  # type: ignore[misc]
    assert event == ProgressEvent(3, 10, 0, 0, 0, 0, 0, 0.0, 0)


def test_format_progress_lines() -> None:
    event = ProgressEvent(
        done=12_345,
        total=100_000,
        tokens=45_678,
        requests=37,
        retries=2,
        rate_limited=1,
        failed=3,
        elapsed=10.0,
        concurrency=8,
    )
    assert format_progress(event, rate=1234.4) == (
        "12,345/100,000 texts (12.3%) | 1,234 texts/s | 0:00:10, 0:01:11 left | "
        "45,678 tokens | 37 requests, 2 retries, 1 rate-limited | 3 failed | concurrency 8"
    )
    plain = ProgressEvent(done=7, elapsed=3725.9, tokens=1, requests=1)
    assert format_progress(plain) == "7 texts | 1:02:05 | 1 tokens | 1 requests"
    assert format_progress(ProgressEvent(done=0, total=0)).startswith("0/0 texts (100.0%)")


@given(
    done=st.integers(0, 10**9),
    extra=st.integers(0, 10**9),
    elapsed=st.floats(0, 10**7),
    rate=st.one_of(st.none(), st.floats(0, 10**7)),
)
def test_format_progress_never_fails_and_is_one_line(
    done: int, extra: int, elapsed: float, rate: float | None
) -> None:
    line = format_progress(ProgressEvent(done=done, total=done + extra, elapsed=elapsed), rate=rate)
    assert "\n" not in line
    assert "\r" not in line
    assert f"{done:,}/{done + extra:,} texts" in line


def test_plain_line_on_a_terminal_redraws_at_most_ten_times_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    no_tqdm(monkeypatch)
    stream, clock = Stream(terminal=True), Clock()
    reporter = make_reporter(True, total=1000, stream=stream, clock=clock)
    start = clock.now
    for k in range(1, 301):  # 300 events over 3 simulated seconds
        clock.now = start + k * 0.01
        reporter.update(ProgressEvent(done=k, total=1000, elapsed=k * 0.01))
    draws = stream.getvalue().count("\r")
    assert 29 <= draws <= 31  # one per 0.1 s
    assert "\n" not in stream.getvalue()
    reporter.close()
    text = stream.getvalue()
    assert text.endswith("\n")
    last = text.rstrip("\n").split("\r")[-1]
    assert last.startswith("300/1,000 texts (30.0%)")  # the last event is always shown
    reporter.close()  # idempotent
    assert stream.getvalue() == text


def test_plain_line_pads_over_a_longer_previous_line(monkeypatch: pytest.MonkeyPatch) -> None:
    no_tqdm(monkeypatch)
    stream, clock = Stream(terminal=True), Clock()
    reporter = make_reporter(True, total=None, stream=stream, clock=clock)
    reporter.update(ProgressEvent(done=1, retries=5, rate_limited=5, concurrency=16))
    first = stream.getvalue()[1:]
    clock.now += REDRAW_INTERVAL
    reporter.update(ProgressEvent(done=2))
    second = stream.getvalue().split("\r")[-1]
    assert len(second) == len(first)
    assert second.rstrip(" ") == format_progress(ProgressEvent(done=2))


def test_plain_line_rate_counts_this_run_only(monkeypatch: pytest.MonkeyPatch) -> None:
    no_tqdm(monkeypatch)
    stream, clock = Stream(terminal=True), Clock()
    reporter = make_reporter(True, total=1000, stream=stream, clock=clock)
    # a resumed run starts at 500 done; 100 more in 2 s is 50 texts/s, not 300
    reporter.update(ProgressEvent(done=500, total=1000, elapsed=0.0))
    clock.now += 2
    reporter.update(ProgressEvent(done=600, total=1000, elapsed=2.0))
    assert "| 50 texts/s | 0:00:02, 0:00:08 left |" in stream.getvalue()


def test_not_a_terminal_writes_a_line_every_log_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    stream, clock = Stream(terminal=False), Clock()
    reporter = make_reporter(True, total=None, stream=stream, clock=clock)
    start = clock.now
    for k in range(1, 1001):  # 100 simulated seconds
        clock.now = start + k * 0.1
        reporter.update(ProgressEvent(done=k, elapsed=k * 0.1))
    lines = stream.getvalue().splitlines()
    assert len(lines) == int(100 // LOG_INTERVAL)  # at 30, 60 and 90 s
    assert "\r" not in stream.getvalue()
    reporter.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4
    assert lines[-1].startswith("1,000 texts")
    assert stream.getvalue().endswith("\n")


def test_not_a_terminal_short_run_prints_one_final_line() -> None:
    stream, clock = Stream(terminal=False), Clock()
    reporter = make_reporter(True, stream=stream, clock=clock)
    for k in range(5):
        reporter.update(ProgressEvent(done=k))
    assert stream.getvalue() == ""
    reporter.close()
    assert stream.getvalue() == format_progress(ProgressEvent(done=4)) + "\n"


def test_nothing_is_written_without_events(monkeypatch: pytest.MonkeyPatch) -> None:
    no_tqdm(monkeypatch)
    for terminal in (True, False):
        stream = Stream(terminal=terminal)
        reporter = make_reporter(True, stream=stream, clock=Clock())
        reporter.close()
        assert stream.getvalue() == ""


def test_tqdm_bar_on_a_terminal() -> None:
    stream = Stream(terminal=True)
    reporter = make_reporter(True, total=200, stream=stream, clock=Clock())
    for k in (50, 100, 200):
        reporter.update(
            ProgressEvent(done=k, total=200, tokens=k * 10, requests=k // 50, retries=1)
        )
    reporter.close()
    text = stream.getvalue()
    assert "200/200" in text
    assert "2,000 tokens, 4 req, 1 retries" in text
    assert "text" in text  # the unit


def test_tqdm_bar_of_a_resumed_run_starts_at_its_done_count() -> None:
    tqdm = pytest.importorskip("tqdm")
    stream = Stream(terminal=True)
    reporter = make_reporter(True, total=None, stream=stream, clock=Clock())
    reporter.update(ProgressEvent(done=700, total=None))
    bar: Any = reporter._bar  # type: ignore[attr-defined]
    assert isinstance(bar, tqdm.tqdm)
    assert bar.n == 700
    assert bar.total is None
    reporter.update(ProgressEvent(done=900, total=1000))
    assert bar.n == 900
    assert bar.total == 1000
    reporter.close()


def test_without_tqdm_a_terminal_gets_the_plain_line(monkeypatch: pytest.MonkeyPatch) -> None:
    no_tqdm(monkeypatch)
    stream = Stream(terminal=True)
    reporter = make_reporter(True, stream=stream, clock=Clock())
    reporter.update(ProgressEvent(done=1))
    reporter.close()
    assert stream.getvalue() == "\r" + format_progress(ProgressEvent(done=1)) + "\n"


def test_stderr_is_the_default_stream(capsys: pytest.CaptureFixture[str]) -> None:
    reporter = make_reporter(True, clock=Clock())  # captured stderr is not a terminal
    reporter.update(ProgressEvent(done=3))
    reporter.close()
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == format_progress(ProgressEvent(done=3)) + "\n"


def test_a_callable_receives_every_event() -> None:
    seen: list[ProgressEvent] = []
    reporter = make_reporter(seen.append, total=3)
    events = [ProgressEvent(done=k, total=3) for k in range(4)]
    for event in events:
        reporter.update(event)
    reporter.close()
    assert seen == events


@pytest.mark.parametrize("progress", [False, None])
def test_no_progress_writes_nothing(progress: object) -> None:
    stream = Stream(terminal=True)
    reporter = make_reporter(progress, stream=stream)
    reporter.update(ProgressEvent(done=1))
    reporter.close()
    assert stream.getvalue() == ""


@pytest.mark.parametrize("progress", [1, "yes", 0.5, object()])
def test_other_progress_values_are_refused(progress: object) -> None:
    with pytest.raises(InvalidArgumentTypeError) as info:
        make_reporter(progress)
    assert info.value.argument == "progress"


def test_a_closed_or_odd_stream_is_not_a_terminal() -> None:
    closed = io.StringIO()
    closed.close()
    assert not _progress._is_terminal(closed)
    assert not _progress._is_terminal(object())  # type: ignore[arg-type]


def test_importing_aligneai_does_not_import_tqdm() -> None:
    code = (
        "import sys, aligneai, aligneai._bulk._progress as p\n"
        "assert 'tqdm' not in sys.modules, 'tqdm imported early'\n"
        "assert 'pyarrow' not in sys.modules, 'pyarrow imported early'\n"
        "import aligneai._bulk._sinks, aligneai._bulk._checkpoint\n"
        "assert 'pyarrow' not in sys.modules, 'pyarrow imported by the sinks module'\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"


def _read_all(fd: int) -> bytes:
    """What a pseudo-terminal's other end received so far (bounded: select with a timeout)."""
    import os
    import select

    chunks = []
    while select.select([fd], [], [], 0.2)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other end is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
@pytest.mark.parametrize("columns", [0, 100])
def test_a_terminal_without_a_width_gets_the_plain_line(columns: int) -> None:
    # A fresh pseudo-terminal (some `docker exec` sessions) reports 0 x 0: tqdm, sizing its
    # bar to that, drew nothing at all. Such a terminal gets the plain line instead.
    pytest.importorskip("tqdm")
    import fcntl
    import os
    import pty
    import struct
    import termios

    primary, secondary = pty.openpty()
    if columns:
        fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    stream = open(secondary, "w", encoding="utf-8", closefd=True)  # noqa: SIM115
    try:
        reporter = make_reporter(True, total=10, stream=stream, clock=Clock())
        reporter.update(ProgressEvent(done=4, total=10, tokens=40, requests=1))
        reporter.update(ProgressEvent(done=10, total=10, tokens=100, requests=2))
        reporter.close()
        stream.flush()
        screen = _read_all(primary).decode("utf-8", "replace")
    finally:
        stream.close()
        os.close(primary)
    if columns:  # a terminal with a width keeps tqdm's bar
        assert "100%|" in screen and "100 tokens, 2 req" in screen
    else:
        assert format_progress(ProgressEvent(done=10, total=10, tokens=100, requests=2)) in screen
