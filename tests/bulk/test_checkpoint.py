"""Bulk checkpoints: atomic, mergeable, refusing what cannot be resumed, surviving kill -9."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aligneai._bulk import _checkpoint
from aligneai._bulk._checkpoint import (
    BulkResumeError,
    Checkpoint,
    checkpoint_path,
    combine_digests,
    ids_path,
    spill_path,
    texts_digest,
)
from aligneai._bulk._sinks import open_sink
from aligneai.core.errors import InvalidArgumentValueError

FORMATS = ["npy", "parquet", "jsonl"]
FINGERPRINT = {"model": "m-small", "dimensions": None, "format": "npy"}

texts_lists = st.lists(st.text(max_size=8), max_size=12)


def model_digest(start: int, texts: list[str]) -> str:
    """The digest written down from its definition (independent of the module)."""
    total = 0
    for i, text in enumerate(texts, start):
        h = hashlib.blake2b(digest_size=16)
        h.update(i.to_bytes(8, "little"))
        h.update(text.encode("utf-8", "surrogatepass"))
        total += int.from_bytes(h.digest(), "little")
    return f"{total % 2**128:032x}"


# -- digests (pure) ------------------------------------------------------------------------


@given(start=st.integers(0, 10**9), texts=texts_lists)
def test_digest_matches_its_definition(start: int, texts: list[str]) -> None:
    digest = texts_digest(start, texts)
    assert digest == model_digest(start, texts)
    assert len(digest) == 32
    assert int(digest, 16) < 2**128


@given(start=st.integers(0, 10**6), first=texts_lists, second=texts_lists)
def test_digests_of_neighbouring_ranges_add_up(
    start: int, first: list[str], second: list[str]
) -> None:
    together = texts_digest(start, first + second)
    parts = combine_digests(texts_digest(start, first), texts_digest(start + len(first), second))
    assert parts == together
    assert combine_digests(parts, texts_digest(0, [])) == together  # the empty range is zero


@given(texts=st.lists(st.text(max_size=5), min_size=2, max_size=6, unique=True), data=st.data())
def test_digest_sees_a_changed_or_moved_text(texts: list[str], data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(texts) - 2))
    swapped = list(texts)
    swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
    assert texts_digest(0, swapped) != texts_digest(0, texts)
    assert texts_digest(1, texts) != texts_digest(0, texts)
    changed = [*texts[:i], texts[i] + "!", *texts[i + 1 :]]
    assert texts_digest(0, changed) != texts_digest(0, texts)


def test_digest_of_a_lone_surrogate() -> None:
    assert texts_digest(0, ["\ud800"]) != texts_digest(0, ["\ud801"])


# -- recording -------------------------------------------------------------------------------


@st.composite
def partitions(draw: st.DrawFn, max_rows: int = 80) -> list[tuple[int, int]]:
    n = draw(st.integers(1, max_rows))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, n - 1)), max_size=10))) if n > 1 else []
    bounds = [0, *[c for c in cuts if 0 < c < n], n]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if a < b]


def text_of(i: int) -> str:
    return f"text {i}"


@settings(max_examples=80)
@given(batches=partitions(), order=st.randoms(use_true_random=False))
def test_recorded_ranges_merge_into_the_union(batches: list[tuple[int, int]], order: Any) -> None:
    checkpoint = Checkpoint(Path("out.npy"), FINGERPRINT)
    shuffled = list(batches)
    order.shuffle(shuffled)
    done: set[int] = set()
    for start, stop in shuffled:
        texts = [text_of(i) for i in range(start, stop)]
        checkpoint.record(start, stop, texts_digest(start, texts))
        done.update(range(start, stop))
        # The runs are exactly the maximal intervals of `done`, each with its texts' digest.
        expected = []
        for i in sorted(done):
            if expected and expected[-1][1] == i:
                expected[-1][1] = i + 1
            else:
                expected.append([i, i + 1])
        assert checkpoint.done == [
            (a, b, texts_digest(a, [text_of(i) for i in range(a, b)])) for a, b in expected
        ]
        assert checkpoint.done_count == len(done)
        for i in range(batches[-1][1] + 1):
            assert checkpoint.covers(i, i + 1) == (i in done)
    assert len(checkpoint.done) == 1


def test_overlapping_records_are_a_bug() -> None:
    checkpoint = Checkpoint(Path("out.npy"), FINGERPRINT)
    checkpoint.record(10, 20, texts_digest(10, ["x"] * 10))
    for start, stop in [(5, 11), (19, 25), (12, 13), (0, 30), (10, 20)]:
        with pytest.raises(ValueError, match="already recorded"):
            checkpoint.record(start, stop, texts_digest(start, ["x"] * (stop - start)))
    with pytest.raises(ValueError):
        checkpoint.record(3, 3, texts_digest(3, []))
    with pytest.raises(ValueError):
        checkpoint.record(0, 1, "not a digest")


def test_covers_and_boundaries() -> None:
    checkpoint = Checkpoint(Path("out.npy"), FINGERPRINT)
    checkpoint.record(10, 20, texts_digest(10, ["x"] * 10))
    checkpoint.record(30, 35, texts_digest(30, ["x"] * 5))
    assert checkpoint.next_boundary(0) == 10
    assert checkpoint.next_boundary(10) == 20
    assert checkpoint.next_boundary(25) == 30
    assert checkpoint.next_boundary(34) == 35
    assert checkpoint.next_boundary(35) is None
    assert checkpoint.covers(12, 18) is True
    assert checkpoint.covers(0, 10) is False
    assert checkpoint.covers(20, 30) is False
    with pytest.raises(ValueError, match="partly"):
        checkpoint.covers(5, 15)
    with pytest.raises(ValueError, match="partly"):
        checkpoint.covers(15, 25)


# -- opening ------------------------------------------------------------------------------


def test_a_new_run_saves_a_checkpoint_at_once(tmp_path: Path) -> None:
    out = tmp_path / "v.npy"
    checkpoint = Checkpoint.open(out, FINGERPRINT, resume=False)
    assert not checkpoint.resumed
    data = json.loads(checkpoint_path(out).read_text(encoding="utf-8"))
    assert data == {
        "format": "aligneai-bulk-checkpoint",
        "version": 1,
        "fingerprint": FINGERPRINT,
        "dimensions": None,
        "server_model": None,
        "done": [],
    }
    assert checkpoint.path == tmp_path / "v.npy.checkpoint.json"


@pytest.mark.parametrize("existing", ["output", "checkpoint"])
def test_without_resume_an_existing_output_or_checkpoint_is_refused(
    tmp_path: Path, existing: str
) -> None:
    out = tmp_path / "v.parquet"
    (out if existing == "output" else checkpoint_path(out)).write_bytes(b"x")
    with pytest.raises(InvalidArgumentValueError, match="pass resume=True to continue it or"):
        Checkpoint.open(out, FINGERPRINT, resume=False)
    try:
        Checkpoint.open(out, FINGERPRINT, resume=False)
    except InvalidArgumentValueError as exc:
        assert exc.argument == "output"
        assert not isinstance(exc, BulkResumeError)
    assert (out if existing == "output" else checkpoint_path(out)).read_bytes() == b"x"


@pytest.mark.parametrize(
    ("field", "value"),
    [("model", "m-large"), ("dimensions", 256), ("format", "jsonl"), ("extra", 1)],
)
def test_resume_with_another_fingerprint_names_the_field(
    tmp_path: Path, field: str, value: object
) -> None:
    out = tmp_path / "v.npy"
    Checkpoint.open(out, FINGERPRINT, resume=False)
    changed = {**FINGERPRINT, field: value}
    with pytest.raises(BulkResumeError, match=rf"{field} differs") as info:
        Checkpoint.open(out, changed, resume=True)
    assert info.value.argument == "resume"
    assert isinstance(info.value, InvalidArgumentValueError)
    assert isinstance(info.value, ValueError)
    assert repr(value) in str(info.value)
    # the same fingerprint (tuples and lists alike) resumes
    same = Checkpoint.open(out, dict(FINGERPRINT), resume=True)
    assert same.resumed


def test_resume_of_a_complete_output_says_so(tmp_path: Path) -> None:
    out = tmp_path / "v.jsonl"
    out.write_text("{}\n")
    with pytest.raises(BulkResumeError, match=r"is complete .* nothing to resume"):
        Checkpoint.open(out, FINGERPRINT, resume=True)


def test_resume_with_nothing_there_starts_afresh(tmp_path: Path) -> None:
    out = tmp_path / "v.jsonl"
    checkpoint = Checkpoint.open(out, FINGERPRINT, resume=True)
    assert not checkpoint.resumed
    assert checkpoint.done == []
    assert checkpoint_path(out).exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "cannot read"),
        ('{"format": "other"}', "not a bulk embedding checkpoint"),
        ('{"format": "aligneai-bulk-checkpoint", "version": 2}', "version 2"),
        (
            '{"format": "aligneai-bulk-checkpoint", "version": 1, "fingerprint": {},'
            ' "dimensions": 3, "done": [[5, 2, "00"]]}',
            "damaged",
        ),
        (
            '{"format": "aligneai-bulk-checkpoint", "version": 1, "fingerprint": {},'
            f' "dimensions": 3, "done": [[0, 5, "{"0" * 32}"], [4, 6, "{"0" * 32}"]]}}',
            "damaged",
        ),
        (
            '{"format": "aligneai-bulk-checkpoint", "version": 1, "fingerprint": {},'
            ' "dimensions": 3, "server_model": 3, "done": []}',
            "damaged",
        ),
    ],
)
def test_a_damaged_checkpoint_is_refused(tmp_path: Path, content: str, message: str) -> None:
    out = tmp_path / "v.npy"
    checkpoint_path(out).write_text(content)
    with pytest.raises(BulkResumeError, match=message):
        Checkpoint.open(out, {}, resume=True)


# -- saving ---------------------------------------------------------------------------------


def test_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "v.npy"
    checkpoint = Checkpoint.open(out, FINGERPRINT, resume=False)
    checkpoint.dimensions = 4
    checkpoint.record(0, 2, texts_digest(0, ["a", "b"]))
    checkpoint.save()
    before = checkpoint_path(out).read_bytes()
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(_checkpoint.os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))

    def fail(*args: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(_checkpoint.os, "replace", fail)
    checkpoint.record(2, 3, texts_digest(2, ["c"]))
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save()
    assert checkpoint_path(out).read_bytes() == before  # the old one, whole
    assert synced  # the new content reached the disk before the (failed) rename
    monkeypatch.undo()
    checkpoint.save()
    assert json.loads(checkpoint_path(out).read_text())["done"] == [
        [0, 3, texts_digest(0, ["a", "b", "c"])]
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.npy.checkpoint.json"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_complete_removes_checkpoint_and_spill(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"v.{fmt}"
    checkpoint = Checkpoint.open(out, FINGERPRINT, resume=False)
    sink = open_sink(out, resume=False, dimensions=None)
    sink.record_ids(0, ["a", "b"])
    sink.write(0, np.ones((2, 3), dtype=np.float32))
    checkpoint.record(0, 2, texts_digest(0, ["x", "y"]))
    checkpoint.save()
    sink.finish(2)
    checkpoint.complete()
    names = sorted(p.name for p in tmp_path.iterdir())
    if fmt == "npy":
        assert names == ["v.npy", "v.npy.ids.jsonl"]  # the ids of a .npy stay
    else:
        assert names == [f"v.{fmt}"]
    assert not spill_path(out).exists()
    assert not ids_path(out).exists() or fmt == "npy"


# -- verification on resume -----------------------------------------------------------------


def test_verify_accepts_the_same_texts_in_any_split_and_refuses_others() -> None:
    texts = [text_of(i) for i in range(20)]
    interrupted = Checkpoint(Path("v.npy"), FINGERPRINT)
    interrupted.record(0, 8, texts_digest(0, texts[0:8]))
    interrupted.record(8, 12, texts_digest(8, texts[8:12]))
    interrupted.record(15, 20, texts_digest(15, texts[15:20]))
    checkpoint = Checkpoint(Path("v.npy"), FINGERPRINT, done=interrupted.done, resumed=True)
    with pytest.raises(ValueError, match="not within a range done before"):
        checkpoint.verify(11, 13, texts_digest(11, texts[11:13]))
    # the resumed run batches differently: 0-5, 5-12 then 15-17, 17-20; and 12-15 is new
    checkpoint.record(12, 15, texts_digest(12, texts[12:15]))
    for start, stop in [(5, 12), (0, 5), (17, 20), (15, 17)]:
        checkpoint.verify(start, stop, texts_digest(start, texts[start:stop]))
    checkpoint.verify_end(20)

    changed = list(texts)
    changed[16] = "another text"
    again = Checkpoint(Path("v.npy"), FINGERPRINT, done=interrupted.done)
    again.verify(15, 17, texts_digest(15, changed[15:17]))
    with pytest.raises(BulkResumeError, match="texts 15 to 19 changed") as info:
        again.verify(17, 20, texts_digest(17, changed[17:20]))
    assert info.value.argument == "resume"


def test_inputs_that_end_early_are_refused() -> None:
    done = [(0, 10, texts_digest(0, ["x"] * 10))]
    checkpoint = Checkpoint(Path("v.npy"), FINGERPRINT, done=done, resumed=True)
    checkpoint.verify(0, 6, texts_digest(0, ["x"] * 6))
    with pytest.raises(BulkResumeError, match="inputs end after 6 texts"):
        checkpoint.verify_end(6)


# -- interrupted and resumed runs equal uninterrupted ones ----------------------------------

WIDTH = 3


def rows_for(start: int, stop: int) -> np.ndarray:
    index = np.arange(start, stop, dtype=np.float64)[:, None]
    return (index * 100 + np.arange(WIDTH) / 4).astype(np.float32)


def run_batches(
    out: Path, batches: list[tuple[int, int]], count: int, *, resume: bool, finish: bool
) -> None:
    """What the driver does: checkpoint, sink, then per batch: write, record, save."""
    texts = [text_of(i) for i in range(count)]
    checkpoint = Checkpoint.open(out, {"model": "m"}, resume=resume)
    sink = open_sink(out, resume=resume, dimensions=checkpoint.dimensions)
    try:
        sink.record_ids(0, [f"id-{i}" for i in range(count)])
        for start, stop in batches:
            if checkpoint.covers(start, stop):
                checkpoint.verify(start, stop, texts_digest(start, texts[start:stop]))
                continue
            sink.write(start, rows_for(start, stop))
            checkpoint.dimensions = sink.dimensions
            checkpoint.record(start, stop, texts_digest(start, texts[start:stop]))
            checkpoint.save()
        if finish:
            checkpoint.verify_end(count)
            sink.finish(count)
            checkpoint.complete()
    finally:
        sink.close()


def cut_at_boundaries(
    checkpoint: Checkpoint, batches: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Split a resumed run's batches where the checkpoint's done ranges begin or end."""
    out = []
    for start, stop in batches:
        while start < stop:
            boundary = checkpoint.next_boundary(start)
            end = stop if boundary is None else min(stop, boundary)
            out.append((start, end))
            start = end
    return out


