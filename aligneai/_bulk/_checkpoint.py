"""The resume checkpoint of a bulk run: a small JSON sidecar next to the output.

``<output>.checkpoint.json`` holds a format version, the run's fingerprint (model, dimensions,
output format, ...), the learned dimensions and the ranges of inputs whose rows are in the output,
each with a digest of its texts. It is saved atomically (a temporary file in the same folder,
fsync, ``os.replace``) and only after the rows it records were written, so a process killed at
any instant leaves an output and a checkpoint that agree: every recorded row is in the output;
rows written but not yet recorded are simply sent again on resume.

Contiguous ranges are merged as they are recorded, so the file stays small (about one range per
batch still in flight) however long the corpus: saving it after every batch costs the same at
row 100 and at row 100 million. Merging works because digests add up: the digest of a range is
the sum, modulo 2**128, of one blake2b hash per text and absolute index (`texts_digest`), so the
digest of two neighbouring ranges is the sum of theirs, and a resumed run can check a merged range
batch by batch, whatever batches the interrupted run used.

Life cycle, as the driver uses it::

    checkpoint = Checkpoint.open(path, fingerprint, resume=resume)   # before open_sink
    ...
    sink.write(start, rows)                 # rows first
    checkpoint.record(start, stop, digest)  # then the checkpoint
    checkpoint.save()
    ...
    sink.finish(count)
    record = checkpoint.done_record(count, failed, size)
    record.save()                           # what resume=True checks on a finished output
    checkpoint.complete()                   # removes the checkpoint, then the spill files

A finished output keeps a small record of the run that wrote it, ``<output>.done.json``
(`DoneRecord`: the fingerprint, the row count and width, the server's model, the failed inputs, a
digest of the texts and the output's size), so that ``resume=True`` on a finished output can check
that it was written from the same inputs and settings and return at once, sending nothing
(`open_finished`).
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from aligneai.core.batching import SKIP_CHUNK, validate_text
from aligneai.core.errors import InvalidArgumentValueError

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "DONE_FORMAT",
    "BulkResumeError",
    "Checkpoint",
    "DoneRecord",
    "checkpoint_path",
    "combine_digests",
    "converting_path",
    "done_path",
    "ids_path",
    "open_finished",
    "spill_path",
    "texts_digest",
]

#: The ``format`` field of every checkpoint file (tells it apart from other JSON).
CHECKPOINT_FORMAT = "aligneai-bulk-checkpoint"
#: The version of the checkpoint layout; a file with another version is not resumed.
CHECKPOINT_VERSION = 1
#: The ``format`` field of the record a finished output keeps (`DoneRecord`).
DONE_FORMAT = "aligneai-bulk-done"

_DIGEST_BITS = 128
_DIGEST_MOD = 1 << _DIGEST_BITS
_DIGEST_HEX = _DIGEST_BITS // 4


class BulkResumeError(InvalidArgumentValueError):
    """``resume=True`` cannot continue this output: the run or its inputs differ.

    Raised before anything is sent when the checkpoint's fingerprint (model, dimensions, output
    format, ...) differs from this run's, and while reading the inputs when a range the
    interrupted run wrote now holds other texts. The message names what differs; the
    ``argument`` is ``"resume"``.
    """

    def __init__(self, message: str) -> None:
        super().__init__("resume", message)


# -- file names ----------------------------------------------------------------------------------


def checkpoint_path(output: Path) -> Path:
    """The checkpoint sidecar of ``output``: ``<output>.checkpoint.json``."""
    return output.with_name(output.name + ".checkpoint.json")


def done_path(output: Path) -> Path:
    """The record of the run that finished ``output``: ``<output>.done.json`` (`DoneRecord`)."""
    return output.with_name(output.name + ".done.json")


def spill_path(output: Path) -> Path:
    """The row spill of a ``.parquet``/``.jsonl`` output: ``<output>.partial.npy``."""
    return output.with_name(output.name + ".partial.npy")


def ids_path(output: Path) -> Path:
    """The ids sidecar of ``output``, one JSON string per line in input order.

    ``<output>.ids.jsonl`` for ``.npy`` (it stays: line ``i`` is the id of row ``i``);
    ``<output>.partial.ids.jsonl`` for ``.parquet``/``.jsonl`` (merged into the output at the end,
    then removed).
    """
    if output.suffix.lower() == ".npy":
        return output.with_name(output.name + ".ids.jsonl")
    return output.with_name(output.name + ".partial.ids.jsonl")


def converting_path(output: Path) -> Path:
    """Where a ``.parquet``/``.jsonl`` output is written before it is renamed into place."""
    return output.with_name(output.name + ".partial.tmp")


def _temporary_files(output: Path) -> list[Path]:
    files = [
        spill_path(output),
        converting_path(output),
        checkpoint_path(output).with_name(checkpoint_path(output).name + ".tmp"),
    ]
    if output.suffix.lower() != ".npy":
        files.append(ids_path(output))
    return files


# -- digests ----------------------------------------------------------------------------------


def texts_digest(start: int, texts: Iterable[str]) -> str:
    """The digest of ``texts`` read at input indexes ``start, start + 1, ...`` (pure).

    The sum modulo 2**128 of a 16-byte blake2b hash of each (index, text) pair, as 32 hex
    digits. Position-aware (moving a text changes it) and additive:
    ``combine_digests(texts_digest(a, xs), texts_digest(a + len(xs), ys)) ==
    texts_digest(a, xs + ys)``, which is what lets the checkpoint merge ranges.
    It detects changed inputs; it is not meant to resist someone forging a collision.
    """
    total = 0
    for offset, text in enumerate(texts):
        h = hashlib.blake2b(digest_size=16)
        h.update((start + offset).to_bytes(8, "little"))
        # surrogatepass: a str from a lone-surrogate source must still hash, and differently
        h.update(text.encode("utf-8", "surrogatepass"))
        total += int.from_bytes(h.digest(), "little")
    return _format_digest(total)


def combine_digests(first: str, second: str) -> str:
    """The digest of two disjoint ranges together (pure): the sum of theirs modulo 2**128."""
    return _format_digest(int(first, 16) + int(second, 16))


def _format_digest(value: int) -> str:
    return format(value % _DIGEST_MOD, f"0{_DIGEST_HEX}x")


def _valid_digest(value: object) -> bool:
    if not isinstance(value, str) or len(value) != _DIGEST_HEX:
        return False
    try:
        int(value, 16)
    except ValueError:
        return False
    return True


# -- the checkpoint ---------------------------------------------------------------------------


def _normalise(fingerprint: Mapping[str, Any]) -> dict[str, Any]:
    # Compare what the file holds with what the file will hold: tuples become lists, etc.
    try:
        normal: dict[str, Any] = json.loads(json.dumps(dict(fingerprint), sort_keys=True))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"a bulk fingerprint must be JSON-serialisable: {exc}") from None
    return normal


class Checkpoint:
    """The checkpoint of one output file (see the module docstring for the life cycle).

    Attributes:
        path: the checkpoint file, ``<output>.checkpoint.json``.
        output: the output file it belongs to.
        fingerprint: what must match for a run to continue this output.
        dimensions: the embedding width, once learned (the driver sets it before saving).
        server_model: the model the server's answers named, once known (the driver sets it
            before saving); a resumed run refuses answers from another model.
        resumed: True when this checkpoint was read from an interrupted run.
    """

    path: Path
    output: Path
    fingerprint: dict[str, Any]
    dimensions: int | None
    server_model: str | None
    resumed: bool

    def __init__(
        self,
        output: Path,
        fingerprint: Mapping[str, Any],
        *,
        dimensions: int | None = None,
        done: Iterable[tuple[int, int, str]] = (),
        resumed: bool = False,
        server_model: str | None = None,
    ) -> None:
        self.output = output
        self.path = checkpoint_path(output)
        self.fingerprint = _normalise(fingerprint)
        self.dimensions = dimensions
        self.server_model = server_model
        self.resumed = resumed
        self._starts: list[int] = []
        self._runs: list[tuple[int, int, str]] = []
        for start, stop, digest in sorted(done):
            self.record(start, stop, digest)
        # What the interrupted run wrote, as it was: `verify` checks the inputs against these
        # (the ranges recorded from now on merge into `_runs`, not into this).
        self._prior = list(self._runs)
        self._prior_starts = list(self._starts)
        # Resume verification: prior range start -> (rows seen so far, their digest)
        self._seen: dict[int, tuple[int, str]] = {}

    # -- opening ----------------------------------------------------------------------------

    @classmethod
    def open(
        cls, output: str | os.PathLike[str], fingerprint: Mapping[str, Any], *, resume: bool
    ) -> Checkpoint:
        """Start a checkpoint for ``output``, or read the one an interrupted run left.

        Call it before `open_sink`: with ``resume=False`` it refuses an existing output or
        checkpoint (``InvalidArgumentValueError`` naming ``output``) and saves a fresh checkpoint
        at once, so an output without a checkpoint next to it is always a finished one. With
        ``resume=True`` it reads the checkpoint and raises `BulkResumeError` when its fingerprint
        differs (the message names the field) or when the output is already complete (see
        `open_finished`, which the driver calls first); with no checkpoint and no output it
        starts afresh. A `DoneRecord` left next to the output is removed whenever a checkpoint
        is returned: the output is about to change.
        """
        path = Path(output)
        fingerprint = _normalise(fingerprint)
        cp_path = checkpoint_path(path)
        if not resume:
            if cp_path.exists():
                raise InvalidArgumentValueError(
                    "output",
                    f"{str(path)!r} has the checkpoint of an interrupted run ({cp_path.name}); "
                    "pass resume=True to continue it or remove it",
                )
            if path.exists():
                raise InvalidArgumentValueError(
                    "output",
                    f"{str(path)!r} exists; pass resume=True to continue it or remove it",
                )
        elif cp_path.exists():
            checkpoint = cls._read(path)
            checkpoint._check_fingerprint(fingerprint)
            # The output is about to change: a record of an earlier finish no longer holds.
            _remove(done_path(path))
            return checkpoint
        elif path.exists():
            raise BulkResumeError(
                f"{str(path)!r} is complete (it has no checkpoint): there is nothing to resume; "
                "remove it to embed again"
            )
        checkpoint = cls(path, fingerprint)
        checkpoint.save()
        # Left by an output that was removed since: it must not vouch for the new one.
        _remove(done_path(path))
        return checkpoint

    @classmethod
    def _read(cls, output: Path) -> Checkpoint:
        cp_path = checkpoint_path(output)
        try:
            data = json.loads(cp_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BulkResumeError(f"cannot read the checkpoint {str(cp_path)!r}: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
            raise BulkResumeError(f"{str(cp_path)!r} is not a bulk embedding checkpoint")
        if data.get("version") != CHECKPOINT_VERSION:
            raise BulkResumeError(
                f"{str(cp_path)!r} has checkpoint version {data.get('version')!r}; this version "
                f"of aligneai reads version {CHECKPOINT_VERSION} only"
            )
        fingerprint = data.get("fingerprint")
        dimensions = data.get("dimensions")
        done = data.get("done")
        # Optional: checkpoints written before it was recorded have none.
        server_model = data.get("server_model")
        ok = (
            isinstance(fingerprint, dict)
            and (server_model is None or (isinstance(server_model, str) and server_model))
            and (dimensions is None or (type(dimensions) is int and dimensions > 0))
            and isinstance(done, list)
            and all(
                isinstance(item, list)
                and len(item) == 3
                and type(item[0]) is int
                and type(item[1]) is int
                and 0 <= item[0] < item[1]
                and _valid_digest(item[2])
                for item in done
            )
        )
        if not ok:
            raise BulkResumeError(f"the checkpoint {str(cp_path)!r} is damaged")
        assert isinstance(fingerprint, dict) and isinstance(done, list)
        try:
            return cls(
                output,
                fingerprint,
                dimensions=dimensions,
                done=[(a, b, d) for a, b, d in done],
                resumed=True,
                server_model=server_model,
            )
        except ValueError:  # overlapping ranges
            raise BulkResumeError(f"the checkpoint {str(cp_path)!r} is damaged") from None

    def _check_fingerprint(self, fingerprint: dict[str, Any]) -> None:
        _check_fingerprint(self.output, self.fingerprint, fingerprint, "interrupted", self.path)

    # -- recording ----------------------------------------------------------------------------

    @property
    def done(self) -> list[tuple[int, int, str]]:
        """The ranges ``[start, stop)`` whose rows are in the output, sorted, with digests.

        Neighbouring ranges are merged (their digests combined), so these are not the batches.
        """
        return list(self._runs)

    def done_record(self, count: int, failed: Iterable[int], size: int) -> DoneRecord:
        """The `DoneRecord` of the finished output: call it after ``sink.finish``.

        ``count`` inputs, ``failed`` those given up on (the only rows not recorded here), and
        ``size`` the finished output's size in bytes. Its digest is the sum of the recorded
        ranges' (the texts of every row written).
        """
        failed = sorted(set(failed))
        if self.done_count + len(failed) != count or any(
            self._run_at(index) is not None for index in failed
        ):
            raise ValueError(
                f"{self.done_count} rows recorded and {len(failed)} failed, for {count} inputs"
            )
        digest = _format_digest(sum(int(digest, 16) for _, _, digest in self._runs))
        return DoneRecord(
            self.output,
            self.fingerprint,
            count=count,
            dimensions=self.dimensions,
            server_model=self.server_model,
            failed=failed,
            digest=digest,
            size=size,
        )

    @property
    def done_count(self) -> int:
        """How many rows the output holds according to the checkpoint."""
        return sum(stop - start for start, stop, _ in self._runs)

    def record(self, start: int, stop: int, digest: str) -> None:
        """Note that rows ``[start, stop)`` are written; call it AFTER ``sink.write``.

        ``digest`` is ``texts_digest(start, texts)`` of those rows' texts. A range overlapping
        one already recorded is a bug in the caller (``ValueError``).
        """
        if not (0 <= start < stop) or not _valid_digest(digest):
            raise ValueError(f"bad checkpoint range [{start}, {stop}) / digest {digest!r}")
        i = bisect.bisect_right(self._starts, start)
        prev = self._runs[i - 1] if i > 0 else None
        nxt = self._runs[i] if i < len(self._runs) else None
        if (prev is not None and prev[1] > start) or (nxt is not None and nxt[0] < stop):
            raise ValueError(f"rows [{start}, {stop}) are already recorded in the checkpoint")
        if prev is not None and prev[1] == start:
            start, digest = prev[0], combine_digests(prev[2], digest)
            i -= 1
            del self._runs[i], self._starts[i]
        if nxt is not None and nxt[0] == stop:
            stop, digest = nxt[1], combine_digests(digest, nxt[2])
            del self._runs[i], self._starts[i]
        self._runs.insert(i, (start, stop, digest))
        self._starts.insert(i, start)

    def _run_at(self, index: int) -> tuple[int, int, str] | None:
        i = bisect.bisect_right(self._starts, index) - 1
        if i >= 0 and self._runs[i][1] > index:
            return self._runs[i]
        return None

    def covers(self, start: int, stop: int) -> bool:
        """True when rows ``[start, stop)`` are all done, False when none is.

        A range that is partly done raises ``ValueError``: cut batches at `next_boundary`.
        """
        run = self._run_at(start)
        if run is not None:
            if run[1] < stop:
                raise ValueError(f"rows [{start}, {stop}) are only partly done")
            return True
        boundary = self.next_boundary(start)
        if boundary is not None and boundary < stop:
            raise ValueError(f"rows [{start}, {stop}) are only partly done")
        return False

    def next_boundary(self, index: int) -> int | None:
        """The first index after ``index`` where done turns to not done or back (None: none)."""
        run = self._run_at(index)
        if run is not None:
            return run[1]
        i = bisect.bisect_right(self._starts, index)
        return self._runs[i][0] if i < len(self._runs) else None

    def verify(self, start: int, stop: int, digest: str) -> None:
        """Check the texts of done rows ``[start, stop)`` against the interrupted run's.

        Feed every range the interrupted run had done (`covers` was True when the run resumed)
        as the inputs are read again, in any split and order; when such a range has been fed
        completely its digest is compared, and `BulkResumeError` says which rows changed. Call
        `verify_end` once the inputs are exhausted.
        """
        i = bisect.bisect_right(self._prior_starts, start) - 1
        run = self._prior[i] if i >= 0 else None
        if run is None or not (run[0] <= start < stop <= run[1]):
            raise ValueError(f"rows [{start}, {stop}) are not within a range done before")
        seen, total = self._seen.get(run[0], (0, _format_digest(0)))
        seen += stop - start
        total = combine_digests(total, digest)
        self._seen[run[0]] = (seen, total)
        if seen == run[1] - run[0] and total != run[2]:
            raise BulkResumeError(
                f"the inputs differ from the interrupted run's: texts {run[0]} to {run[1] - 1} "
                f"changed since {self.output.name} was written; resume with the same inputs, or "
                f"remove {self.output.name} and {self.path.name} to start over"
            )

    def verify_end(self, count: int) -> None:
        """The inputs ended after ``count`` texts: every range done before must be verified."""
        for start, stop, _ in self._prior:
            if stop > count:
                raise BulkResumeError(
                    f"the inputs end after {count} texts, but the interrupted run wrote rows up "
                    f"to {stop - 1} of {self.output.name}: resume with the same inputs"
                )
            seen, _total = self._seen.get(start, (0, ""))
            if seen != stop - start:
                raise ValueError(f"done rows [{start}, {stop}) were not verified")

    # -- saving -------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The file's content."""
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "fingerprint": self.fingerprint,
            "dimensions": self.dimensions,
            "server_model": self.server_model,
            "done": [list(run) for run in self._runs],
        }

    def save(self) -> None:
        """Write the checkpoint atomically: a temporary file, fsync, then ``os.replace``.

        A reader (or a resumed run after ``kill -9``) sees the previous checkpoint or this one,
        never a mix.
        """
        _write_atomic(self.path, self.to_json())

    def complete(self) -> None:
        """The output is final (``sink.finish`` returned): remove the checkpoint, then the spill.

        In that order: if the process dies in between, the output is complete and has no
        checkpoint, which is what a finished output looks like; a leftover spill is removed by
        the next ``complete`` or by hand.
        """
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        _fsync_folder(self.path.parent)
        for path in _temporary_files(self.output):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _check_fingerprint(
    output: Path, old: Mapping[str, Any], new: Mapping[str, Any], which: str, sidecar: Path
) -> None:
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            verb = "continue" if which == "interrupted" else "resume"
            raise BulkResumeError(
                f"cannot {verb} {str(output)!r}: {key} differs (the {which} run used "
                f"{old.get(key)!r}, this run {new.get(key)!r}); run with the same settings, or "
                f"remove {output.name} and {sidecar.name} to start over"
            )


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _write_atomic(path: Path, content: Mapping[str, Any]) -> None:
    """Write ``content`` as JSON to ``path`` atomically: a temporary file, fsync, ``os.replace``."""
    data = json.dumps(content, separators=(",", ":")).encode("utf-8")
    # One fixed name: a save killed half-way leaves it behind, the next save overwrites it
    # and `Checkpoint.complete` removes it.
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_folder(path.parent)


