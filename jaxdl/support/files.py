"""Writing files so that a crash never leaves half of one (DESIGN: "nothing half-writes a file")."""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import uuid
from collections.abc import Iterator

_TEMPORARY = re.compile(r"^\..+\.[0-9]+-[0-9a-f]{12}\.tmp$")


def is_temporary(path: str | os.PathLike) -> bool:
    """Whether ``path`` is named as :func:`atomic_path`'s temporary files are: what a write
    killed before its rename leaves behind."""
    return _TEMPORARY.match(pathlib.Path(path).name) is not None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[pathlib.Path]:
    """Yield a temporary path beside ``path``; when the block ends without an error, the
    file written there replaces ``path`` in one rename. Parent folders are created.

    Each call gets a temporary name of its own, so several writers of one ``path`` never
    write into each other's file: the last rename wins, and each version is whole.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}.tmp")  # see is_temporary
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
