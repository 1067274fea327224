"""SHA-256 and BLAKE2b-512 of one byte stream, computed in one pass.

SHA-256 is what Image documents declare; BLAKE2b-512 is what a prehashed minisign signature
signs. ``hashlib`` releases the GIL on large buffers, so :func:`hash_file` reads each chunk
once and hashes it with both algorithms in two threads while the next chunk is read.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CHUNK_SIZE", "Digests", "StreamHasher", "hash_file"]

CHUNK_SIZE = 8 << 20
"""Large reads keep the per-chunk overhead (syscalls, thread hand-offs) negligible."""


@dataclass(frozen=True, slots=True)
class Digests:
    """The hashes and length of one stream."""

    sha256: str
    blake2b: bytes
    size: int


class StreamHasher:
    """Incremental one-pass hashing, for bytes that arrive in pieces (a download)."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self._b2 = hashlib.blake2b(digest_size=64)
        self.size = 0

    def update(self, chunk: bytes | memoryview) -> None:
        """Add the next piece of the stream."""
        self._sha.update(chunk)
        self._b2.update(chunk)
        self.size += len(chunk)

    def digests(self) -> Digests:
        """The hashes of everything added so far."""
        return Digests(self._sha.hexdigest(), self._b2.digest(), self.size)


def hash_file(path: Path, *, chunk_size: int = CHUNK_SIZE) -> Digests:
    """Hash a whole file in one read pass; both hashes run in parallel with the reads."""
    sha = hashlib.sha256()
    b2 = hashlib.blake2b(digest_size=64)
    buffers = [bytearray(chunk_size), bytearray(chunk_size)]
    size = 0
    pending: list[Future[Any]] = []
    with ThreadPoolExecutor(max_workers=2) as pool, path.open("rb", buffering=0) as f:
        turn = 0
        while True:
            buf = buffers[turn]
            n = f.readinto(buf)
            # The buffer read into now was hashed two turns ago; the other one may still be
            # in use, so wait only for that work before handing this one out.
            for fut in pending:
                fut.result()
            if not n:
                break
            view = memoryview(buf)[:n]
            pending = [pool.submit(sha.update, view), pool.submit(b2.update, view)]
            size += n
            turn ^= 1
    return Digests(sha.hexdigest(), b2.digest(), size)