# -- the record of a finished output ------------------------------------------------------------


def _ranges(indexes: Iterable[int]) -> list[list[int]]:
    """Sorted indexes as ``[start, stop)`` ranges of consecutive ones (pure)."""
    out: list[list[int]] = []
    for index in sorted(set(indexes)):
        if out and out[-1][1] == index:
            out[-1][1] = index + 1
        else:
            out.append([index, index + 1])
    return out


class DoneRecord:
    """What ``resume=True`` checks on a finished output: ``<output>.done.json``.

    Written by a run that finished its output, just before its checkpoint is removed, so a
    resumed call on that output can tell, without sending anything, that it would only write
    the same rows again: same fingerprint (`Checkpoint.fingerprint`), same inputs (a digest of
    the texts of every row written, and the count), the output untouched since (its size).
    The texts of failed inputs (``on_error="skip"``) are not in the digest: their rows hold
    nothing to vouch for.

    Attributes:
        path: the record file, ``<output>.done.json``.
        output: the finished output.
        fingerprint: the settings of the run that wrote it.
        count: the number of inputs.
        dimensions: the embedding width (None when no row was written).
        server_model: the model the server named (None when no request was answered).
        failed: the indexes of the inputs given up on, ascending.
        digest: `texts_digest` of the texts of every row written, summed.
        size: the output's size in bytes when it was finished.
    """

    def __init__(
        self,
        output: Path,
        fingerprint: Mapping[str, Any],
        *,
        count: int,
        dimensions: int | None,
        server_model: str | None,
        failed: Iterable[int],
        digest: str,
        size: int,
    ) -> None:
        self.output = output
        self.path = done_path(output)
        self.fingerprint = _normalise(fingerprint)
        self.count = count
        self.dimensions = dimensions
        self.server_model = server_model
        self.failed = tuple(sorted(set(failed)))
        self.digest = digest
        self.size = size

    def to_json(self) -> dict[str, Any]:
        """The file's content (failed inputs as ``[start, stop)`` ranges)."""
        return {
            "format": DONE_FORMAT,
            "version": CHECKPOINT_VERSION,
            "fingerprint": self.fingerprint,
            "count": self.count,
            "dimensions": self.dimensions,
            "server_model": self.server_model,
            "failed": _ranges(self.failed),
            "digest": self.digest,
            "size": self.size,
        }

    def save(self) -> None:
        """Write the record atomically (as `Checkpoint.save` does)."""
        _write_atomic(self.path, self.to_json())

    @classmethod
    def read(cls, output: Path) -> DoneRecord | None:
        """The record next to ``output``; None when there is none, `BulkResumeError` if damaged."""
        path = done_path(output)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise BulkResumeError(f"cannot read {str(path)!r}: {exc}") from None
        damaged = BulkResumeError(
            f"{str(path)!r} is damaged: remove {output.name} and {path.name} to embed again"
        )
        if not isinstance(data, dict) or data.get("format") != DONE_FORMAT:
            raise damaged
        if data.get("version") != CHECKPOINT_VERSION:
            raise BulkResumeError(
                f"{str(path)!r} has version {data.get('version')!r}; this version of aligneai "
                f"reads version {CHECKPOINT_VERSION} only"
            )
        fingerprint, count, dimensions = (
            data.get("fingerprint"),
            data.get("count"),
            data.get("dimensions"),
        )
        server_model, failed, size = data.get("server_model"), data.get("failed"), data.get("size")
        ok = (
            isinstance(fingerprint, dict)
            and type(count) is int
            and count >= 0
            and (dimensions is None or (type(dimensions) is int and dimensions > 0))
            and (server_model is None or (isinstance(server_model, str) and server_model))
            and isinstance(failed, list)
            and all(
                isinstance(item, list)
                and len(item) == 2
                and type(item[0]) is int
                and type(item[1]) is int
                and 0 <= item[0] < item[1] <= count
                for item in failed
            )
            and _valid_digest(data.get("digest"))
            and type(size) is int
            and size >= 0
        )
        if not ok:
            raise damaged
        assert isinstance(fingerprint, dict) and isinstance(failed, list)
        return cls(
            output,
            fingerprint,
            count=count,  # type: ignore[arg-type] # checked above
            dimensions=dimensions,
            server_model=server_model,
            failed=[i for start, stop in failed for i in range(start, stop)],
            digest=data["digest"],
            size=size,  # type: ignore[arg-type]
        )

    def check(self, fingerprint: Mapping[str, Any]) -> None:
        """`BulkResumeError` unless this run's settings are the finished run's, output unchanged.

        ``fingerprint`` must equal the record's, and the output must still be the size it was
        finished at.
        """
        _check_fingerprint(
            self.output, self.fingerprint, _normalise(fingerprint), "finished", self.path
        )
        try:
            size = self.output.stat().st_size
        except OSError as exc:
            raise BulkResumeError(f"cannot read {str(self.output)!r}: {exc}") from None
        if size != self.size:
            raise BulkResumeError(
                f"{str(self.output)!r} changed since its run finished it ({size} bytes, "
                f"{self.size} then): remove {self.output.name} and {self.path.name} to embed "
                "again"
            )

    def verify(self, inputs: Iterable[object]) -> None:
        """Read ``inputs`` through; `BulkResumeError` unless they are the finished run's texts.

        Each text is checked as a run checks it (`validate_text`), so a bad one is named as
        ``inputs[i]``; more or fewer texts than the output's rows, or other texts in its rows,
        raise `BulkResumeError`. Costs one hash per text, 4,096 texts held at a time.
        """
        name = self.output.name
        again = f"resume with the same inputs, or remove {name} and {self.path.name} to start over"
        failed = set(self.failed)
        total = 0
        chunk: list[str] = []
        chunk_start = 0
        count = 0
        for index, text in enumerate(inputs):
            if index >= self.count:
                raise BulkResumeError(
                    f"the inputs have more than the {self.count} texts {name} was embedded "
                    f"from; {again}"
                )
            text = validate_text(text, index)
            count = index + 1
            if index in failed or len(chunk) >= SKIP_CHUNK:
                if chunk:
                    total += int(texts_digest(chunk_start, chunk), 16)
                chunk = []
                if index in failed:
                    continue
            if not chunk:
                chunk_start = index
            chunk.append(text)
        if chunk:
            total += int(texts_digest(chunk_start, chunk), 16)
        if count < self.count:
            raise BulkResumeError(
                f"the inputs end after {count} texts, but {name} holds the rows of "
                f"{self.count}; {again}"
            )
        if _format_digest(total) != self.digest:
            raise BulkResumeError(f"the inputs differ from those {name} was embedded from; {again}")


def open_finished(output: Path, fingerprint: Mapping[str, Any]) -> DoneRecord | None:
    """With ``resume=True``: the `DoneRecord` of ``output`` when it is finished, else None.

    None when there is a checkpoint (an interrupted run: `Checkpoint.open` continues it) or no
    output (it starts afresh). A finished output (no checkpoint) must have its record, with this
    run's fingerprint, and still be the size it was finished at; otherwise `BulkResumeError`
    says why. The inputs are checked next, with `DoneRecord.verify`.
    """
    if checkpoint_path(output).exists() or not output.exists():
        return None
    record = DoneRecord.read(output)
    if record is None:
        raise BulkResumeError(
            f"{str(output)!r} is complete (it has no checkpoint), but has no record of the run "
            f"that wrote it ({done_path(output).name}) to check this run against: there is "
            "nothing to resume; remove it to embed again"
        )
    record.check(fingerprint)
    return record


def _fsync_folder(folder: Path) -> None:
    # Make the rename itself durable (POSIX); Windows cannot open a folder, and does not need to.
    if os.name != "posix":  # pragma: no cover - depends on the platform
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - an unreadable folder: the rename still happened
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on folders
        pass
    finally:
        os.close(fd)
