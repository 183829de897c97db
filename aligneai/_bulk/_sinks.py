"""Where the rows of a bulk run go: memory, a ``.npy`` file, a ``.parquet`` or a ``.jsonl`` file.

Every sink takes rows at their input index (``write(start, matrix)``), in whatever order the
requests complete, so the result never depends on completion order. The count is unknown until
the inputs run out (they may be a generator), and so is the width until the first answer.

- In memory: a float32 buffer that doubles when a row lands past its end, trimmed at `finish`.
- ``.npy``: a fixed-size (128-byte) header is reserved, rows go at ``128 + index * row_bytes``
  and the header is rewritten with the final shape at `finish`; the file is then an ordinary
  ``.npy`` (``numpy.load``, with or without ``mmap_mode``). Memory stays flat: rows go straight
  to the file and the OS pages them out.
- ``.parquet`` / ``.jsonl``: rows go to an index-addressed spill (``<output>.partial.npy``, the
  same layout), converted at `finish` in chunks of at most `CONVERT_CHUNK_BYTES`, so memory does
  not grow with the corpus either. Parquet columns: ``index`` int64, ``id`` string (when ids were
  recorded), ``embedding`` fixed-size list of float32 (vector stores such as LanceDB need the
  fixed size). JSONL: ``{"index": i, "id": ..., "embedding": [...]}``, one line per row, in index
  order.

Ids (``record_ids``) are appended to a sidecar in input order (one JSON string per line): for
``.npy`` it stays next to the output (``<output>.ids.jsonl``), for parquet/jsonl it is merged in.
Rows of inputs that failed (``on_error="skip"``; ``finish(count, failed=...)``) are NaN in a
matrix and absent from parquet/jsonl.

A sink is used from one thread (the driver's loop). Resuming (``resume=True``) reopens the
partial file and keeps the rows already written; the checkpoint says which ones those are.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import io
import json
import os
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from aligneai.core._json import dumps
from aligneai.core.errors import (
    InvalidArgumentTypeError,
    InvalidArgumentValueError,
    MissingDependencyError,
)

from ._checkpoint import converting_path, ids_path, spill_path

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "CONVERT_CHUNK_BYTES",
    "NPY_HEADER_BYTES",
    "OUTPUT_SUFFIXES",
    "FinishedSink",
    "InMemorySink",
    "JsonlSink",
    "NpySink",
    "ParquetSink",
    "Sink",
    "open_sink",
    "validate_output",
]

#: The output file suffixes `open_sink` knows (case-insensitive).
OUTPUT_SUFFIXES = (".npy", ".parquet", ".jsonl")
#: The reserved ``.npy`` header: magic, version 1.0, length, the header dict padded with spaces.
#: 128 bytes hold any 2-D float32 shape and keep the rows 64-byte aligned, as numpy likes.
NPY_HEADER_BYTES = 128
#: At most this many bytes of rows are held in memory while a spill is converted.
CONVERT_CHUNK_BYTES = 16 * 1024 * 1024

_NPY_MAGIC = b"\x93NUMPY\x01\x00"
_INITIAL_ROWS = 1024


def _numpy() -> Any:
    try:
        import numpy
    except ImportError:
        raise MissingDependencyError(
            'bulk embedding needs numpy: pip install "aligneai[numpy]"'
        ) from None
    return numpy


def _pyarrow() -> tuple[Any, Any]:
    try:
        # import_module: pyarrow ships no type information, and mypy need not see it
        pyarrow = importlib.import_module("pyarrow")
        parquet = importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise MissingDependencyError(
            'a .parquet output needs pyarrow: pip install "aligneai[parquet]"'
        ) from None
    return pyarrow, parquet


class Sink(Protocol):
    """Where a bulk run's rows go. Used from one thread; see the module docstring."""

    @property
    def path(self) -> Path | None:
        """The output file, or None in memory."""

    @property
    def dimensions(self) -> int | None:
        """The row width, once known (given, read from a resumed file, or the first write)."""

    @property
    def matrix(self) -> np.ndarray[Any, Any] | None:
        """After `finish`: the rows (an array; for ``.npy`` a read-only memmap); else None."""

    def write(self, start: int, matrix: np.ndarray[Any, Any]) -> None:
        """Store rows ``[start, start + len(matrix))``, a ``(k, d)`` float32 matrix, any order."""

    def record_ids(self, start: int, ids: Sequence[str]) -> None:
        """Store the ids of inputs ``[start, start + len(ids))``; in input order, no gaps.

        Ids already stored (a resumed run reads its inputs again) are skipped.
        """

    def sync(self) -> None:
        """Push written rows to the disk (fsync); before a checkpoint save, for power-loss safety.

        A killed process loses nothing written without it: the rows are in the OS already.
        """

    def finish(self, count: int, failed: Sequence[int] = ()) -> None:
        """All ``count`` rows are written (but ``failed``): finalise the output."""

    def close(self) -> None:
        """Release the files; an unfinished output stays resumable. Idempotent."""


