"""Anti-rollback: a persisted high-water mark per channel and release train.

An image older than one already accepted in its channel is refused (``rollback``) unless the
caller passes ``allow_downgrade`` (a RolloutPolicy's ``allowDowngrade``). Versions order only
within a train, so the mark is kept per (channel, train); a change of train is an explicit
choice made in Git, not a rollback.

This gate admits images into a channel. Rolling a failed device back to the image it ran
before never passes through it: that image is already on the device, and an image whose
SHA-256 was accepted once stays acceptable.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from reconciler.errors import ImageRefused
from reconciler.images.files import atomic_write
from reconciler.images.reasons import Reason
from reconciler.model.kinds import Image
from reconciler.model.versions import parse_version

__all__ = ["RollbackGuard"]


class RollbackGuard:
    """High-water marks kept in ``<state_dir>/high-water.json``."""

    def __init__(self, state_dir: Path) -> None:
        self._path = state_dir / "high-water.json"
        self._lock = threading.Lock()

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"marks": {}, "accepted": []}
        return data if isinstance(data, dict) else {"marks": {}, "accepted": []}

    def marks(self) -> dict[str, dict[str, str]]:
        """``{channel: {train: version}}`` as persisted."""
        marks: dict[str, dict[str, str]] = self._load().get("marks", {})
        return marks

    def check(self, image: Image, *, allow_downgrade: bool = False) -> None:
        """Refuse an image older than its channel's mark (``rollback``)."""
        if allow_downgrade:
            return
        data = self._load()
        if image.spec.sha256 in data.get("accepted", []):
            return
        version = parse_version(image.spec.version)
        mark_text = data.get("marks", {}).get(image.spec.channel, {}).get(version.train)
        if mark_text is not None and version < parse_version(mark_text):
            raise ImageRefused(
                Reason.ROLLBACK,
                f"{image.spec.version} is older than {mark_text}, already accepted in channel "
                f"{image.spec.channel}; set allowDowngrade to go back on purpose",
            )

    def accept(self, image: Image) -> None:
        """Record a verified image: raise the mark when it is newer, remember its SHA-256."""
        version = parse_version(image.spec.version)
        with self._lock:
            data = self._load()
            marks = data.setdefault("marks", {}).setdefault(image.spec.channel, {})
            current = marks.get(version.train)
            if current is None or version > parse_version(current):
                marks[version.train] = image.spec.version
            accepted: list[str] = data.setdefault("accepted", [])
            if image.spec.sha256 not in accepted:
                accepted.append(image.spec.sha256)
                accepted.sort()
            text = json.dumps(data, indent=2, sort_keys=True) + "\n"
            atomic_write(self._path, text.encode())
