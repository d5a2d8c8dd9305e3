"""Writing files so that a crash never leaves half of one (DESIGN: "nothing half-writes a file")."""

from __future__ import annotations

import contextlib
import os
import pathlib
import uuid
from collections.abc import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[pathlib.Path]:
    """Yield a temporary path beside ``path``; when the block ends without an error, the
    file written there replaces ``path`` in one rename. Parent folders are created.

    Each call gets a temporary name of its own, so several writers of one ``path`` never
    write into each other's file: the last rename wins, and each version is whole.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