# -- validation -------------------------------------------------------------------------------


def validate_output(output: object) -> Path | None:
    """Check an ``output`` argument before anything is sent; return it as a Path (or None).

    ``InvalidArgumentTypeError`` for a non-path, ``InvalidArgumentValueError`` naming
    ``output`` for another suffix, a folder, or a parent folder that is missing or not writable;
    ``MissingDependencyError`` for ``.parquet`` without pyarrow.
    """
    if output is None:
        return None
    if not isinstance(output, (str, os.PathLike)):
        raise InvalidArgumentTypeError(
            "output", f"expected None or a path (str or os.PathLike), got {type(output).__name__}"
        )
    name = os.fspath(output)
    if not isinstance(name, str):
        raise InvalidArgumentTypeError("output", "expected a str path, got bytes")
    path = Path(name)
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise InvalidArgumentValueError(
            "output", f"must end with .npy, .parquet or .jsonl, got {str(path)!r}"
        )
    if path.is_dir():
        raise InvalidArgumentValueError("output", f"{str(path)!r} is a folder, not a file")
    parent = path.parent
    if not parent.is_dir():
        raise InvalidArgumentValueError(
            "output", f"the folder of {str(path)!r} does not exist: {str(parent)!r}"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidArgumentValueError(
            "output", f"the folder of {str(path)!r} is not writable: {str(parent)!r}"
        )
    if suffix == ".parquet":
        _pyarrow()
    return path


def open_sink(output: object, *, resume: bool, dimensions: int | None) -> Sink:
    """The sink for an ``output`` argument (validated with `validate_output`).

    ``dimensions`` is the width when known in advance (the ``dimensions`` argument, or the one a
    checkpoint learned); a write of another width is refused. With ``resume=True`` the partial
    file (the ``.npy`` or the spill) is reopened and its rows kept; call `Checkpoint.open`
    first, which refuses an output that exists when ``resume=False``.
    """
    _numpy()
    path = validate_output(output)
    if path is None:
        if resume:
            raise InvalidArgumentValueError(
                "resume", "needs an output file (output=...) to continue into"
            )
        return InMemorySink(dimensions)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return NpySink(path, resume=resume, dimensions=dimensions)
    if suffix == ".parquet":
        return ParquetSink(path, resume=resume, dimensions=dimensions)
    return JsonlSink(path, resume=resume, dimensions=dimensions)


# -- shared checks ----------------------------------------------------------------------------


def _check_rows(
    start: int, matrix: Any, dimensions: int | None, where: str
) -> tuple[np.ndarray[Any, Any], int]:
    np_ = _numpy()
    rows = np_.ascontiguousarray(matrix, dtype=np_.float32)
    if rows.ndim != 2 or start < 0:
        raise ValueError(f"expected a (k, d) matrix at a non-negative index, got {rows.shape}")
    width = int(rows.shape[1])
    if width == 0:
        raise ValueError("embeddings of 0 dimensions")
    if dimensions is not None and width != dimensions:
        raise InvalidArgumentValueError(
            "dimensions",
            f"the server returned {width}-dimensional embeddings but {where} holds {dimensions}",
        )
    return rows, width


def _check_failed(count: int, failed: Sequence[int]) -> list[int]:
    out = sorted(set(failed))
    if out and (out[0] < 0 or out[-1] >= count):
        raise ValueError(f"failed indexes outside [0, {count})")
    return out


# -- in memory ------------------------------------------------------------------------------


class InMemorySink:
    """Rows in a growing float32 buffer (capacity doubles), trimmed to ``count`` at `finish`."""

    def __init__(self, dimensions: int | None = None) -> None:
        self._dimensions = dimensions
        self._buffer: np.ndarray[Any, Any] | None = None
        self._high = 0  # one past the highest row written
        self._ids: list[str] = []
        self._matrix: np.ndarray[Any, Any] | None = None

    @property
    def path(self) -> Path | None:
        """Always None: the rows stay in memory."""
        return None

    @property
    def dimensions(self) -> int | None:
        """The row width, once known."""
        return self._dimensions

    @property
    def matrix(self) -> np.ndarray[Any, Any] | None:
        """The ``(count, d)`` float32 array after `finish`."""
        return self._matrix

    @property
    def ids(self) -> tuple[str, ...]:
        """The ids recorded so far, in input order."""
        return tuple(self._ids)

    def write(self, start: int, matrix: np.ndarray[Any, Any]) -> None:
        """Copy the rows into the buffer at ``start``, growing it (doubling) when needed."""
        rows, width = _check_rows(start, matrix, self._dimensions, "the result")
        self._dimensions = width
        stop = start + len(rows)
        np_ = _numpy()
        if self._buffer is None or stop > len(self._buffer):
            held = 0 if self._buffer is None else len(self._buffer)
            capacity = max(_INITIAL_ROWS, stop, 2 * held)
            # zeros: rows never written (failed inputs) must not hold garbage until finish
            grown = np_.zeros((capacity, width), dtype=np_.float32)
            if self._buffer is not None:
                grown[: self._high] = self._buffer[: self._high]
            self._buffer = grown
        self._buffer[start:stop] = rows
        self._high = max(self._high, stop)

    def record_ids(self, start: int, ids: Sequence[str]) -> None:
        """Keep the ids in memory (see `ids`)."""
        _append_ids(len(self._ids), start, ids, self._ids.extend)

    def sync(self) -> None:
        """Nothing to do in memory."""

    def finish(self, count: int, failed: Sequence[int] = ()) -> None:
        """Trim the buffer to ``count`` rows (a copy frees the spare room); failed rows NaN."""
        if count < self._high:
            raise ValueError(f"finish({count}) but rows up to {self._high - 1} were written")
        np_ = _numpy()
        width = self._dimensions or 0
        matrix = np_.zeros((count, width), dtype=np_.float32)
        if self._buffer is not None:
            matrix[: self._high] = self._buffer[: self._high]
        bad = _check_failed(count, failed)
        if bad:
            matrix[bad] = np_.nan
        self._buffer = None
        self._matrix = matrix

    def close(self) -> None:
        """Drop the buffer if unfinished."""
        self._buffer = None


def _append_ids(
    have: int, start: int, ids: Sequence[str], append: Any, *, where: str = "ids"
) -> int:
    """Append the part of ``ids`` past the ``have`` already stored; return how many were added."""
    if start > have:
        raise ValueError(f"ids recorded out of order: {start} after {have}")
    for offset, value in enumerate(ids):
        if not isinstance(value, str):
            raise InvalidArgumentTypeError(
                f"{where}[{start + offset}]", f"expected a str id, got {type(value).__name__}"
            )
    skip = have - start
    if skip >= len(ids):
        return 0
    new = list(ids[skip:])
    append(new)
    return len(new)


# -- files ----------------------------------------------------------------------------------


def _write_all(handle: io.FileIO, data: Any) -> None:
    view = memoryview(data).cast("B")
    while view:
        written = handle.write(view)
        if not written:  # pragma: no cover - a blocking file writes something or raises
            raise OSError(f"could not write {handle.name!r}")
        view = view[written:]


def _npy_header(count: int, width: int) -> bytes:
    body = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({count}, {width}), }}"
    room = NPY_HEADER_BYTES - len(_NPY_MAGIC) - 2 - 1
    if len(body) > room:  # pragma: no cover - a shape beyond 10**40 rows
        raise ValueError("shape too large for the reserved .npy header")
    text = (body + " " * (room - len(body)) + "\n").encode("latin1")
    return _NPY_MAGIC + (len(text)).to_bytes(2, "little") + text


