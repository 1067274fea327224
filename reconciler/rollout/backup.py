"""Config backups, encrypted at rest with AES-GCM.

Each backup is one file ``<root>/<device>/<revision>-<n>.cfg.gcm`` holding a format tag, a
random 96-bit nonce and the ciphertext; its modification time is when it was taken (from
the injected clock). The associated data binds it to its device and revision, so a file
copied to another name fails to decrypt. The key is 32 bytes, given as bytes or as base64
text (the daemon's own ``GITFIRM_BACKUP_KEY``, or a key file generated in its state dir);
it never appears in repr, logs or errors.

Retention: after each new backup only the newest ``keep`` of that device stay.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from reconciler.errors import ConfigError, RolloutError

__all__ = ["BackupEntry", "BackupKey", "BackupStore", "ConfigTarget", "restore_backup"]

_TAG = b"GFBK1"
_NONCE = 12
_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_SUFFIX = ".cfg.gcm"


@dataclass(frozen=True, slots=True)
class BackupEntry:
    """One stored backup: its file, the revision it was taken for and when."""

    path: Path
    device: str
    revision: str
    taken: datetime


class BackupKey:
    """A 256-bit AES-GCM key. Its repr and str never show the key."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ConfigError("a backup key must be 32 bytes (256 bits)")
        self._key = key

    @classmethod
    def from_text(cls, text: str) -> BackupKey:
        """Decode base64 text (e.g. the output of ``openssl rand -base64 32``)."""
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError("the backup key is not valid base64") from None
        return cls(raw)

    def aead(self) -> AESGCM:
        """The cipher for this key."""
        return AESGCM(self._key)

    def __repr__(self) -> str:
        return "BackupKey(***)"

    __str__ = __repr__


class BackupStore:
    """A directory of encrypted config backups."""

    def __init__(self, root: Path, key: BackupKey, *, keep: int = 30) -> None:
        if keep < 2:
            raise ConfigError("keep at least 2 backups per device (backup and pre-activation)")
        self._root = root
        self._key = key
        self._keep = keep

    def put(self, device: str, revision: str, config: str, taken: datetime | None = None) -> Path:
        """Encrypt and write one backup taken at ``taken`` (default: now); returns its path.
        Never overwrites an older one; drops the oldest beyond ``keep``."""
        folder = self._root / _SAFE.sub("_", device)
        folder.mkdir(parents=True, exist_ok=True)
        stem = _SAFE.sub("_", revision) or "unknown"
        n = 0
        while (path := folder / f"{stem}-{n}.cfg.gcm").exists():
            n += 1
        nonce = os.urandom(_NONCE)
        sealed = self._key.aead().encrypt(nonce, config.encode(), _aad(device, revision))
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(_TAG + nonce + sealed)
        if taken is not None:
            os.utime(tmp, (taken.timestamp(), taken.timestamp()))
        os.replace(tmp, path)
        for old in self.entries(device)[: -self._keep]:
            old.path.unlink(missing_ok=True)
        return path

    def entries(self, device: str) -> list[BackupEntry]:
        """Every backup of a device, oldest first."""
        folder = self._root / _SAFE.sub("_", device)
        found = []
        for path in folder.glob(f"*{_SUFFIX}"):
            revision, _, n = path.name[: -len(_SUFFIX)].rpartition("-")
            if not revision or not n.isdigit():
                continue
            taken = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            found.append((taken, int(n), BackupEntry(path, device, revision, taken)))
        return [e for _, _, e in sorted(found, key=lambda t: (t[0], t[1]))]

    def at(self, device: str, when: datetime | None = None) -> BackupEntry | None:
        """The newest backup of a device taken at or before ``when`` (default: any)."""
        found = [e for e in self.entries(device) if when is None or e.taken <= when]
        return found[-1] if found else None

    def latest(self, device: str, revision: str) -> Path | None:
        """The newest backup of a device for a revision, if any."""
        folder = self._root / _SAFE.sub("_", device)
        stem = _SAFE.sub("_", revision) or "unknown"
        found = sorted(
            folder.glob(f"{stem}-*.cfg.gcm"), key=lambda p: int(p.name.rsplit("-", 1)[1][:-8])
        )
        return found[-1] if found else None

    def read(self, path: Path, device: str, revision: str) -> str:
        """Decrypt a backup written for ``device`` at ``revision``."""
        blob = path.read_bytes()
        if not blob.startswith(_TAG):
            raise RolloutError(f"{path.name} is not a gitfirm backup")
        nonce, sealed = blob[len(_TAG) : len(_TAG) + _NONCE], blob[len(_TAG) + _NONCE :]
        try:
            plain = self._key.aead().decrypt(nonce, sealed, _aad(device, revision))
        except InvalidTag:
            raise RolloutError(
                f"backup {path.name} does not decrypt for {device} at {revision}"
            ) from None
        return plain.decode()


class ConfigTarget(Protocol):
    """The device calls a restore needs (the devices client satisfies it)."""

    async def config_file_load_text(self, text: str) -> object:
        """``/config-file load`` of config text (1.5+)."""
        ...

    async def config_file_save(self, file: str | None = None) -> object:
        """``/config-file save``."""
        ...


async def restore_backup(store: BackupStore, entry: BackupEntry, device: ConfigTarget) -> None:
    """Push a backup to its device: load it as the running config, then save it."""
    config = store.read(entry.path, entry.device, entry.revision)
    await device.config_file_load_text(config)
    await device.config_file_save()


def _aad(device: str, revision: str) -> bytes:
    return f"gitfirm-backup\0{device}\0{revision}".encode()
