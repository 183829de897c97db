"""`DoneRecord`, the record a finished output keeps: its digest check and its file, by property.

The expected digest comes from `texts_digest` of the texts one by one (its additivity is
tested in test_checkpoint.py), not from `DoneRecord.verify`'s chunked sum.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aligneai._bulk._checkpoint import (
    BulkResumeError,
    DoneRecord,
    combine_digests,
    done_path,
    texts_digest,
)

FINGERPRINT = {"model": None, "dimensions": 8, "format": ".npy", "ids": False}


def usable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return bool(text)


def record_of(texts: list[str], failed: set[int], output: Path) -> DoneRecord:
    digest = texts_digest(0, [])
    for index, text in enumerate(texts):
        if index not in failed:
            digest = combine_digests(digest, texts_digest(index, [text]))
    return DoneRecord(
        output,
        FINGERPRINT,
        count=len(texts),
        dimensions=8,
        server_model="m",
        failed=failed,
        digest=digest,
        size=0,
    )


texts_and_failed = st.lists(st.text(min_size=1).filter(usable), max_size=30).flatmap(
    lambda texts: st.tuples(
        st.just(texts),
        st.sets(st.integers(0, max(0, len(texts) - 1)), max_size=len(texts)).map(
            lambda failed: {i for i in failed if i < len(texts)}
        ),
    )
)


@settings(max_examples=200)
@given(texts_and_failed, st.integers(1, 5))
def test_the_same_texts_verify_however_they_are_chunked(
    case: tuple[list[str], set[int]], chunk: int
) -> None:
    texts, failed = case
    record = record_of(texts, failed, Path("v.npy"))
    import aligneai._bulk._checkpoint as module

    original = module.SKIP_CHUNK
    module.SKIP_CHUNK = chunk  # small chunks: the flush boundaries fall everywhere
    try:
        record.verify(iter(texts))
    finally:
        module.SKIP_CHUNK = original


@settings(max_examples=200)
@given(texts_and_failed, st.data())
def test_a_changed_moved_missing_or_extra_text_is_refused(
    case: tuple[list[str], set[int]], data: st.DataObject
) -> None:
    texts, failed = case
    record = record_of(texts, failed, Path("v.npy"))
    kept = [i for i in range(len(texts)) if i not in failed]
    kind = data.draw(st.sampled_from(["change", "drop", "extra", "swap"]))
    other = list(texts)
    if kind == "change" and kept:
        i = data.draw(st.sampled_from(kept))
        other[i] = other[i] + "!"
    elif kind == "drop" and texts:
        other.pop()
    elif kind == "extra":
        other.append("one more")
    elif kind == "swap" and len(kept) >= 2:
        i, j = data.draw(st.lists(st.sampled_from(kept), min_size=2, max_size=2, unique=True))
        if other[i] == other[j]:
            return
        other[i], other[j] = other[j], other[i]
    else:
        return
    with pytest.raises(BulkResumeError):
        record.verify(other)


@given(texts_and_failed)
def test_the_file_round_trips(tmp_path_factory: pytest.TempPathFactory, case: Any) -> None:
    texts, failed = case
    output = tmp_path_factory.mktemp("done") / "v.npy"
    record = record_of(texts, failed, output)
    record.save()
    assert done_path(output).exists()
    read = DoneRecord.read(output)
    assert read is not None and read.to_json() == record.to_json()
    assert read.failed == tuple(sorted(failed))
    read.verify(texts)


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        '{"format": "something else"}',
        '{"format": "aligneai-bulk-done", "version": 1, "fingerprint": {}, "count": -1}',
    ],
)
def test_a_damaged_record_is_named(tmp_path: Path, content: str) -> None:
    output = tmp_path / "v.npy"
    done_path(output).write_text(content)
    with pytest.raises(BulkResumeError, match=r"v\.npy\.done\.json"):
        DoneRecord.read(output)
