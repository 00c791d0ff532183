"""One writer per output file: an exclusive ``flock`` on a lock file beside the output.

Two ``clipvil features`` runs writing the same file would append to, rebuild and rename
the same ``.partial`` file under each other. :class:`WriterLock` lets the first one write
and makes the second refuse at once with one line. The lock is ``fcntl.flock`` on an open
file descriptor, so the kernel releases it when its process ends however it ends: a lock
file left behind by a killed run never blocks the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from envs.errors import DataError, OutputError
from envs.fileio import make_output_dir

#: What a writer appends to its output path for its lock file.
LOCK_SUFFIX = ".lock"


class WriterLock:
    """Hold ``path + ".lock"`` exclusively until :meth:`release` (which deletes it).

    Raises :class:`DataError` naming ``path`` (and the holder's process id) when another
    process, or another writer in this one, holds it.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.lock_path = Path(f"{self.path}{LOCK_SUFFIX}")
        self._fd: int | None = None
        make_output_dir(self.lock_path.parent)
        while self._fd is None:
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as err:
                problem = f"cannot create the lock ({err.strerror})"
                raise OutputError(self.lock_path, problem) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_pid(fd)
                os.close(fd)
                by = f" (process {holder})" if holder else ""
                raise DataError(
                    self.path,
                    f"is being written by another run{by}: wait for it to finish "
                    f"(its lock is {self.lock_path.name})",
                ) from None
            except BaseException:
                os.close(fd)
                raise
            if _same_file(fd, self.lock_path):
                self._fd = fd
            else:  # the holder released and deleted it between our open and flock: retry
                os.close(fd)
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Delete the lock file, then unlock (idempotent)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.lock_path)
        os.close(fd)  # closing the last descriptor releases the flock


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (not deleted or replaced)."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def _read_pid(fd: int) -> int | None:
    """The process id a holder wrote into its lock file (None if not there yet)."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