@settings(max_examples=25)
@given(
    first=partitions(max_rows=40),
    second_cuts=st.sets(st.integers(1, 39), max_size=6),
    order=st.randoms(use_true_random=False),
    data=st.data(),
)
def test_resume_after_an_interrupt_anywhere_equals_an_uninterrupted_run(
    first: list[tuple[int, int]],
    second_cuts: set[int],
    order: Any,
    data: st.DataObject,
) -> None:
    count = first[-1][1]
    shuffled = list(first)
    order.shuffle(shuffled)
    interrupt_after = data.draw(st.integers(0, len(shuffled)), label="batches saved")
    torn = data.draw(st.booleans(), label="rows of the next batch written, not recorded")
    with tempfile.TemporaryDirectory() as folder:
        for fmt in FORMATS:
            reference = Path(folder) / f"reference.{fmt}"
            run_batches(reference, first, count, resume=False, finish=True)

            out = Path(folder) / f"v.{fmt}"
            run_batches(out, shuffled[:interrupt_after], count, resume=False, finish=False)
            if torn and interrupt_after < len(shuffled):
                sink = open_sink(out, resume=True, dimensions=None)
                start, stop = shuffled[interrupt_after]
                sink.write(start, rows_for(start, stop) + 1)  # garbage a re-send overwrites
                sink.close()
            # The resumed run reads the inputs in order and batches them its own way.
            bounds = [0, *sorted(c for c in second_cuts if c < count), count]
            second = [(a, b) for a, b in zip(bounds, bounds[1:]) if a < b]
            checkpoint = Checkpoint.open(out, {"model": "m"}, resume=True)
            second = cut_at_boundaries(checkpoint, second)
            run_batches(out, second, count, resume=True, finish=True)
            assert out.read_bytes() == reference.read_bytes(), fmt
            assert not checkpoint_path(out).exists()
            assert not spill_path(out).exists()


