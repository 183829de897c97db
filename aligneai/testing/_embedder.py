r"""Deterministic, model-free text embeddings for the local AligneAI server.

The vectors are built by *signed feature hashing*:

* the text is lower-cased and split into words (regex ``\w+``);
* each word unigram (weight 1.0), each pair of adjacent words (weight 0.5) and each
  character 3-gram of every word wrapped in boundary markers, ``<word>`` (weight 0.25),
  is hashed with a stable 64-bit hash (CRC-32 of the UTF-8 bytes, spread by a
  multiplicative mix; never Python's salted ``hash()``, so the vectors are the same in
  every process and on every machine);
* the high 32 bits pick a bucket (``% dimensions``) and the top bit a sign, and the
  feature's weight is added there with that sign;
* the vector is L2-normalised and rounded through ``array('f')``, so every component is
  exactly a float32 and JSON float answers equal base64 (little-endian float32) answers.

Texts that share words or word pieces therefore have a higher cosine similarity than
unrelated texts, which makes demos and search tests meaningful without any model.

``dimensions=d`` hashes into ``d`` buckets directly. It is *not* a truncation of the
model-sized vector: truncating a hashed vector would drop every feature whose bucket lies
past ``d`` (a short text could become all zeros), while hashing into ``d`` buckets keeps
every feature. Vectors of different sizes are therefore not prefixes of one another.
"""

from __future__ import annotations

import base64
import functools
import math
import re
import sys
import zlib
from array import array
from collections import Counter
from collections.abc import Sequence
from itertools import chain, repeat

__all__ = ["cosine_similarity", "embed", "embed_many", "from_base64", "to_base64"]

_WORD_RE = re.compile(r"\w+")

# Feature weights 1.0 / 0.5 / 0.25, as whole repeats of the smallest one: keeps the sums exact
# integers and lets ``collections.Counter`` do the accumulation in C.
_UNIGRAM_REPEAT = 4
_BIGRAM_REPEAT = 2
_TRIGRAM_REPEAT = 1

# The caches are bounded: the server is long-lived and clients may send arbitrary texts.
_HASH_CACHE_SIZE = 1 << 18
_TERM_CACHE_SIZE = 1 << 16
_VECTOR_CACHE_SIZE = 4096

_MASK_64 = (1 << 64) - 1
_GOLDEN_64 = 0x9E3779B97F4A7C15


# Cached because character 3-grams repeat across words: most lookups never hash at all.
@functools.lru_cache(maxsize=_HASH_CACHE_SIZE)
def _stable_hash(feature: str) -> int:
    """Return a stable 64-bit hash of ``feature`` (the same in every process and machine).

    CRC-32 is far cheaper than BLAKE2b, which matters at 2048 inputs a request; the multiply
    by the 64-bit golden ratio spreads its 32 bits over all 64 so that both the bucket (high
    half) and the sign (top bit) are well mixed, even for power-of-two sizes.
    """
    crc = zlib.crc32(feature.encode("utf-8", "surrogatepass"))
    return ((crc + 1) * _GOLDEN_64) & _MASK_64


def _keys(features: list[str], times: int, dimensions: int) -> list[int]:
    """Map features to count keys ``bucket * 2 + sign``, each ``times`` times (its weight).

    The high 32 hash bits pick the bucket and the top bit the sign (1 = negative).
    """
    keys = [((h >> 32) % dimensions) * 2 + (h >> 63) for h in map(_stable_hash, features)]
    return keys * times


# Words repeat a lot across texts, so a word's unigram and 3-gram keys are cached together.
@functools.lru_cache(maxsize=_TERM_CACHE_SIZE)
def _word_keys(word: str, dimensions: int) -> tuple[int, ...]:
    marked = "<" + word + ">"
    trigrams = ["c:" + marked[start : start + 3] for start in range(len(marked) - 2)]
    return tuple(
        _keys(["w:" + word], _UNIGRAM_REPEAT, dimensions)
        + _keys(trigrams, _TRIGRAM_REPEAT, dimensions)
    )


def _count_keys(text: str, dimensions: int) -> Counter[int]:
    """Count the keys of every feature of ``text`` (in C, via ``Counter``: this is the hot loop)."""
    words = _WORD_RE.findall(text.lower())
    if not words:
        # Punctuation-only or whitespace-only text: still give it a stable, non-zero vector.
        return Counter(_keys(["t:" + text], _UNIGRAM_REPEAT, dimensions))
    bigrams = ["b:" + first + " " + second for first, second in zip(words, words[1:])]
    word_keys = chain.from_iterable(map(_word_keys, words, repeat(dimensions)))
    return Counter(chain(word_keys, _keys(bigrams, _BIGRAM_REPEAT, dimensions)))


@functools.lru_cache(maxsize=_VECTOR_CACHE_SIZE)
def _embed_cached(text: str, dimensions: int) -> tuple[float, ...]:
    # Integer sums: exact, so the result cannot depend on the order of the features.
    buckets: dict[int, int] = {}
    get = buckets.get
    for key, count in _count_keys(text, dimensions).items():
        buckets[key >> 1] = get(key >> 1, 0) + (-count if key & 1 else count)
    norm = math.hypot(*buckets.values())
    vector = [0.0] * dimensions
    if norm == 0.0:
        # Colliding features of opposite sign can cancel out; a unit vector must still come out.
        vector[_keys(["z:" + text], 1, dimensions)[0] >> 1] = 1.0
        return tuple(vector)
    # Only the non-zero buckets need rounding to float32 (zeros are exact): far cheaper than
    # converting the whole vector at 1536 dimensions.
    rounded = array("f", [value / norm for value in buckets.values()]).tolist()
    for index, value in zip(buckets, rounded):
        vector[index] = value
    return tuple(vector)


def embed(text: str, dimensions: int) -> tuple[float, ...]:
    """Return the unit-length, float32-exact embedding of ``text`` with ``dimensions`` items.

    The same ``(text, dimensions)`` always gives the same vector, in any process.
    """
    if dimensions < 1:
        raise ValueError(f"dimensions must be positive, got {dimensions}")
    return _embed_cached(text, dimensions)


def embed_many(texts: Sequence[str], dimensions: int) -> list[tuple[float, ...]]:
    """Embed every text of ``texts`` (in order) with :func:`embed`."""
    return [embed(text, dimensions) for text in texts]


def to_base64(vector: Sequence[float]) -> str:
    """Encode ``vector`` as standard base64 of little-endian float32 bytes (the wire format)."""
    packed = array("f", vector)
    if sys.byteorder != "little":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def from_base64(data: str) -> list[float]:
    """Decode a base64 embedding (little-endian float32) back into floats."""
    packed = array("f")
    packed.frombytes(base64.b64decode(data, validate=True))
    if sys.byteorder != "little":
        packed.byteswap()
    return packed.tolist()


def cosine_similarity(first: Sequence[float], second: Sequence[float]) -> float:
    """Return the cosine similarity of two equally long vectors (0.0 if either is zero)."""
    if len(first) != len(second):
        raise ValueError(f"vector lengths differ: {len(first)} != {len(second)}")
    dot = math.fsum(a * b for a, b in zip(first, second))
    norms = math.sqrt(math.fsum(a * a for a in first)) * math.sqrt(math.fsum(b * b for b in second))
    return dot / norms if norms else 0.0
