"""The local server's deterministic embeddings and the contract's tokenizer."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
import time
from array import array
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aligneai.testing import _embedder
from aligneai.testing._api import count_tokens
from aligneai.testing._embedder import cosine_similarity, embed, from_base64, to_base64

texts = st.text(min_size=1, max_size=200)
dimensions = st.integers(min_value=1, max_value=1536)


def _clear_caches() -> None:
    _embedder._embed_cached.cache_clear()
    _embedder._word_keys.cache_clear()
    _embedder._stable_hash.cache_clear()


# No per-example deadline: a busy CI machine must not turn a pause into a failure.
@settings(deadline=None)
@given(texts, dimensions)
def test_vectors_are_unit_length_float32_and_sized(text: str, dims: int) -> None:
    vector = embed(text, dims)
    assert len(vector) == dims
    assert math.isclose(math.fsum(x * x for x in vector), 1.0, rel_tol=1e-5)
    assert list(array("f", vector)) == list(vector)  # every component is exactly a float32


@settings(deadline=None)
@given(texts, dimensions)
def test_same_input_same_vector(text: str, dims: int) -> None:
    first = embed(text, dims)
    _clear_caches()
    assert embed(text, dims) == first


@settings(deadline=None)
@given(texts, st.integers(min_value=1, max_value=64))
def test_base64_round_trips_exactly(text: str, dims: int) -> None:
    vector = embed(text, dims)
    assert from_base64(to_base64(vector)) == list(vector)


def test_vectors_are_the_same_in_every_process(tmp_path: Path) -> None:
    # A salted or platform-dependent hash would give another process other numbers.
    code = "from aligneai.testing._embedder import embed; print(embed('hello world', 384))"
    output = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,  # not the repo root, whose ./aligneai would shadow the package
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    ).stdout
    assert output.strip() == repr(embed("hello world", 384))


def test_golden_vector() -> None:
    assert embed("hello world", 8) == (
        0.5080004930496216,
        0.2540002465248108,
        0.6350006461143494,
        0.0,
        0.0,
        0.0,
        -0.5080004930496216,
        0.1270001232624054,
    )


@pytest.mark.parametrize("dims", [16, 384, 1536])
def test_related_texts_are_closer_than_unrelated_ones(dims: int) -> None:
    coffee = embed("The new coffee blend from BeanWorks is robust and flavorful", dims)
    related = embed("BeanWorks coffee: a robust, flavorful blend", dims)
    unrelated = embed("Looking for a budget-friendly beach vacation spot in July", dims)
    assert cosine_similarity(coffee, related) > cosine_similarity(coffee, unrelated) + 0.2


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.from_regex(r"[a-z]{4,9}", fullmatch=True), min_size=3, max_size=8, unique=True),
    st.lists(st.from_regex(r"[0-9]{4,9}", fullmatch=True), min_size=3, max_size=8, unique=True),
)
def test_sharing_words_beats_sharing_nothing(words: list[str], others: list[str]) -> None:
    text = " ".join(words)
    shares_half = " ".join(words[: len(words) // 2 + 1] + others[:2])
    shares_nothing = " ".join(others)
    sim_shared = cosine_similarity(embed(text, 384), embed(shares_half, 384))
    sim_none = cosine_similarity(embed(text, 384), embed(shares_nothing, 384))
    assert sim_shared > sim_none


def test_case_and_punctuation_do_not_matter_much() -> None:
    assert embed("Hello, World!", 384) == embed("hello world", 384)


def test_a_small_size_is_hashed_directly_not_truncated() -> None:
    # Truncating a 384-vector to 2 items would usually give zeros; direct hashing never does.
    for word in ("a", "b", "cat", "!!!", "   "):
        vector = embed(word, 2)
        assert math.isclose(math.hypot(*vector), 1.0, rel_tol=1e-6)


def test_invalid_dimensions() -> None:
    with pytest.raises(ValueError):
        embed("x", 0)
    with pytest.raises(ValueError):
        cosine_similarity([1.0], [1.0, 0.0])
    assert cosine_similarity([0.0], [1.0]) == 0.0


def test_2048_inputs_of_100_chars_are_fast() -> None:
    rng = random.Random(0)
    vocabulary = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
        for _ in range(5000)
    ]
    inputs = [" ".join(rng.choice(vocabulary) for _ in range(20))[:100] for _ in range(2048)]
    _clear_caches()
    # CPU time of this thread, so that other busy processes on the machine do not count.
    started = time.thread_time()
    _embedder.embed_many(inputs, 384)
    elapsed = time.thread_time() - started
    assert elapsed < 1.0  # about 0.1 s on a laptop, 0.35 s on a slow CI box


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("hello", 1),
        ("Hello, world!", 4),
        ("don't stop", 4),
        ("   ", 1),
        ("ünïcode wörds", 2),
        ("a-b_c", 3),
    ],
)
def test_token_count(text: str, tokens: int) -> None:
    assert count_tokens(text) == tokens
