"""The last verified revision, kept in the state dir so a restart verifies as a running
daemon does: a head that does not descend from it is refused (a force-push back to an
older signed commit included)."""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["VerifiedRevision"]

_SHA = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")


class VerifiedRevision:
    """One file holding one commit id, replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> str | None:
        """The revision last written, or None (first start, or an unreadable file)."""
        try:
            text = self.path.read_text(encoding="ascii").strip()
        except (FileNotFoundError, UnicodeDecodeError):
            return None
        return text if _SHA.fullmatch(text) else None

    def write(self, sha: str) -> None:
        """Replace the revision: write a temporary file, fsync it, rename it over."""
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(f"{sha}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        dirfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)
