"""Batching for bulk embedding: a lazily read input stream cut into contiguous requests.

`Batcher` reads the caller's iterable once, in order, and only as far as the scheduler asks.
Each `Batch` covers the inputs ``[start, stop)``; it never is empty, holds at most
``batch_size`` texts and, when it holds more than one, at most ``max_batch_tokens`` estimated
tokens. The estimate of a text is ``ceil(len(text) * tokens_per_char)``, with a ratio the rate
controller learns from the server's ``usage`` (see `aligneai.core.ratecontrol`).

Every text is checked as it is read (a ``str``, not empty, no lone surrogate, which could not
be encoded as UTF-8 JSON), and a bad one is reported as ``inputs[i]``. A text whose estimate
alone exceeds ``max_input_tokens`` (the per-request token cap, when known) comes out as an
`Oversized` item rather than a batch: it is never sent.

Resuming: ranges already done (from a checkpoint) are read but not batched; they come out as
`Skipped` items carrying their texts, so the caller can check them against the digests the
checkpoint recorded. Batches never straddle a done range.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Optional, Union

import attrs

from .errors import InvalidArgumentTypeError, InvalidArgumentValueError

__all__ = [
    "DEFAULT_TOKENS_PER_CHAR",
    "SKIP_CHUNK",
    "Batch",
    "Batcher",
    "BatcherItem",
    "InputTooLargeError",
    "Oversized",
    "Skipped",
    "estimate_tokens",
    "validate_text",
]

#: The ratio used until the server's ``usage`` has taught a better one: about four
#: characters per token, the usual figure for English text with BPE tokenizers.
DEFAULT_TOKENS_PER_CHAR = 0.25


class InputTooLargeError(InvalidArgumentValueError):
    """One input alone is larger than a request may be (also a `ValueError`).

    Attributes:
        index: the position of the input in ``inputs``.
    """

    index: int

    def __init__(self, index: int, message: str) -> None:
        super().__init__(f"inputs[{index}]", message)
        self.index = index


@attrs.frozen
class Batch:
    """The inputs ``[start, stop)`` to send in one request.

    Attributes:
        start, stop: the range of input indexes (``stop > start``).
        texts: the texts, ``stop - start`` of them.
        chars: their total length in characters.
        attempt: how many times this range (or a range that held it) failed (429s aside).
        rate_limited: how many times it was answered 429.
    """

    start: int
    stop: int
    texts: tuple[str, ...] = attrs.field(repr=False)
    chars: int
    attempt: int = 0
    rate_limited: int = 0

    def __len__(self) -> int:
        return self.stop - self.start

    def split(self) -> tuple[Batch, Batch]:
        """The two halves of a batch of at least two inputs (attempt count kept)."""
        if len(self) < 2:
            raise ValueError("a batch of one input cannot be split")
        half = len(self) // 2
        first, second = self.texts[:half], self.texts[half:]
        return (
            Batch(
                self.start, self.start + half, first, _chars(first), self.attempt, self.rate_limited
            ),
            Batch(
                self.start + half,
                self.stop,
                second,
                _chars(second),
                self.attempt,
                self.rate_limited,
            ),
        )


@attrs.frozen
class Skipped:
    """The inputs ``[start, stop)`` were done by an earlier run; ``texts`` are for checking.

    A done range longer than `SKIP_CHUNK` inputs comes out as several items, in order.
    """

    start: int
    stop: int
    texts: tuple[str, ...] = attrs.field(repr=False)


@attrs.frozen
class Oversized:
    """Input ``index`` alone is estimated above the per-request token cap; it is never sent."""

    index: int
    estimated_tokens: int
    cap: int


BatcherItem = Union[Batch, Skipped, Oversized]


def _chars(texts: Sequence[str]) -> int:
    return sum(len(text) for text in texts)


def estimate_tokens(chars: int, tokens_per_char: float) -> int:
    """The estimated tokens of ``chars`` characters: ``ceil(chars * ratio)``, at least 1."""
    return max(1, math.ceil(chars * tokens_per_char))


def validate_text(item: object, index: int) -> str:
    """Return ``item`` if it is a usable input text, else raise naming ``inputs[index]``."""
    if not isinstance(item, str):
        raise InvalidArgumentTypeError(
            f"inputs[{index}]", f"expected a string, got {type(item).__name__}"
        )
    if not item:
        raise InvalidArgumentValueError(f"inputs[{index}]", "must not be an empty string")
    try:
        item.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidArgumentValueError(
            f"inputs[{index}]",
            f"contains a lone surrogate at character {exc.start}, which has no UTF-8 encoding",
        ) from None
    return item


def _check_ranges(done: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    ranges = sorted((int(start), int(stop)) for start, stop in done)
    previous = 0
    for start, stop in ranges:
        if start < previous or stop <= start:
            raise InvalidArgumentValueError(
                "resume",
                f"the checkpoint's done ranges overlap or are empty near [{start}, {stop})",
            )
        previous = stop
    return ranges


#: The most texts of a done range (resume) read into one `Skipped` item: a checkpoint merges
#: neighbouring ranges, so one range may span millions of inputs, and its texts are only read
#: to be checked against its digest; a chunk at a time keeps memory flat.
SKIP_CHUNK = 4096


class Batcher:
    """Cuts an input iterable into `Batch`, `Skipped` and `Oversized` items, lazily and in order.

    Args:
        inputs: any iterable of str; read once, as far as `next_item` needs.
        batch_size: the most inputs per batch.
        max_batch_tokens: the most estimated tokens per batch of two or more inputs (None: no
            limit); a single input above it goes alone.
        max_input_tokens: the per-request token cap (None: unknown); an input estimated above
            it alone comes out as `Oversized`.
        done: ranges ``[start, stop)`` finished by an earlier run, to come out as `Skipped`.
    """

    def __init__(
        self,
        inputs: Iterable[object],
        *,
        batch_size: int,
        max_batch_tokens: int | None = None,
        max_input_tokens: int | None = None,
        done: Sequence[tuple[int, int]] = (),
    ) -> None:
        if batch_size < 1:
            raise InvalidArgumentValueError("batch_size", f"must be at least 1, got {batch_size}")
        self._iterator: Iterator[object] = iter(inputs)
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.max_input_tokens = max_input_tokens
        self._done = _check_ranges(done)
        self._next_index = 0  # index of the next input to read
        self._lookahead: Optional[str] = None  # noqa: UP045 - one text read but not yet used
        self._read_count = 0  # inputs pulled from the iterator (the lookahead included)
        self.exhausted = False

    @property
    def position(self) -> int:
        """The index of the next input not yet handed out."""
        return self._next_index

    def _read(self) -> str | None:
        if self._lookahead is not None:
            text, self._lookahead = self._lookahead, None
            return text
        if self.exhausted:
            return None
        try:
            item = next(self._iterator)
        except StopIteration:
            self.exhausted = True
            return None
        index = self._read_count
        self._read_count += 1
        return validate_text(item, index)

    def _unread(self, text: str) -> None:
        self._lookahead = text

    def _next_done(self) -> tuple[int, int] | None:
        while self._done and self._done[0][1] <= self._next_index:
            self._done.pop(0)
        return self._done[0] if self._done else None

    def next_item(self, tokens_per_char: float) -> BatcherItem | None:
        """The next item, or None once the inputs are exhausted."""
        done = self._next_done()
        if done is not None and done[0] <= self._next_index:
            return self._skip(done[1])
        limit = self.batch_size
        if done is not None:
            limit = min(limit, done[0] - self._next_index)
        texts: list[str] = []
        chars = 0
        while len(texts) < limit:
            text = self._read()
            if text is None:
                break
            estimate = estimate_tokens(len(text), tokens_per_char)
            if self.max_input_tokens is not None and estimate > self.max_input_tokens:
                if texts:  # finish the batch first; the oversized input comes out next
                    self._unread(text)
                    break
                index = self._next_index
                self._next_index += 1
                return Oversized(index, estimate, self.max_input_tokens)
            if (
                texts
                and self.max_batch_tokens is not None
                and estimate_tokens(chars + len(text), tokens_per_char) > self.max_batch_tokens
            ):
                self._unread(text)
                break
            texts.append(text)
            chars += len(text)
        if not texts:  # the inputs are exhausted
            return None
        start = self._next_index
        self._next_index += len(texts)
        return Batch(start, self._next_index, tuple(texts), chars)

    def _skip(self, stop: int) -> Skipped | None:
        start = self._next_index
        stop = min(stop, start + SKIP_CHUNK)
        texts: list[str] = []
        while self._next_index + len(texts) < stop:
            text = self._read()
            if text is None:
                break
            texts.append(text)
        if not texts:
            return None
        self._next_index += len(texts)
        return Skipped(start, self._next_index, tuple(texts))
