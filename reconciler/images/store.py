"""The content-addressed store of verified images.

Layout under the cache directory::

    blobs/sha256/<hex>            the image bytes
    blobs/sha256/<hex>.minisig    its minisign signature, or <hex>.sigstore, its bundle
    meta/<hex>.json               the Verified record; written last, it is the commit point
    tmp/                          partial downloads (<hex>.part) and per-image lock files

Only images whose meta file exists are in the store, and only verified images get one.
Every file is written to a temporary name, fsynced and renamed, so a crash or a concurrent
writer never leaves a half-written file under a final name.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from reconciler.clock import Clock
from reconciler.errors import ImageError
from reconciler.images.files import atomic_write, publish
from reconciler.images.verify import Verified

__all__ = ["Capacity", "GcReport", "ImageStore", "StoredImage"]

_HEX = re.compile(r"^[0-9a-f]{64}$")
SIGNATURE_SUFFIXES = (".minisig", ".sigstore")


@dataclass(frozen=True, slots=True)
class StoredImage:
    """One verified image in the store."""

    verified: Verified
    path: Path
    signature: Path | None
    stored_at: str
    unreferenced_since: str | None = None


@dataclass(frozen=True, slots=True)
class Capacity:
    """Bytes used by images, bytes free on the file system, and bytes per channel."""

    used: int
    free: int
    per_channel: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GcReport:
    """What one garbage collection removed, marked and kept."""

    removed: list[str]
    marked: list[str]
    freed: int


class ImageStore:
    """Verified images kept by SHA-256 under ``root``."""

    def __init__(self, root: Path, clock: Clock) -> None:
        self.root = root
        self._clock = clock
        self.blobs = root / "blobs" / "sha256"
        self.meta = root / "meta"
        self.tmp = root / "tmp"
        for d in (self.blobs, self.meta, self.tmp):
            d.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _check(sha256: str) -> str:
        if not _HEX.match(sha256):
            raise ValueError(f"not a SHA-256 digest: {sha256!r}")
        return sha256

    def blob_path(self, sha256: str) -> Path:
        """Where the bytes of an image live (whether or not they are there yet)."""
        return self.blobs / self._check(sha256)

    def partial_path(self, sha256: str) -> Path:
        """Where an unfinished download of an image is kept, so it can resume."""
        return self.tmp / f"{self._check(sha256)}.part"

    def get(self, sha256: str) -> StoredImage | None:
        """The stored image with that digest, or ``None``."""
        try:
            data = json.loads((self.meta / f"{self._check(sha256)}.json").read_text("utf-8"))
        except (FileNotFoundError, ValueError):
            return None
        blob = self.blob_path(sha256)
        if not blob.is_file():
            return None
        sig = next(
            (p for s in SIGNATURE_SUFFIXES if (p := blob.with_name(blob.name + s)).is_file()),
            None,
        )
        return StoredImage(
            Verified(**data["verified"]),
            blob,
            sig,
            data["stored_at"],
            data.get("unreferenced_since"),
        )

    def list(self) -> list[StoredImage]:
        """Every stored image, sorted by channel, file name and digest."""
        found = [self.get(p.stem) for p in self.meta.glob("*.json") if _HEX.match(p.stem)]
        images = [i for i in found if i is not None]
        return sorted(images, key=lambda i: (i.verified.channel, i.verified.file_name, i.path.name))

    def add(
        self, verified: Verified, temp_file: Path, signature: tuple[str, Path] | None
    ) -> StoredImage:
        """Publish a verified download: bytes, then signature, then meta (the commit point).

        ``signature`` is ``(suffix, temp path)`` with suffix ``.minisig`` or ``.sigstore``.
        Adding an image that another writer published first is harmless: same bytes.
        """
        blob = self.blob_path(verified.sha256)
        try:
            publish(temp_file, blob)
            if signature is not None:
                suffix, sig_temp = signature
                if suffix not in SIGNATURE_SUFFIXES:
                    raise ValueError(f"unknown signature suffix {suffix!r}")
                publish(sig_temp, blob.with_name(blob.name + suffix))
        except OSError as e:
            raise ImageError(f"cannot store {verified.file_name}: {e.strerror or e}") from e
        self._write_meta(verified, self._clock.now().isoformat(), None)
        stored = self.get(verified.sha256)
        assert stored is not None
        return stored

    def record(self, verified: Verified) -> None:
        """Rewrite the record of a stored image (a digest kept from now on)."""
        stored = self.get(verified.sha256)
        if stored is None:
            raise ImageError(f"image {verified.sha256} is not in the store")
        self._write_meta(verified, stored.stored_at, stored.unreferenced_since)

    def _write_meta(self, verified: Verified, stored_at: str, unreferenced: str | None) -> None:
        record = {
            "verified": asdict(verified),
            "stored_at": stored_at,
            "unreferenced_since": unreferenced,
        }
        text = json.dumps(record, indent=2, sort_keys=True) + "\n"
        atomic_write(self.meta / f"{verified.sha256}.json", text.encode())

    def remove(self, sha256: str) -> int:
        """Delete an image (meta first, so it leaves the store at once); returns bytes freed."""
        blob = self.blob_path(sha256)
        freed = 0
        with contextlib.suppress(FileNotFoundError):
            (self.meta / f"{sha256}.json").unlink()
        for path in (blob, *(blob.with_name(blob.name + s) for s in SIGNATURE_SUFFIXES)):
            with contextlib.suppress(FileNotFoundError):
                freed += path.stat().st_size
                path.unlink()
        return freed

    def gc(self, referenced: Iterable[str], retention: timedelta) -> GcReport:
        """Remove images no Image document references once ``retention`` has passed.

        The first collection that finds an image unreferenced marks it with the time; a
        later one removes it when the mark is older than ``retention``. A reference found
        again clears the mark.
        """
        keep = set(referenced)
        now = self._clock.now()
        removed: list[str] = []
        marked: list[str] = []
        freed = 0
        for image in self.list():
            sha = image.verified.sha256
            if sha in keep:
                if image.unreferenced_since is not None:
                    self._write_meta(image.verified, image.stored_at, None)
                continue
            if image.unreferenced_since is None:
                self._write_meta(image.verified, image.stored_at, now.isoformat())
                marked.append(sha)
            elif now - datetime.fromisoformat(image.unreferenced_since) >= retention:
                freed += self.remove(sha)
                removed.append(sha)
        # Bytes without meta that nothing references: a crash between publish and commit.
        # A referenced one may be a fetch about to write its meta, so it stays.
        for blob in list(self.blobs.iterdir()):
            sha = blob.name.split(".", 1)[0]
            if _HEX.match(sha) and sha not in keep and not (self.meta / f"{sha}.json").exists():
                freed += self.remove(sha)
        return GcReport(sorted(removed), sorted(marked), freed)

    def capacity(self) -> Capacity:
        """Bytes used by stored images, free on the file system, and used per channel."""
        per_channel: dict[str, int] = {}
        for image in self.list():
            ch = image.verified.channel
            per_channel[ch] = per_channel.get(ch, 0) + image.verified.size
        used = sum(per_channel.values())
        return Capacity(used, shutil.disk_usage(self.root).free, dict(sorted(per_channel.items())))
