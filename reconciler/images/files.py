"""Durable file writes: temp file, fsync, rename, fsync of the directory."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from reconciler.errors import ImageError

__all__ = ["DISK_FULL_ERRNOS", "atomic_write", "fsync_dir", "publish"]

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
"""Write failures that mean "no room": a full disk, a quota, or a file-size limit."""


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable."""
    _fsync(directory)


def publish(temp: Path, final: Path) -> None:
    """fsync ``temp`` and rename it to ``final`` atomically; readers see all or nothing."""
    _fsync(temp)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(temp, final)
    fsync_dir(final.parent)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically; a full disk raises :class:`ImageError`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        publish(temp, path)
    except OSError as e:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        if e.errno in DISK_FULL_ERRNOS:
            raise ImageError(f"no space left writing {path.name}") from e
        raise
