"""The fleet's event log in one vocabulary, for invariant checkers (the chaos suite).

Each :class:`~reconciler.simulator.device.VirtualDevice` appends raw entries to its ``log``
as the API handlers and the boot logic act. :func:`normalize` maps them to a small, stable
vocabulary, one plain dict per event::

    {"at": 12.345, "wall": 1764568800.123, "device": "r0001", "event": "reboot", ...detail}

``event`` is one of :data:`EVENTS`. ``at`` is the simulator's monotonic time; ``wall`` is
the same instant as a UNIX timestamp (maintenance windows are wall-clock), given
``wall_offset`` = ``time.time() - loop.time()`` at the moment of the read. An ``image-add``
carries the ``version`` named by the ISO file in its URL, when the URL names one.

``GET /_sim/events`` on the control API serves :func:`fleet_events` for every device.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from reconciler.simulator.device import VirtualDevice

__all__ = ["EVENTS", "fleet_events", "normalize"]

# Raw log entry -> normalized event name. Entries not listed (none today) are dropped.
_NAMES = {
    "image-add": "image-add",
    "image-installed": "image-installed",
    "image-add-failed": "image-add-failed",
    "image-set_default": "set-default",
    "image-delete": "image-delete",
    "reboot": "reboot",
    "booted": "boot-ok",
    "boot-failed": "boot-fail",
    "poweroff": "poweroff",
    "config-save": "config-save",
    "config-load": "config-load",
}
EVENTS: frozenset[str] = frozenset(_NAMES.values())
"""Every normalized event name."""

# vyos-<version>-<flavor>-<arch>.iso, as reconciler.simulator.iso.iso_file_name writes it.
_ISO = re.compile(r"vyos-(?P<version>.+)-[a-z0-9]+-(?:amd64|arm64)\.iso$")


def _version_of(url: str) -> str | None:
    match = _ISO.search(url.split("?", 1)[0])
    return match.group("version") if match else None


def normalize(device: str, entry: dict[str, Any], wall_offset: float) -> dict[str, Any] | None:
    """One raw log entry of ``device`` in the normalized vocabulary (None: not an event)."""
    name = _NAMES.get(str(entry.get("event")))
    if name is None:
        return None
    detail = {k: v for k, v in entry.items() if k not in ("at", "event")}
    at = float(entry["at"])
    event: dict[str, Any] = {"at": at, "wall": at + wall_offset, "device": device, "event": name}
    if name == "image-add" and "version" not in detail:
        version = _version_of(str(detail.get("url", "")))
        if version is not None:
            detail["version"] = version
    return {**event, **detail}


def fleet_events(devices: Iterable[VirtualDevice], wall_offset: float) -> list[dict[str, Any]]:
    """Every device's normalized events, in time order (ties by device name)."""
    events = [
        event
        for dev in devices
        for entry in dev.log
        if (event := normalize(dev.name, entry, wall_offset)) is not None
    ]
    events.sort(key=lambda e: (e["at"], e["device"]))
    return events
