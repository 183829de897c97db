"""Tests of aligneai.core.batching: contiguous, bounded, never empty batches; resume; digests."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aligneai.core.batching import (
    DEFAULT_TOKENS_PER_CHAR,
    Batch,
    Batcher,
    InputTooLargeError,
    Oversized,
    Skipped,
    estimate_tokens,
    validate_text,
)
from aligneai.core.errors import InvalidArgumentTypeError, InvalidArgumentValueError

texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)
ratios = st.floats(min_value=0.01, max_value=2.0)


def drain(batcher: Batcher, ratio: float) -> list[object]:
    items: list[object] = []
    while True:
        item = batcher.next_item(ratio)
        if item is None:
            return items
        items.append(item)


def done_ranges(n: int) -> st.SearchStrategy[list[tuple[int, int]]]:
    """Disjoint sorted ranges within [0, n + 3) (a checkpoint may claim more than exists)."""
    return st.lists(st.integers(0, n + 3), max_size=6, unique=True).map(
        lambda cuts: [(a, b) for a, b in zip(sorted(cuts)[::2], sorted(cuts)[1::2]) if b > a]
    )


@given(data=st.data(), inputs=st.lists(texts, max_size=80), ratio=ratios)
def test_items_cover_every_input_once_in_order(
    data: st.DataObject, inputs: list[str], ratio: float
) -> None:
    batch_size = data.draw(st.integers(1, 10))
    max_batch_tokens = data.draw(st.one_of(st.none(), st.integers(1, 60)))
    max_input_tokens = data.draw(st.one_of(st.none(), st.integers(1, 60)))
    done = data.draw(done_ranges(len(inputs)))
    # Read lazily: a generator, not a list.
    batcher = Batcher(
        (text for text in inputs),
        batch_size=batch_size,
        max_batch_tokens=max_batch_tokens,
        max_input_tokens=max_input_tokens,
        done=done,
    )
    items = drain(batcher, ratio)
    position = 0
    done_indexes = {i for a, b in done for i in range(a, b)}
    for item in items:
        if isinstance(item, Oversized):
            assert item.index == position
            assert max_input_tokens is not None
            assert item.estimated_tokens == estimate_tokens(len(inputs[position]), ratio)
            assert item.estimated_tokens > max_input_tokens
            position += 1
            continue
        assert isinstance(item, (Batch, Skipped))
        assert item.start == position, "items are contiguous and in order"
        assert item.stop > item.start, "never empty"
        assert list(item.texts) == inputs[item.start : item.stop]
        covered = set(range(item.start, item.stop))
        if isinstance(item, Skipped):
            assert covered <= done_indexes
        else:
            assert covered.isdisjoint(done_indexes), "a batch never straddles a done range"
            assert len(item) <= batch_size
            assert item.chars == sum(len(t) for t in item.texts)
            if len(item) > 1 and max_batch_tokens is not None:
                assert estimate_tokens(item.chars, ratio) <= max_batch_tokens
            if max_input_tokens is not None:
                for text in item.texts:
                    assert estimate_tokens(len(text), ratio) <= max_input_tokens
        position = item.stop
    assert position == len(inputs)
    assert batcher.exhausted


@given(inputs=st.lists(st.text(alphabet="ab", min_size=1, max_size=10), min_size=1, max_size=50))
def test_batches_are_as_large_as_the_rules_allow(inputs: list[str]) -> None:
    # Greedy: a batch ends only because the next input would break a rule (or at the end).
    batcher = Batcher(inputs, batch_size=7, max_batch_tokens=12)
    items = drain(batcher, 0.5)
    for item in items[:-1]:
        assert isinstance(item, Batch)
        nxt = inputs[item.stop]
        assert len(item) == 7 or estimate_tokens(item.chars + len(nxt), 0.5) > 12


def test_the_stream_is_read_lazily() -> None:
    pulled: list[int] = []

    def generate() -> object:
        for i in range(100):
            pulled.append(i)
            yield f"text {i}"

    batcher = Batcher(generate(), batch_size=10)
    first = batcher.next_item(DEFAULT_TOKENS_PER_CHAR)
    assert isinstance(first, Batch) and (first.start, first.stop) == (0, 10)
    # One text of look-ahead at most (to find where a token-limited batch ends).
    assert len(pulled) <= 11


@pytest.mark.parametrize(
    ("inputs", "argument", "error"),
    [
        (["a", 5], "inputs[1]", InvalidArgumentTypeError),
        (["a", "b", None], "inputs[2]", InvalidArgumentTypeError),
        ([b"bytes"], "inputs[0]", InvalidArgumentTypeError),
        (["a", "", "c"], "inputs[1]", InvalidArgumentValueError),
        (["a", "b", "c", "d\udfff"], "inputs[3]", InvalidArgumentValueError),
    ],
)
def test_bad_inputs_are_named(inputs: list[object], argument: str, error: type) -> None:
    batcher = Batcher(inputs, batch_size=2)
    with pytest.raises(error) as caught:
        drain(batcher, 0.25)
    assert caught.value.argument == argument


def test_a_bad_input_after_a_token_cut_keeps_its_index() -> None:
    # inputs[2] is read as look-ahead when the first batch is cut by tokens.
    batcher = Batcher(["aaaa", "bbbb", 7], batch_size=10, max_batch_tokens=2)
    with pytest.raises(InvalidArgumentTypeError) as caught:
        drain(batcher, 0.25)
    assert caught.value.argument == "inputs[2]"


def test_validate_text_accepts_any_real_text() -> None:
    assert validate_text("héllo \U0001f600", 0) == "héllo \U0001f600"


def test_oversized_error_names_its_index() -> None:
    error = InputTooLargeError(41, "too large")
    assert error.argument == "inputs[41]"
    assert error.index == 41
    assert isinstance(error, ValueError)


@given(st.integers(0, 10**7), ratios)
def test_estimate_is_the_rounded_up_product(chars: int, ratio: float) -> None:
    estimate = estimate_tokens(chars, ratio)
    assert estimate >= 1
    assert estimate >= chars * ratio
    assert estimate < max(1.0, chars * ratio) + 1


def test_split_halves_a_batch() -> None:
    batch = Batch(10, 15, ("a", "bb", "ccc", "dddd", "e"), 11, attempt=2)
    first, second = batch.split()
    assert (first.start, first.stop, first.texts, first.chars) == (10, 12, ("a", "bb"), 3)
    assert (second.start, second.stop, second.chars) == (12, 15, 8)
    assert first.attempt == second.attempt == 2
    with pytest.raises(ValueError):
        first.split()[0].split()


def test_overlapping_done_ranges_are_refused() -> None:
    with pytest.raises(InvalidArgumentValueError):
        Batcher(["a"], batch_size=1, done=[(0, 5), (3, 8)])
    with pytest.raises(InvalidArgumentValueError):
        Batcher(["a"], batch_size=0)


def test_done_beyond_the_end_is_skipped_as_far_as_inputs_go() -> None:
    batcher = Batcher(["a", "b", "c"], batch_size=5, done=[(1, 10)])
    items = drain(batcher, 0.25)
    assert isinstance(items[0], Batch) and (items[0].start, items[0].stop) == (0, 1)
    assert isinstance(items[1], Skipped) and (items[1].start, items[1].stop) == (1, 3)
    assert len(items) == 2
    assert math.isclose(DEFAULT_TOKENS_PER_CHAR, 0.25)


def test_a_long_done_range_is_read_in_bounded_chunks() -> None:
    # A resumed run whose checkpoint merged 100,000 done rows into one range: the texts are
    # read (to be checked) a chunk at a time, never all at once (memory would grow with the
    # corpus otherwise).
    from aligneai.core.batching import SKIP_CHUNK

    assert SKIP_CHUNK == 4096
    n = 100_000
    read = 0

    def inputs() -> object:
        nonlocal read
        for i in range(n + 10):
            read += 1
            yield f"t{i}"

    batcher = Batcher(inputs(), batch_size=7, done=[(0, n)])  # type: ignore[arg-type]
    position = 0
    while position < n:
        item = batcher.next_item(DEFAULT_TOKENS_PER_CHAR)
        assert isinstance(item, Skipped)
        assert item.start == position
        assert 0 < len(item.texts) <= SKIP_CHUNK
        assert item.texts[0] == f"t{position}"
        assert read <= item.stop + 1  # read as far as this chunk (and one lookahead), no more
        position = item.stop
    item = batcher.next_item(DEFAULT_TOKENS_PER_CHAR)
    assert isinstance(item, Batch) and (item.start, item.stop) == (n, n + 7)


@given(
    inputs=st.lists(texts, max_size=60),
    chunk=st.integers(1, 9),
    data=st.data(),
)
def test_skipped_chunks_cover_each_done_range_exactly(
    inputs: list[str], chunk: int, data: st.DataObject
) -> None:
    import aligneai.core.batching as batching

    done = data.draw(done_ranges(len(inputs)))
    original = batching.SKIP_CHUNK
    batching.SKIP_CHUNK = chunk
    try:
        items = drain(Batcher(iter(inputs), batch_size=4, done=done), 0.25)
    finally:
        batching.SKIP_CHUNK = original
    skipped = [item for item in items if isinstance(item, Skipped)]
    assert all(len(item.texts) <= chunk for item in skipped)
    covered = [i for item in skipped for i in range(item.start, item.stop)]
    assert covered == [i for a, b in done for i in range(a, min(b, len(inputs)))]
    for item in skipped:
        assert list(item.texts) == inputs[item.start : item.stop]
