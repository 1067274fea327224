"""The simulated ISO format.

A simulated ISO is a text header followed by padding up to the declared size::

    GITFIRM-SIMULATED-ISO/1
    version: 1.4.3
    arch: amd64
    flavor: generic
    <blank line>
    <padding: repeated bytes derived from the version>

It is deterministic, so the same (version, arch, flavor, size) always has the same SHA-256.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MAGIC", "IsoError", "IsoHeader", "build_iso", "iso_file_name", "parse_iso", "write_iso"]

MAGIC = b"GITFIRM-SIMULATED-ISO/1\n"
_CHUNK = 1 << 20


class IsoError(ValueError):
    """The bytes are not a simulated ISO."""


@dataclass(frozen=True, slots=True)
class IsoHeader:
    """What the installer reads from an ISO: its version and platform."""

    version: str
    arch: str
    flavor: str


def iso_file_name(version: str, arch: str = "amd64", flavor: str = "generic") -> str:
    """The conventional file name, as VyOS publishes it."""
    return f"vyos-{version}-{flavor}-{arch}.iso"


def _header(version: str, arch: str, flavor: str) -> bytes:
    return MAGIC + f"version: {version}\narch: {arch}\nflavor: {flavor}\n\n".encode()


def _checked_header(version: str, arch: str, flavor: str, size: int) -> bytes:
    header = _header(version, arch, flavor)
    if size < len(header):
        raise IsoError(f"size {size} is smaller than the {len(header)}-byte header")
    return header


def _padding_block(version: str) -> bytes:
    seed = hashlib.sha256(version.encode()).digest()
    return (seed * (_CHUNK // len(seed) + 1))[:_CHUNK]


def build_iso(
    version: str, arch: str = "amd64", flavor: str = "generic", size: int = 4096
) -> bytes:
    """Return a whole simulated ISO of exactly ``size`` bytes (for small sizes)."""
    header = _checked_header(version, arch, flavor, size)
    block = _padding_block(version)
    body = bytearray(header)
    while len(body) < size:
        body += block[: size - len(body)]
    return bytes(body)


def write_iso(
    path: Path, version: str, arch: str = "amd64", flavor: str = "generic", size: int = 4096
) -> None:
    """Write a simulated ISO of ``size`` bytes to ``path``, streaming (fit for GiB sizes)."""
    header = _checked_header(version, arch, flavor, size)
    block = _padding_block(version)
    with path.open("wb") as out:
        out.write(header)
        left = size - len(header)
        while left > 0:
            n = min(left, len(block))
            out.write(block[:n])
            left -= n


def parse_iso(head: bytes) -> IsoHeader:
    """Read the header from the first bytes of a file (512 bytes are enough)."""
    if not head.startswith(MAGIC):
        raise IsoError("not a simulated VyOS ISO (bad magic)")
    fields: dict[str, str] = {}
    for line in head[len(MAGIC) :].split(b"\n"):
        if not line:
            break
        key, _, value = line.decode("utf-8", "replace").partition(": ")
        fields[key] = value
    try:
        return IsoHeader(fields["version"], fields["arch"], fields["flavor"])
    except KeyError as e:
        raise IsoError(f"simulated ISO header lacks {e.args[0]!r}") from None
