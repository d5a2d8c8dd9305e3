"""One process at a time in a folder: an operating-system lock on a file inside it.

A work directory (:mod:`jaxdl.run.workdir`) and a checkpoint directory
(:mod:`jaxdl.checkpoint`) are each written by one process; a second one that asks for
the same folder is refused at once instead of mixing its files into the first one's.
The system drops the lock when the process ends, however it ends, so a killed run
leaves no stale lock behind, and the lock file on its own means nothing.
"""

from __future__ import annotations

import os
import pathlib
import sys

LOCK = ".jaxdl.lock"
"""The file, inside a folder, that a process holds the folder's lock on."""


class FolderLock:
    """An exclusive, non-blocking lock on ``folder/.jaxdl.lock``, held until
    :meth:`release` or the end of the process.

    ``error`` is the exception type raised when the folder is in use (its message names
    the process that holds it) or when the lock file is a symbolic link; ``advice`` ends
    that message with what the user can do. Two locks on one folder conflict even
    within one process.
    """

    def __init__(self, folder: str | os.PathLike, error: type[Exception], advice: str):
        self.path = pathlib.Path(folder) / LOCK
        try:  # never through a link planted in its place: the link's target would be overwritten
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError:
            if self.path.is_symlink():
                raise error(f"{self.path} is a symbolic link; jaxdl does not follow it. Remove it, "
                            f"or {advice}") from None
            raise
        self.file = os.fdopen(fd, "r+")
        try:
            _lock(self.file)
        except OSError:
            self.file.seek(0)
            holder = self.file.read().strip() or "unknown"
            self.file.close()
            who = "in this process" if holder == str(os.getpid()) else f"process {holder}"
            raise error(f"{self.path.parent} is in use by another jaxdl run ({who}); wait for it to "
                        f"finish, or {advice}") from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"{os.getpid()}\n")
        self.file.flush()

    @property
    def held(self) -> bool:
        return not self.file.closed

    def release(self) -> None:
        """Give the folder back (closing the file releases the lock)."""
        if not self.file.closed:
            self.file.close()


def _lock(file) -> None:
    if sys.platform == "win32":
        import msvcrt

        msvcrt.locking(file.fileno(), msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
