"""One run at a time per output: an exclusive advisory lock on ``<output>.lock``.

Two runs writing the same output at once would interleave their rows, their checkpoint saves
and their final header rewrite (seen: a checkpoint rename that failed and an output left with
shape (0, 384)). So a run into a file first takes an exclusive lock on ``<output>.lock`` and
holds it until it ends, finished, failed or interrupted; a second run, in another process or in
the same one (a sync and an async client), is refused before anything is read or sent:
``InvalidArgumentValueError`` naming ``output``, "in use by another run".

The lock is the operating system's (``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows),
held by an open file descriptor: a process that dies, ``kill -9`` included, drops it with its
descriptors, so a crashed run never leaves a stale lock behind (the empty file may stay; it
means nothing without the lock). ``flock`` locks belong to the open file, not to the process,
so two opens in one process exclude each other too (POSIX ``fcntl``/``lockf`` locks would not).
It is advisory: it keeps aligneai runs apart, not other programs writing the same file; and on a
network file system it is only as good as the file system's locking.

Two names for one output take one lock: the driver passes `resolve_output` of the name it was
given, which follows a symlink to the file itself, so ``link.npy -> data/v.npy`` locks (and
checkpoints) ``data/v.npy``. Other spellings need nothing: ``out.npy``, ``./out.npy``,
``a/../out.npy`` and the absolute path name ``<folder>/out.npy.lock`` in the folder the operating
system resolves for the output itself, so they open the same lock file. (Hard links, two names
of one file in two folders, are not recognised.)
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from aligneai.core.errors import InvalidArgumentValueError

__all__ = ["OutputLock", "lock_path", "resolve_output"]

# A lock file removed by the run that held it, between our open and our lock: try again a few
# times (each try is a couple of system calls; more than a handful means something odd).
_ATTEMPTS = 8


def lock_path(output: Path) -> Path:
    """The lock file of ``output``: ``<output>.lock``."""
    return output.with_name(output.name + ".lock")


def resolve_output(output: Path) -> Path:
    """The name a run uses for ``output``'s files: the file itself when ``output`` is a symlink.

    A symlink (or a chain of them) is resolved to the real path, so that its lock, checkpoint
    and sidecars sit next to the file it points to, where a run given the file's own name
    looks for them; and so that a ``.parquet``/``.jsonl`` output renamed into place at the end
    replaces the file, not the symlink. Any other name is returned as given: its folder is the
    output's folder (see the module docstring).
    """
    if os.path.islink(output):
        return Path(os.path.realpath(output))
    return output


def _try_lock(fd: int) -> bool:
    """Lock ``fd`` exclusively without waiting; False when another open file holds it."""
    if sys.platform == "win32":  # pragma: no cover - Windows only
        import msvcrt

        try:
            # One byte at offset 0 (the position of a fresh descriptor) stands for the file.
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(fd: int) -> None:
    if sys.platform == "win32":  # pragma: no cover - Windows only
        import msvcrt

        with contextlib.suppress(OSError):
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    import fcntl

    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)


def _same_file(fd: int, path: Path) -> bool:
    # The holder before us may have removed the lock file after we opened it: our lock would
    # then be on a file nobody else can find. Lock only the file the path names now.
    if sys.platform == "win32":  # pragma: no cover - an open file cannot be removed on Windows
        return True
    try:
        named = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


class OutputLock:
    """The exclusive lock of one output file, held from `acquire` to `release`.

    Attributes:
        path: the lock file, ``<output>.lock``.
        output: the output it guards.
    """

    def __init__(self, output: Path) -> None:
        self.output = output
        self.path = lock_path(output)
        self._fd: int | None = None

    @classmethod
    def acquire(cls, output: Path) -> OutputLock:
        """Take the lock of ``output`` without waiting.

        Raises `InvalidArgumentValueError` naming ``output`` ("in use by another run") when
        another run holds it, and ``OSError`` when the lock file cannot be created.
        """
        lock = cls(output)
        for _ in range(_ATTEMPTS):
            fd = os.open(lock.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if not _try_lock(fd):
                    raise InvalidArgumentValueError(
                        "output",
                        f"{str(output)!r} is in use by another run (it holds {lock.path.name}); "
                        "wait for it to end, or write to another file",
                    )
                if _same_file(fd, lock.path):
                    lock._fd = fd
                    return lock
                _unlock(fd)
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
        raise OSError(f"could not lock {str(lock.path)!r}: it keeps being replaced")

    @property
    def held(self) -> bool:
        """True between `acquire` and `release`."""
        return self._fd is not None

    def release(self) -> None:
        """Remove the lock file and drop the lock. Idempotent.

        The file is removed while still locked, so a run waiting to lock it sees that it is gone
        (`acquire` checks) and creates a fresh one.
        """
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if sys.platform != "win32":
                with contextlib.suppress(OSError):
                    self.path.unlink()
            _unlock(fd)
        finally:
            os.close(fd)
        if sys.platform == "win32":  # pragma: no cover - removable only once closed on Windows
            with contextlib.suppress(OSError):
                self.path.unlink()
