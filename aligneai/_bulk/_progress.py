"""Progress of a bulk run: events, and the reporters that show them.

The driver sends a `ProgressEvent` after every completed batch (and one at the end). What
``progress=`` asks for decides where it goes:

- a callable: it receives every event, on the driver's thread (or event loop);
- ``True``, stderr a terminal: a tqdm bar when tqdm is installed (``aligneai[tqdm]``; imported
  on first use only, never by ``import aligneai``), otherwise one plain line rewritten in place
  (a carriage return) at most `REDRAW_INTERVAL` apart, and a final newline. A terminal that
  reports a width of 0 (a fresh pseudo-terminal, some ``docker exec`` sessions) gets the plain
  line too: tqdm sizes its bar to the width and would draw nothing;
- ``True``, stderr not a terminal (a log file, CI): one plain line every `LOG_INTERVAL` seconds
  and a final one, each ending in a newline (a bar redrawn in place is noise in a log), with or
  without tqdm;
- ``False``: nothing.
"""

from __future__ import annotations

import importlib
import math
import os
import sys
import time
from typing import IO, Any, Callable, Optional, Protocol, Union

import attrs

from aligneai.core.errors import InvalidArgumentTypeError

__all__ = [
    "LOG_INTERVAL",
    "REDRAW_INTERVAL",
    "ProgressArg",
    "ProgressEvent",
    "Reporter",
    "format_progress",
    "make_reporter",
]

#: Shortest time between two redraws of the plain line on a terminal (at most 10 per second).
REDRAW_INTERVAL = 0.1
#: Shortest time between two plain lines when stderr is not a terminal.
LOG_INTERVAL = 30.0


@attrs.frozen
class ProgressEvent:
    """Where a bulk run stands.

    Attributes:
        done: inputs whose rows are written (those an interrupted run wrote included).
        total: the number of inputs, when known (None while a generator is being read).
        failed: inputs given up on (``on_error="skip"``).
        tokens: tokens the server reported so far (this run).
        requests: requests answered so far, retries included (this run).
        retries: requests sent again (after a 429, a 5xx or a connection failure).
        rate_limited: 429 answers so far.
        elapsed: seconds since the run started.
        concurrency: the current ceiling of requests in flight.
    """

    done: int
    total: Optional[int] = None  # noqa: UP045 - attrs may evaluate this on 3.9
    failed: int = 0
    tokens: int = 0
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    elapsed: float = 0.0
    concurrency: int = 0


class Reporter(Protocol):
    """Shows progress events; `close` once at the end (finished, failed or interrupted)."""

    def update(self, event: ProgressEvent) -> None:
        """Take the latest event."""

    def close(self) -> None:
        """Show the last event and release the output."""


#: What ``progress=`` accepts.
ProgressArg = Union[bool, Callable[[ProgressEvent], None], None]