# -- kill -9 ----------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import random, sys
    import numpy as np
    from pathlib import Path
    from aligneai._bulk._checkpoint import Checkpoint, texts_digest
    from aligneai._bulk._sinks import open_sink

    out = Path(sys.argv[1])
    count, batch, seed = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    width = 16
    batches = [(a, min(count, a + batch)) for a in range(0, count, batch)]
    random.Random(seed).shuffle(batches)
    checkpoint = Checkpoint.open(out, {"model": "m"}, resume=False)
    sink = open_sink(out, resume=False, dimensions=None)
    for k, (start, stop) in enumerate(batches):
        sink.record_ids(0, [f"id-{i}" for i in range(count)]) if k == 0 else None
        rows = (np.arange(start, stop, dtype=np.float64)[:, None] * 100 + np.arange(width) / 4)
        sink.write(start, rows.astype(np.float32))
        checkpoint.dimensions = width
        checkpoint.record(start, stop, texts_digest(start, [f"t{i}" for i in range(start, stop)]))
        checkpoint.save()
        print(k, flush=True)
    print("all", flush=True)
    sys.stdin.read()  # never finishes on its own: the parent kills it
    """
)


def kill_run_resume(folder: Path, fmt: str, kill_after: int, seed: int) -> None:
    count, batch, width = 3000, 25, 16
    out = folder / f"v.{fmt}"
    script = folder / "child.py"
    script.write_text(CHILD)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(out), str(count), str(batch), str(seed)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        while True:
            line = proc.stdout.readline()
            assert line, "the writer died on its own"
            if line.strip() in (str(kill_after), "all"):
                break
        proc.kill()  # SIGKILL: no cleanup, no flush, wherever it is
    finally:
        proc.wait(timeout=60)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        proc.stdout.close()
    assert proc.returncode == -9

    # What the checkpoint claims is in the partial file, byte for byte.
    checkpoint = Checkpoint.open(out, {"model": "m"}, resume=True)
    partial = out if fmt == "npy" else spill_path(out)
    raw = partial.read_bytes()
    for start, stop, _digest in checkpoint.done:
        got = np.frombuffer(raw[128 + start * 4 * width : 128 + stop * 4 * width], "<f4")
        want = np.arange(start, stop, dtype=np.float64)[:, None] * 100 + np.arange(width) / 4
        np.testing.assert_array_equal(got.reshape(-1, width), want.astype(np.float32))
    assert checkpoint.done_count >= (kill_after + 1) * batch

    # Resume: only what is not recorded is written again.
    already = checkpoint.done_count
    sink = open_sink(out, resume=True, dimensions=checkpoint.dimensions)
    sent = 0
    sink.record_ids(0, [f"id-{i}" for i in range(count)])
    for start in range(0, count, batch):
        stop = min(count, start + batch)
        texts = [f"t{i}" for i in range(start, stop)]
        if checkpoint.covers(start, stop):
            checkpoint.verify(start, stop, texts_digest(start, texts))
            continue
        rows = np.arange(start, stop, dtype=np.float64)[:, None] * 100 + np.arange(width) / 4
        sink.write(start, rows.astype(np.float32))
        sent += stop - start
        checkpoint.record(start, stop, texts_digest(start, texts))
        checkpoint.save()
    checkpoint.verify_end(count)
    sink.finish(count)
    checkpoint.complete()
    assert sent == count - already

    # The uninterrupted run, for comparison.
    reference = folder / f"reference.{fmt}"
    sink = open_sink(reference, resume=False, dimensions=None)
    sink.record_ids(0, [f"id-{i}" for i in range(count)])
    rows = np.arange(0, count, dtype=np.float64)[:, None] * 100 + np.arange(width) / 4
    sink.write(0, rows.astype(np.float32))
    sink.finish(count)
    assert out.read_bytes() == reference.read_bytes()
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith("v.")) == (
        ["v.npy", "v.npy.ids.jsonl"] if fmt == "npy" else [f"v.{fmt}"]
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_kill_9_mid_run_then_resume_equals_an_uninterrupted_run(tmp_path: Path, fmt: str) -> None:
    rng = random.Random(fmt)
    for attempt in range(2):
        folder = tmp_path / str(attempt)
        folder.mkdir()
        kill_run_resume(folder, fmt, kill_after=rng.randrange(0, 100), seed=rng.randrange(1000))