def _read_npy_header(head: bytes, path: Path) -> tuple[int, int]:
    """(count, width) from a header this module wrote; anything else is not resumable."""
    bad = InvalidArgumentValueError(
        "output", f"{str(path)!r} is not a partial output written by create_many"
    )
    if len(head) != NPY_HEADER_BYTES or not head.startswith(_NPY_MAGIC):
        raise bad
    if int.from_bytes(head[8:10], "little") != NPY_HEADER_BYTES - 10:
        raise bad
    try:
        header = ast.literal_eval(head[10:].decode("latin1").strip())
    except (ValueError, SyntaxError):
        raise bad from None
    shape = header.get("shape") if isinstance(header, dict) else None
    if (
        not isinstance(header, dict)
        or header.get("descr") != "<f4"
        or header.get("fortran_order") is not False
        or not isinstance(shape, tuple)
        or len(shape) != 2
        or not all(type(n) is int and n >= 0 for n in shape)
        or shape[1] == 0
    ):
        raise bad
    return shape[0], shape[1]


class _RowFile:
    """A float32 ``.npy`` file written row by row at row offsets, count unknown until the end."""

    def __init__(self, path: Path, *, resume: bool, dimensions: int | None, what: str) -> None:
        self.path = path
        self.dimensions = dimensions
        self._what = what
        self.high = 0
        # Whether the file holds a header: the first write puts one there, whether the width
        # was learned from it or known at open (without it, resume could not read the file).
        self._headed = False
        reopen = resume and path.exists()
        # Unbuffered: every write is one system call, in the OS when it returns (kill -9 safe)
        handle = io.FileIO(path, "r+" if reopen else "w+")
        self._file: io.FileIO | None = handle
        try:
            if reopen:
                self._reopen(handle, dimensions)
        except BaseException:
            self.close()
            raise

    def _reopen(self, handle: io.FileIO, dimensions: int | None) -> None:
        head = handle.read(NPY_HEADER_BYTES) or b""
        if len(head) < NPY_HEADER_BYTES:
            handle.truncate(0)  # killed before the first row: nothing to keep
            return
        _count, width = _read_npy_header(head, self.path)
        if dimensions is not None and width != dimensions:
            raise InvalidArgumentValueError(
                "dimensions",
                f"{str(self.path)!r} holds {width}-dimensional rows, not {dimensions}",
            )
        self.dimensions = width
        self._headed = True
        size = os.fstat(handle.fileno()).st_size
        self.high = max(0, (size - NPY_HEADER_BYTES) // (4 * width))

    def _handle(self) -> io.FileIO:
        if self._file is None:
            raise ValueError(f"{str(self.path)!r} is closed")
        return self._file

    def _pwrite(self, offset: int, data: Any) -> None:
        handle = self._handle()
        handle.seek(offset)
        _write_all(handle, data)

    def write(self, start: int, matrix: Any) -> None:
        rows, width = _check_rows(start, matrix, self.dimensions, self._what)
        self.dimensions = width
        if not self._headed:
            self._pwrite(0, _npy_header(0, width))
            self._headed = True
        self._pwrite(NPY_HEADER_BYTES + start * 4 * width, rows)
        self.high = max(self.high, start + len(rows))

    def sync(self) -> None:
        if self._file is not None:
            os.fsync(self._file.fileno())

    def finish(self, count: int, failed: Sequence[int]) -> None:
        """Size the file to ``count`` rows, NaN the failed ones, write the final header."""
        bad = _check_failed(count, failed)
        width = self.dimensions or 0
        handle = self._handle()
        if self.high > count:
            raise ValueError(f"finish({count}) but rows up to {self.high - 1} were written")
        if width == 0:
            # No row ever arrived (no inputs, or all of them failed) and no width was given.
            handle.truncate(NPY_HEADER_BYTES)
            self._pwrite(0, _npy_header(count, 0))
        else:
            # Extends the file with zeros (a sparse hole) up to the last row.
            handle.truncate(NPY_HEADER_BYTES + count * 4 * width)
            if bad:
                np_ = _numpy()
                nan_row = np_.full(width, np_.nan, dtype=np_.float32)
                for index in bad:
                    self._pwrite(NPY_HEADER_BYTES + index * 4 * width, nan_row)
            self._pwrite(0, _npy_header(count, width))
        handle.flush()
        os.fsync(handle.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class _IdsFile:
    """The ids sidecar: one JSON string per line, appended in input order."""

    def __init__(self, path: Path, *, resume: bool) -> None:
        self.path = path
        self.count = 0
        self._file: io.FileIO | None = None
        if resume and path.exists():
            self._file = io.FileIO(path, "r+")
            complete_bytes = 0
            with open(path, "rb") as reader:
                for line in reader:
                    if not line.endswith(b"\n"):
                        break  # a line cut by a kill: dropped, it is recorded again
                    self.count += 1
                    complete_bytes += len(line)
            self._file.truncate(complete_bytes)
            self._file.seek(complete_bytes)

    def record(self, start: int, ids: Sequence[str]) -> None:
        def append(new: list[str]) -> None:
            if self._file is None:
                self._file = io.FileIO(self.path, "w+")
            data = "".join(json.dumps(value) + "\n" for value in new).encode("utf-8")
            _write_all(self._file, data)

        self.count += _append_ids(self.count, start, ids, append)

    def sync(self) -> None:
        if self._file is not None:
            os.fsync(self._file.fileno())

    def check(self, count: int) -> None:
        if self.count < count:
            raise InvalidArgumentValueError(
                "ids", f"{self.count} ids were given for {count} inputs; give one id per input"
            )

    def read(self) -> Generator[str, None, None]:
        with open(self.path, encoding="utf-8") as reader:
            for line in reader:
                yield json.loads(line)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    @property
    def recorded(self) -> bool:
        return self._file is not None or self.path.exists()


class NpySink:
    """Rows written in place into a ``.npy`` file; see the module docstring."""

    def __init__(self, path: Path, *, resume: bool, dimensions: int | None) -> None:
        self._path = path
        self._rows = _RowFile(path, resume=resume, dimensions=dimensions, what=str(path))
        try:
            self._ids = _IdsFile(ids_path(path), resume=resume)
        except BaseException:
            self._rows.close()
            raise
        self._matrix: np.ndarray[Any, Any] | None = None

    @property
    def path(self) -> Path:
        """The output file."""
        return self._path

    @property
    def dimensions(self) -> int | None:
        """The row width, once known."""
        return self._rows.dimensions

    @property
    def matrix(self) -> np.ndarray[Any, Any] | None:
        """After `finish`: ``numpy.load(path, mmap_mode="r")`` of the output."""
        return self._matrix

    def write(self, start: int, matrix: np.ndarray[Any, Any]) -> None:
        """Write the rows at their offsets in the file."""
        self._rows.write(start, matrix)

    def record_ids(self, start: int, ids: Sequence[str]) -> None:
        """Append to ``<output>.ids.jsonl`` (kept after the run: line i is row i's id)."""
        self._ids.record(start, ids)

    def sync(self) -> None:
        """Push the output and the ids to the disk."""
        self._rows.sync()
        self._ids.sync()

    def finish(self, count: int, failed: Sequence[int] = ()) -> None:
        """Final size and header; the matrix becomes a read-only memmap of the file."""
        if self._ids.recorded:
            self._ids.check(count)
        self._ids.close()
        self._rows.finish(count, failed)
        self._rows.close()
        np_ = _numpy()
        if count and self._rows.dimensions:
            self._matrix = np_.load(self._path, mmap_mode="r")
        else:  # numpy cannot memory-map an empty array
            self._matrix = np_.load(self._path)

    def close(self) -> None:
        """Close the files; an unfinished output stays resumable."""
        self._rows.close()
        self._ids.close()


class FinishedSink:
    """An output finished by an earlier run (``resume=True`` found it complete): read only.

    Nothing is written: `write` and `record_ids` refuse, `finish` only opens the result
    (``.npy``: a read-only memmap, as `NpySink` gives; ``.parquet`` / ``.jsonl``: None).
    """

    def __init__(self, path: Path, *, dimensions: int | None) -> None:
        self._path = path
        self._dimensions = dimensions
        self._matrix: np.ndarray[Any, Any] | None = None

    @property
    def path(self) -> Path:
        """The output file."""
        return self._path

    @property
    def dimensions(self) -> int | None:
        """The row width the finished run recorded."""
        return self._dimensions

    @property
    def matrix(self) -> np.ndarray[Any, Any] | None:
        """After `finish`: the ``.npy`` as a read-only memmap; None for other formats."""
        return self._matrix

    def write(self, start: int, matrix: np.ndarray[Any, Any]) -> None:
        """Refused: the output is finished."""
        raise ValueError(f"{str(self._path)!r} is finished: no row is written again")

    def record_ids(self, start: int, ids: Sequence[str]) -> None:
        """Refused: the output is finished."""
        raise ValueError(f"{str(self._path)!r} is finished: no id is written again")

    def sync(self) -> None:
        """Nothing to push."""

    def finish(self, count: int, failed: Sequence[int] = ()) -> None:
        """Open the ``.npy`` for the result (its shape must be ``(count, dimensions)``)."""
        if self._path.suffix.lower() != ".npy":
            return
        np_ = _numpy()
        width = self._dimensions or 0
        try:
            if count and width:
                matrix = np_.load(self._path, mmap_mode="r")
            else:  # numpy cannot memory-map an empty array
                matrix = np_.load(self._path)
        except (OSError, ValueError) as exc:
            raise InvalidArgumentValueError(
                "output", f"cannot read {str(self._path)!r}: {exc}"
            ) from None
        if matrix.shape != (count, width) or matrix.dtype != np_.float32:
            raise InvalidArgumentValueError(
                "output",
                f"{str(self._path)!r} holds a {matrix.dtype} array of shape {matrix.shape}, "
                f"not the ({count}, {width}) float32 rows its run finished",
            )
        self._matrix = matrix

    def close(self) -> None:
        """Nothing is held open (the memmap keeps its own mapping)."""


class _SpillSink:
    """Rows spilled to ``<output>.partial.npy``, converted to the output format at `finish`."""

    def __init__(self, path: Path, *, resume: bool, dimensions: int | None) -> None:
        self._path = path
        self._rows = _RowFile(
            spill_path(path), resume=resume, dimensions=dimensions, what=str(path)
        )
        try:
            self._ids = _IdsFile(ids_path(path), resume=resume)
        except BaseException:
            self._rows.close()
            raise

    @property
    def path(self) -> Path:
        """The output file."""
        return self._path

    @property
    def dimensions(self) -> int | None:
        """The row width, once known."""
        return self._rows.dimensions

    @property
    def matrix(self) -> None:
        """Always None: read the file (it may be larger than memory)."""
        return None

    def write(self, start: int, matrix: np.ndarray[Any, Any]) -> None:
        """Write the rows at their offsets in the spill."""
        self._rows.write(start, matrix)

    def record_ids(self, start: int, ids: Sequence[str]) -> None:
        """Append to the ids sidecar, merged into the output at `finish`."""
        self._ids.record(start, ids)

    def sync(self) -> None:
        """Push the spill and the ids to the disk."""
        self._rows.sync()
        self._ids.sync()

    def finish(self, count: int, failed: Sequence[int] = ()) -> None:
        """Convert the spill, chunk by chunk, into a temporary file renamed over the output.

        The spill and the ids sidecar stay until `Checkpoint.complete` removes them.
        """
        with_ids = self._ids.recorded
        if with_ids:
            self._ids.check(count)
        self._ids.close()
        self._rows.finish(count, failed)
        self._rows.close()
        width = self._rows.dimensions or 0
        skip = set(_check_failed(count, failed))
        tmp = converting_path(self._path)
        # Plain reads, not a memmap: mapped pages would count in the RSS, up to the whole spill.
        with io.FileIO(spill_path(self._path), "r") as spill:
            ids = self._ids.read() if with_ids else None
            try:
                self._convert(tmp, self._chunks(spill, count, width, skip, ids), width, ids)
                os.replace(tmp, self._path)
            except BaseException:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                raise
            finally:
                if ids is not None:
                    ids.close()

    @staticmethod
    def _chunks(
        spill: io.FileIO, count: int, width: int, skip: set[int], ids: Iterator[str] | None
    ) -> Iterator[tuple[Any, Any, list[str] | None]]:
        """(indexes, rows, ids) of at most CONVERT_CHUNK_BYTES of rows, failed rows left out."""
        np_ = _numpy()
        step = max(1, CONVERT_CHUNK_BYTES // (4 * max(width, 1)))
        for begin in range(0, count, step):
            end = min(count, begin + step)
            index = np_.arange(begin, end, dtype=np_.int64)
            rows = np_.empty((end - begin, width), dtype="<f4")
            if width:
                spill.seek(NPY_HEADER_BYTES + begin * 4 * width)
                view = memoryview(rows).cast("B")
                while view:
                    got = spill.readinto(view)
                    if not got:
                        raise ValueError(f"{spill.name!r} ends before row {end}")
                    view = view[got:]
            chunk_ids = [next(ids) for _ in range(end - begin)] if ids is not None else None
            if skip:
                keep = [i - begin for i in range(begin, end) if i not in skip]
                index = index[keep]
                rows = rows[keep]
                if chunk_ids is not None:
                    chunk_ids = [chunk_ids[k] for k in keep]
            yield index, rows, chunk_ids

    def _convert(
        self,
        tmp: Path,
        chunks: Iterator[tuple[Any, Any, list[str] | None]],
        width: int,
        ids: object,
    ) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Close the files; an unfinished output stays resumable."""
        self._rows.close()
        self._ids.close()


class ParquetSink(_SpillSink):
    """``.parquet`` output: ``index`` int64, ``id`` string (with ids), ``embedding`` fixed list."""

    def __init__(self, path: Path, *, resume: bool, dimensions: int | None) -> None:
        _pyarrow()
        super().__init__(path, resume=resume, dimensions=dimensions)

    def _convert(
        self,
        tmp: Path,
        chunks: Iterator[tuple[Any, Any, list[str] | None]],
        width: int,
        ids: object,
    ) -> None:
        pa, pq = _pyarrow()
        fields = [pa.field("index", pa.int64(), nullable=False)]
        if ids is not None:
            fields.append(pa.field("id", pa.string()))
        fields.append(pa.field("embedding", pa.list_(pa.float32(), width)))
        schema = pa.schema(fields)
        with_ids = ids is not None
        # No dictionary encoding: embeddings and ids are (nearly) all distinct values.
        with pq.ParquetWriter(str(tmp), schema, use_dictionary=False) as writer:
            wrote = False
            for index, rows, chunk_ids in chunks:
                if not len(index):
                    continue
                flat = rows.reshape(-1)
                columns = [pa.array(index, type=pa.int64())]
                if with_ids:
                    columns.append(pa.array(chunk_ids, type=pa.string()))
                columns.append(pa.FixedSizeListArray.from_arrays(pa.array(flat), width))
                writer.write_table(pa.Table.from_arrays(columns, schema=schema))
                wrote = True
            if not wrote:
                writer.write_table(schema.empty_table())
        with open(tmp, "rb+") as written:
            os.fsync(written.fileno())  # durable before the rename makes it the output


class JsonlSink(_SpillSink):
    """``.jsonl`` output: ``{"index": i, "id": ..., "embedding": [...]}`` per line, in order."""

    def _convert(
        self,
        tmp: Path,
        chunks: Iterator[tuple[Any, Any, list[str] | None]],
        width: int,
        ids: object,
    ) -> None:
        with open(tmp, "wb", buffering=1 << 20) as out:
            for index, rows, chunk_ids in chunks:
                for k, i in enumerate(index.tolist()):
                    item: dict[str, Any] = {"index": i}
                    if chunk_ids is not None:
                        item["id"] = chunk_ids[k]
                    # One row of Python floats at a time: a chunk of them would be ~8x its size.
                    item["embedding"] = rows[k].tolist()
                    # orjson when installed (same values, ~25x faster on long rows)
                    out.write(dumps(item))
                    out.write(b"\n")
            out.flush()
            os.fsync(out.fileno())
