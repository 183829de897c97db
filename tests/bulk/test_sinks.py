"""Bulk output sinks: rows at their index in any order, the same file whatever the order."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aligneai._bulk import _sinks as sinks
from aligneai._bulk._checkpoint import ids_path, spill_path
from aligneai._bulk._sinks import NPY_HEADER_BYTES, open_sink, validate_output
from aligneai.core.errors import (
    InvalidArgumentTypeError,
    InvalidArgumentValueError,
    MissingDependencyError,
)

FORMATS = ["npy", "parquet", "jsonl"]


def rows_for(start: int, stop: int, width: int) -> np.ndarray:
    """The rows of inputs [start, stop): row i holds i * 1000 + j / 8 (exact in float32)."""
    index = np.arange(start, stop, dtype=np.float64)[:, None]
    return (index * 1000 + np.arange(width) / 8).astype(np.float32)


@st.composite
def partitions(draw: st.DrawFn, max_rows: int = 60) -> list[tuple[int, int]]:
    """[0, n) cut into consecutive batches (n >= 0)."""
    n = draw(st.integers(0, max_rows))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, n - 1)), max_size=8))) if n > 1 else []
    bounds = [0, *[c for c in cuts if 0 < c < n], n] if n else [0]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if a < b]


def write_all(
    path: Path | None,
    batches: list[tuple[int, int]],
    count: int,
    width: int,
    *,
    ids: list[str] | None = None,
    failed: tuple[int, ...] = (),
) -> Any:
    sink = open_sink(path, resume=False, dimensions=None)
    if ids is not None:
        # The driver records ids in input order as it reads, in pieces.
        for start in range(0, count, 7):
            sink.record_ids(start, ids[start : start + 7])
    for start, stop in batches:
        rows = [i for i in range(start, stop) if i not in failed]
        # a failed input's batch is split around it: write the runs that succeeded
        for run_start, run_stop in runs(rows):
            sink.write(run_start, rows_for(run_start, run_stop, width))
    sink.finish(count, failed)
    return sink


def runs(indexes: list[int]) -> Iterator[tuple[int, int]]:
    start = prev = None
    for i in indexes:
        if start is None:
            start = prev = i
        elif i == prev + 1:  # type: ignore[operator]
            prev = i
        else:
            yield start, prev + 1  # type: ignore[operator]
            start = prev = i
    if start is not None:
        yield start, prev + 1  # type: ignore[operator]


def expected_matrix(count: int, width: int, failed: tuple[int, ...] = ()) -> np.ndarray:
    matrix = rows_for(0, count, width)
    for i in failed:
        matrix[i] = np.nan
    return matrix


def read_back(path: Path) -> tuple[list[int], list[str] | None, np.ndarray]:
    """(index, ids or None, rows) of an output file, read with plain numpy/pyarrow/json."""
    if path.suffix == ".npy":
        matrix = np.load(path)
        return list(range(len(matrix))), None, matrix
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        width = table.schema.field("embedding").type.list_size
        flat = table.column("embedding").combine_chunks().flatten().to_numpy()
        ids = table.column("id").to_pylist() if "id" in table.column_names else None
        rows = flat.reshape(-1, width) if width else np.zeros((table.num_rows, 0), "f4")
        return table.column("index").to_pylist(), ids, rows
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    ids = [line["id"] for line in lines] if lines and "id" in lines[0] else None
    matrix = np.array([line["embedding"] for line in lines], dtype=np.float32)
    matrix = matrix.reshape(len(lines), -1) if lines else np.zeros((0, 0), "f4")
    return [line["index"] for line in lines], ids, matrix


# -- argument checks ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["out.txt", "out.npz", "out", "out.json", "out.parquet.bak"])
def test_output_with_another_suffix_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidArgumentValueError, match=r"^output: must end with \.npy") as info:
        validate_output(tmp_path / name)
    assert info.value.argument == "output"


def test_output_suffix_is_case_insensitive(tmp_path: Path) -> None:
    assert validate_output(str(tmp_path / "OUT.NPY")) == tmp_path / "OUT.NPY"
    assert validate_output(None) is None


def test_output_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "dir.npy").mkdir()
    with pytest.raises(InvalidArgumentValueError, match="is a folder") as info:
        open_sink(tmp_path / "dir.npy", resume=False, dimensions=None)
    assert info.value.argument == "output"


def test_output_in_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentValueError, match="does not exist") as info:
        validate_output(tmp_path / "missing" / "out.jsonl")
    assert info.value.argument == "output"


def test_output_in_an_unwritable_folder_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # os.access, not chmod: a test run as root may write anywhere.
    seen: list[Path] = []

    def access(path: Any, mode: int) -> bool:
        seen.append(Path(path))
        return False

    monkeypatch.setattr(sinks.os, "access", access)
    with pytest.raises(InvalidArgumentValueError, match="not writable") as info:
        validate_output(tmp_path / "out.npy")
    assert info.value.argument == "output"
    assert seen == [tmp_path]


@pytest.mark.parametrize("value", [3, b"out.npy", ["out.npy"]])
def test_output_of_another_type_is_refused(value: object) -> None:
    with pytest.raises(InvalidArgumentTypeError) as info:
        validate_output(value)
    assert info.value.argument == "output"


def test_parquet_without_pyarrow_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(MissingDependencyError, match=r'"aligneai\[parquet\]"'):
        open_sink(tmp_path / "out.parquet", resume=False, dimensions=None)
    assert not (tmp_path / "out.parquet").exists()
    # the other formats do not need it
    open_sink(tmp_path / "out.jsonl", resume=False, dimensions=None).close()


def test_no_numpy_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "numpy", None)
    with pytest.raises(MissingDependencyError, match=r'"aligneai\[numpy\]"'):
        open_sink(None, resume=False, dimensions=None)
    with pytest.raises(MissingDependencyError, match=r'"aligneai\[numpy\]"'):
        open_sink(tmp_path / "out.npy", resume=False, dimensions=None)
    assert not (tmp_path / "out.npy").exists()


def test_resume_needs_an_output() -> None:
    with pytest.raises(InvalidArgumentValueError) as info:
        open_sink(None, resume=True, dimensions=None)
    assert info.value.argument == "resume"


@pytest.mark.parametrize("fmt", [None, *FORMATS])
def test_rows_of_another_width_are_refused(tmp_path: Path, fmt: str | None) -> None:
    path = None if fmt is None else tmp_path / f"out.{fmt}"
    sink = open_sink(path, resume=False, dimensions=4)
    with pytest.raises(InvalidArgumentValueError, match="returned 3-dimensional") as info:
        sink.write(0, rows_for(0, 2, 3))
    assert info.value.argument == "dimensions"
    sink.write(0, rows_for(0, 2, 4))
    with pytest.raises(InvalidArgumentValueError):
        sink.write(2, rows_for(2, 3, 5))  # the width is fixed by the first write too
    sink.close()


# -- round trips ------------------------------------------------------------------------------


@settings(max_examples=30)
@given(
    batches=partitions(),
    width=st.integers(1, 6),
    order=st.randoms(use_true_random=False),
    with_ids=st.booleans(),
    data=st.data(),
)
def test_any_completion_order_gives_the_same_output(
    batches: list[tuple[int, int]], width: int, order: Any, with_ids: bool, data: st.DataObject
) -> None:
    count = batches[-1][1] if batches else 0
    failed = tuple(sorted(data.draw(st.sets(st.integers(0, max(0, count - 1))), label="failed")))
    failed = failed if count else ()
    ids = [f'doc-{i}\n\u00e9"' for i in range(count)] if with_ids else None
    shuffled = list(batches)
    order.shuffle(shuffled)
    kept = [i for i in range(count) if i not in failed]
    # No row ever written: the width is unknown, and the matrix is (count, 0).
    expected = expected_matrix(count, width, failed) if kept else np.zeros((count, 0), "f4")

    memory = write_all(None, shuffled, count, width, ids=ids, failed=failed)
    np.testing.assert_array_equal(memory.matrix, expected)
    assert memory.matrix.dtype == np.float32
    if ids is not None:
        assert memory.ids == tuple(ids)

    with tempfile.TemporaryDirectory() as folder:
        for fmt in FORMATS:
            in_order = Path(folder) / f"in_order.{fmt}"
            any_order = Path(folder) / f"any_order.{fmt}"
            write_all(in_order, batches, count, width, ids=ids, failed=failed)
            sink = write_all(any_order, shuffled, count, width, ids=ids, failed=failed)
            assert any_order.read_bytes() == in_order.read_bytes(), fmt
            index, got_ids, matrix = read_back(any_order)
            if fmt == "npy":
                np.testing.assert_array_equal(matrix, expected)
                np.testing.assert_array_equal(sink.matrix, expected)
                if ids is not None and count:
                    lines = ids_path(any_order).read_text(encoding="utf-8").splitlines()
                    assert [json.loads(line) for line in lines] == ids
            else:
                assert sink.matrix is None
                assert index == kept
                if kept:
                    np.testing.assert_array_equal(matrix, expected[kept])
                # (no input: record_ids never called; no row in a JSONL: no id to see)
                no_ids = ids is None or not count or (fmt == "jsonl" and not kept)
                assert got_ids == (None if no_ids else [ids[i] for i in kept])  # type: ignore[index]
                assert spill_path(any_order).exists()  # removed by Checkpoint.complete


def test_npy_output_is_a_plain_npy_file_and_a_read_only_memmap(tmp_path: Path) -> None:
    path = tmp_path / "v.npy"
    sink = write_all(path, [(5, 9), (0, 5)], 9, 3)
    assert isinstance(sink.matrix, np.memmap)
    with pytest.raises(ValueError):
        sink.matrix[0, 0] = 1.0
    raw = path.read_bytes()
    assert raw[:6] == b"\x93NUMPY"
    assert len(raw) == NPY_HEADER_BYTES + 9 * 3 * 4
    assert np.frombuffer(raw[NPY_HEADER_BYTES:], dtype="<f4").tolist() == (
        rows_for(0, 9, 3).reshape(-1).tolist()
    )
    loaded = np.load(path)
    assert loaded.shape == (9, 3)
    assert loaded.dtype == np.float32
    assert np.load(path, mmap_mode="r").shape == (9, 3)


def test_jsonl_lines_are_exact_and_in_index_order(tmp_path: Path) -> None:
    path = tmp_path / "v.jsonl"
    sink = open_sink(path, resume=False, dimensions=None)
    sink.record_ids(0, ["a", "b"])
    sink.record_ids(2, ["c"])
    sink.write(2, np.array([[0.5, -2.0]], dtype=np.float32))
    sink.write(0, np.array([[0.1, 1.0], [3.0, 4.25]], dtype=np.float32))
    sink.finish(3)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        {"index": 0, "id": "a", "embedding": [float(np.float32(0.1)), 1.0]},
        {"index": 1, "id": "b", "embedding": [3.0, 4.25]},
        {"index": 2, "id": "c", "embedding": [0.5, -2.0]},
    ]
    assert list(json.loads(lines[0])) == ["index", "id", "embedding"]


def test_parquet_schema_is_fixed_size_float32(tmp_path: Path) -> None:
    path = tmp_path / "v.parquet"
    write_all(path, [(0, 4)], 4, 5, ids=["w", "x", "y", "z"])
    schema = pq.read_schema(path)
    assert schema.names == ["index", "id", "embedding"]
    assert schema.field("index").type == pa.int64()
    assert schema.field("id").type == pa.string()
    assert schema.field("embedding").type == pa.list_(pa.float32(), 5)
    write_all(tmp_path / "no_ids.parquet", [(0, 4)], 4, 5)
    assert pq.read_schema(tmp_path / "no_ids.parquet").names == ["index", "embedding"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_run(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"v.{fmt}"
    sink = open_sink(path, resume=False, dimensions=None)
    sink.finish(0)
    if fmt == "npy":
        assert np.load(path).shape == (0, 0)
    elif fmt == "parquet":
        assert pq.read_table(path).num_rows == 0
    else:
        assert path.read_bytes() == b""


def test_in_memory_buffer_grows_past_a_generator_count_and_is_trimmed() -> None:
    sink = open_sink(None, resume=False, dimensions=None)
    # far beyond the initial capacity, out of order, with a hole (a failed input)
    sink.write(5000, rows_for(5000, 5003, 2))
    sink.write(0, rows_for(0, 4000, 2))
    sink.write(4001, rows_for(4001, 5000, 2))
    sink.finish(5003, failed=[4000])
    matrix = sink.matrix
    assert matrix is not None
    assert matrix.shape == (5003, 2)
    np.testing.assert_array_equal(matrix, expected_matrix(5003, 2, (4000,)))
    assert matrix.base is None or matrix.base.shape[0] == 5003  # no spare capacity kept


def test_finish_with_a_smaller_count_than_written_is_a_bug(tmp_path: Path) -> None:
    for path in (None, tmp_path / "v.npy"):
        sink = open_sink(path, resume=False, dimensions=None)
        sink.write(0, rows_for(0, 5, 2))
        with pytest.raises(ValueError, match="were written"):
            sink.finish(4)
        sink.close()


# -- ids ----------------------------------------------------------------------------------------


def test_ids_are_recorded_in_order_and_again_harmlessly(tmp_path: Path) -> None:
    path = tmp_path / "v.jsonl"
    sink = open_sink(path, resume=False, dimensions=None)
    sink.record_ids(0, ["a", "b", "c"])
    sink.record_ids(1, ["b", "c", "d"])  # overlapping: only "d" is new
    with pytest.raises(ValueError, match="out of order"):
        sink.record_ids(5, ["f"])
    with pytest.raises(InvalidArgumentTypeError) as info:
        sink.record_ids(4, ["e", 5])  # type: ignore[list-item]
    assert info.value.argument == "ids[5]"
    sink.close()
    lines = ids_path(path).read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == ["a", "b", "c", "d"]


def test_fewer_ids_than_inputs_is_refused_naming_ids(tmp_path: Path) -> None:
    sink = open_sink(tmp_path / "v.parquet", resume=False, dimensions=None)
    sink.record_ids(0, ["a"])
    sink.write(0, rows_for(0, 2, 2))
    with pytest.raises(InvalidArgumentValueError, match="1 ids were given for 2 inputs") as info:
        sink.finish(2)
    sink.close()
    assert info.value.argument == "ids"


# -- resume ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_resume_keeps_the_rows_already_written(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"v.{fmt}"
    reference = tmp_path / f"reference.{fmt}"
    ids = [f"id{i}" for i in range(10)]
    write_all(reference, [(0, 10)], 10, 3, ids=ids)

    first = open_sink(path, resume=False, dimensions=None)
    first.record_ids(0, ids[:6])
    first.write(6, rows_for(6, 10, 3))
    first.write(0, rows_for(0, 3, 3))
    first.close()  # interrupted

    second = open_sink(path, resume=True, dimensions=None)
    assert second.dimensions == 3  # read back from the partial file
    second.record_ids(0, ids)  # the driver reads the inputs again
    second.write(3, rows_for(3, 6, 3))  # only the missing rows
    second.finish(10)
    assert path.read_bytes() == reference.read_bytes()


def test_resume_of_a_file_killed_before_its_first_row(tmp_path: Path) -> None:
    path = tmp_path / "v.npy"
    open_sink(path, resume=False, dimensions=None).close()
    assert path.read_bytes() == b""
    sink = open_sink(path, resume=True, dimensions=None)
    sink.write(0, rows_for(0, 2, 2))
    sink.finish(2)
    np.testing.assert_array_equal(np.load(path), rows_for(0, 2, 2))


def test_resume_refuses_a_foreign_npy(tmp_path: Path) -> None:
    path = tmp_path / "v.npy"
    np.save(path, np.zeros((3, 3), dtype=np.float64))
    with pytest.raises(InvalidArgumentValueError, match="not a partial output") as info:
        open_sink(path, resume=True, dimensions=None)
    assert info.value.argument == "output"


def test_resume_with_other_dimensions_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "v.npy"
    sink = open_sink(path, resume=False, dimensions=None)
    sink.write(0, rows_for(0, 1, 4))
    sink.close()
    with pytest.raises(InvalidArgumentValueError, match="holds 4-dimensional") as info:
        open_sink(path, resume=True, dimensions=8)
    assert info.value.argument == "dimensions"


def test_resume_drops_an_id_line_cut_by_a_kill(tmp_path: Path) -> None:
    path = tmp_path / "v.jsonl"
    ids_path(path).write_bytes(b'"a"\n"b"\n"c')  # the kill landed inside "c"'s line
    sink = open_sink(path, resume=True, dimensions=None)
    sink.record_ids(0, ["a", "b", "c", "d"])
    sink.write(0, rows_for(0, 4, 1))
    sink.finish(4)
    _, ids, _ = read_back(path)
    assert ids == ["a", "b", "c", "d"]


# -- memory -----------------------------------------------------------------------------------


def _peak_while_writing(path: Path, rows: int, width: int, batch: int) -> int:
    tracemalloc.start()
    try:
        sink = open_sink(path, resume=False, dimensions=None)
        sink.record_ids(0, [])
        block = rows_for(0, batch, width)
        for start in range(0, rows, batch):
            sink.write(start, block[: min(batch, rows - start)])
            sink.record_ids(start, [str(i) for i in range(start, min(rows, start + batch))])
        sink.finish(rows)
        del sink
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("fmt", FORMATS)
def test_memory_does_not_grow_with_the_corpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    # Conversion chunks of 64 KiB (the default is 16 MiB) so that the corpus dwarfs them.
    monkeypatch.setattr(sinks, "CONVERT_CHUNK_BYTES", 64 * 1024)
    pool = pa.proxy_memory_pool(pa.default_memory_pool())
    previous_pool = pa.default_memory_pool()
    pa.set_memory_pool(pool)
    try:
        # JSONL makes a Python float per number while converting: slow under tracemalloc
        rows = 100_000 if fmt == "jsonl" else 200_000
        small = _peak_while_writing(tmp_path / f"small.{fmt}", rows // 10, 16, 500)
        large = _peak_while_writing(tmp_path / f"large.{fmt}", rows, 16, 500)
    finally:
        pa.set_memory_pool(previous_pool)
    corpus_bytes = rows * 16 * 4  # 6.4 or 12.8 MB of rows
    assert large < corpus_bytes / 2, (small, large)
    # Ten times the rows, the same peak (give or take allocator noise).
    assert large < small * 1.1 + 100_000, (small, large)
    if fmt == "parquet":
        assert pool.max_memory() < corpus_bytes / 4, pool.max_memory()
    assert os.path.getsize(tmp_path / f"large.{fmt}") > 0


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("resume_dimensions", [None, 4])
def test_resume_when_the_width_was_given_up_front(
    tmp_path: Path, fmt: str, resume_dimensions: int | None
) -> None:
    # The width known at open (the dimensions argument, or a checkpoint's) must still put the
    # header in the file: otherwise a killed run leaves a partial file resume refuses.
    path = tmp_path / f"v.{fmt}"
    first = open_sink(path, resume=False, dimensions=4)
    first.write(3, rows_for(3, 5, 4))
    first.close()
    second = open_sink(path, resume=True, dimensions=resume_dimensions)
    assert second.dimensions == 4
    second.write(0, rows_for(0, 3, 4))
    second.finish(5)
    _, _, matrix = read_back(path)
    np.testing.assert_array_equal(matrix, rows_for(0, 5, 4))
