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
    checkpoint.complete()                   # removes the checkpoint, then the spill files
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

from aligneai.core.errors import InvalidArgumentValueError

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "BulkResumeError",
    "Checkpoint",
    "checkpoint_path",
    "combine_digests",
    "converting_path",
    "ids_path",
    "spill_path",
    "texts_digest",
]

#: The ``format`` field of every checkpoint file (tells it apart from other JSON).
CHECKPOINT_FORMAT = "aligneai-bulk-checkpoint"
#: The version of the checkpoint layout; a file with another version is not resumed.
CHECKPOINT_VERSION = 1

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
        differs (the message names the field) or when the output is already complete; with no
        checkpoint and no output it starts afresh.
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
            return checkpoint
        elif path.exists():
            raise BulkResumeError(
                f"{str(path)!r} is complete (it has no checkpoint): there is nothing to resume; "
                "remove it to embed again"
            )
        checkpoint = cls(path, fingerprint)
        checkpoint.save()
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
        for key in sorted(set(self.fingerprint) | set(fingerprint)):
            old = self.fingerprint.get(key)
            new = fingerprint.get(key)
            if old != new:
                raise BulkResumeError(
                    f"cannot continue {str(self.output)!r}: {key} differs (the interrupted run "
                    f"used {old!r}, this run {new!r}); run with the same settings, or remove "
                    f"{self.output.name} and {self.path.name} to start over"
                )

    # -- recording ----------------------------------------------------------------------------

    @property
    def done(self) -> list[tuple[int, int, str]]:
        """The ranges ``[start, stop)`` whose rows are in the output, sorted, with digests.

        Neighbouring ranges are merged (their digests combined), so these are not the batches.
        """
        return list(self._runs)

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
        data = json.dumps(self.to_json(), separators=(",", ":")).encode("utf-8")
        # One fixed name: a save killed half-way leaves it behind, the next save overwrites it
        # and `complete` removes it.
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        _fsync_folder(self.path.parent)

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