def make_reporter(
    progress: object,
    *,
    total: int | None = None,
    stream: IO[str] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Reporter:
    """The reporter for a ``progress=`` argument (see the module docstring).

    ``stream`` defaults to ``sys.stderr`` (read at call time); ``clock`` paces the plain line
    (tests pass a fake one). ``total`` is the number of inputs when known up front; events may
    carry a later, better one. Anything but a bool, None or a callable:
    ``InvalidArgumentTypeError`` naming ``progress``.
    """
    if progress is None or progress is False:
        return _Silent()
    if progress is True:
        out = sys.stderr if stream is None else stream
        if not _is_terminal(out):
            return _PlainLine(out, clock, terminal=False)
        tqdm = _import_tqdm() if _terminal_width(out) != 0 else None
        if tqdm is not None:
            return _TqdmBar(tqdm, out, total)
        return _PlainLine(out, clock, terminal=True)
    if callable(progress):
        return _Callback(progress)
    raise InvalidArgumentTypeError(
        "progress",
        f"expected True, False or a callable taking a ProgressEvent, got {type(progress).__name__}",
    )


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _terminal_width(stream: IO[str]) -> int | None:
    """The columns the terminal behind ``stream`` reports; None when it cannot be asked."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):  # no fileno (io.UnsupportedOperation), closed
        return None


def _import_tqdm() -> Any:
    try:
        # import_module: tqdm ships no type information, and mypy need not see it
        module = importlib.import_module("tqdm")
    except ImportError:
        return None
    return module.tqdm


def format_progress(event: ProgressEvent, *, rate: float | None = None) -> str:
    """One line for an event (pure).

    For example ``12,345/100,000 texts (12.3%) | 1,234 texts/s | 0:00:10, 0:01:11 left |
    45,678 tokens | 37 requests | concurrency 8``; retries, 429s and failures appear when
    non-zero.
    """
    parts = []
    if event.total is not None:
        share = 100.0 * event.done / event.total if event.total else 100.0
        parts.append(f"{event.done:,}/{event.total:,} texts ({share:.1f}%)")
    else:
        parts.append(f"{event.done:,} texts")
    if rate is not None:
        parts.append(f"{rate:,.0f} texts/s")
    timing = _clock_text(event.elapsed)
    if rate and event.total is not None and event.total > event.done:
        left = (event.total - event.done) / rate
        if math.isfinite(left):  # a rate near zero has no useful estimate
            timing += f", {_clock_text(left)} left"
    parts.append(timing)
    parts.append(f"{event.tokens:,} tokens")
    requests = f"{event.requests:,} requests"
    if event.retries:
        requests += f", {event.retries:,} retries"
    if event.rate_limited:
        requests += f", {event.rate_limited:,} rate-limited"
    parts.append(requests)
    if event.failed:
        parts.append(f"{event.failed:,} failed")
    if event.concurrency:
        parts.append(f"concurrency {event.concurrency}")
    return " | ".join(parts)


def _clock_text(seconds: float) -> str:
    whole = int(max(0.0, seconds)) if math.isfinite(seconds) else 0
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


class _Silent:
    def update(self, event: ProgressEvent) -> None:
        pass

    def close(self) -> None:
        pass


class _Callback:
    def __init__(self, callback: Callable[[ProgressEvent], None]) -> None:
        self._callback = callback

    def update(self, event: ProgressEvent) -> None:
        self._callback(event)

    def close(self) -> None:
        pass


class _PlainLine:
    """One line, redrawn in place on a terminal; a line per `LOG_INTERVAL` elsewhere."""

    def __init__(self, stream: IO[str], clock: Callable[[], float], *, terminal: bool) -> None:
        self._stream = stream
        self._clock = clock
        self._terminal = terminal
        self._interval = REDRAW_INTERVAL if terminal else LOG_INTERVAL
        self._started = clock()
        self._last_draw: float | None = None
        self._width = 0
        self._event: ProgressEvent | None = None
        self._drawn: ProgressEvent | None = None
        self._baseline: ProgressEvent | None = None
        self._closed = False

    def _rate(self, event: ProgressEvent) -> float | None:
        # Over this run only: rows a resumed run found written do not count as speed.
        base = self._baseline
        if base is None or event.elapsed <= base.elapsed:
            return None
        return (event.done - base.done) / (event.elapsed - base.elapsed)

    def update(self, event: ProgressEvent) -> None:
        if self._closed:
            return
        if self._baseline is None:
            self._baseline = event
        self._event = event
        now = self._clock()
        since = now - (self._started if self._last_draw is None else self._last_draw)
        # The first line on a terminal at once; in a log, only after a full interval.
        if (self._terminal and self._last_draw is None) or since >= self._interval:
            self._draw(now)

    def _draw(self, now: float) -> None:
        event = self._event
        assert event is not None
        line = format_progress(event, rate=self._rate(event))
        if self._terminal:
            # Pad over the end of a longer previous line.
            self._stream.write("\r" + line + " " * max(0, self._width - len(line)))
            self._width = len(line)
        else:
            self._stream.write(line + "\n")
        self._stream.flush()
        self._last_draw = now
        self._drawn = event

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._event is not None and self._event is not self._drawn:
            self._draw(self._clock())
        if self._terminal and self._drawn is not None:
            self._stream.write("\n")
            self._stream.flush()


class _TqdmBar:
    """A tqdm bar, created at the first event (so a resumed run starts at its done count)."""

    def __init__(self, tqdm: Any, stream: IO[str], total: int | None) -> None:
        self._tqdm = tqdm
        self._stream = stream
        self._total = total
        self._bar: Any = None

    def update(self, event: ProgressEvent) -> None:
        total = event.total if event.total is not None else self._total
        if self._bar is None:
            self._bar = self._tqdm(
                total=total,
                initial=event.done,
                unit="text",
                unit_scale=True,
                file=self._stream,
                dynamic_ncols=True,
                mininterval=REDRAW_INTERVAL,
                leave=True,
            )
        bar = self._bar
        if total is not None and bar.total != total:
            bar.total = total
        postfix = f"{event.tokens:,} tokens, {event.requests:,} req"
        if event.retries:
            postfix += f", {event.retries:,} retries"
        if event.rate_limited:
            postfix += f", {event.rate_limited:,} 429s"
        if event.failed:
            postfix += f", {event.failed:,} failed"
        if event.concurrency:
            postfix += f", x{event.concurrency}"
        bar.set_postfix_str(postfix, refresh=False)
        if event.done > bar.n:
            bar.update(event.done - bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
