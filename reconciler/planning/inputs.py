"""Observed facts from documents already read by the caller (pure: no file access).

Two sources feed ``gitfirm plan``:

- the JSON of ``gitfirm observe --format json``: ``{"observedAt": ..., "devices":
  [DeviceFacts, ...]}``;
- a checkout of the status branch: each ``devices/<name>.yaml`` has a top-level
  ``observed:`` mapping holding a DeviceFacts dump (or null when never observed).

Readers are tolerant: keys a newer writer adds are ignored, so an old planner can read a
newer status branch. A document that still does not make valid facts raises ``ValueError``
naming the device.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from reconciler.model.facts import ApiFeatures, DeviceFacts, Health, InstalledImage

__all__ = ["facts_from_observation", "facts_from_status", "known_facts"]


def _known(model: type[BaseModel], data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k in model.model_fields}


def known_facts(data: Mapping[str, Any], *, name: str | None = None) -> DeviceFacts:
    """Validate a DeviceFacts dump, dropping unknown keys at every level; ``name`` fills in
    a missing name."""
    raw = _known(DeviceFacts, data)
    if name is not None:
        raw.setdefault("name", name)
    for key, model in (("health", Health), ("features", ApiFeatures)):
        if isinstance(raw.get(key), Mapping):
            raw[key] = _known(model, raw[key])
    if isinstance(raw.get("images"), list):
        raw["images"] = [
            _known(InstalledImage, i) if isinstance(i, Mapping) else i for i in raw["images"]
        ]
    try:
        return DeviceFacts.model_validate(raw)
    except ValidationError as e:
        who = raw.get("name", name or "?")
        raise ValueError(f"observed facts of device {who!r} are invalid: {e}") from None


def facts_from_observation(document: Any) -> dict[str, DeviceFacts]:
    """Facts by device name from ``gitfirm observe --format json`` output."""
    if not isinstance(document, Mapping) or not isinstance(document.get("devices"), list):
        raise ValueError('an observation file is {"observedAt": ..., "devices": [...]}')
    found: dict[str, DeviceFacts] = {}
    for item in document["devices"]:
        if not isinstance(item, Mapping):
            raise ValueError("every entry of 'devices' must be a mapping of facts")
        facts = known_facts(item)
        found[facts.name] = facts
    return found


def facts_from_status(documents: Mapping[str, Any]) -> dict[str, DeviceFacts]:
    """Facts by device name from status-branch device documents, keyed by file stem.
    Documents without an ``observed`` mapping (never observed) are left out."""
    found: dict[str, DeviceFacts] = {}
    for stem, document in sorted(documents.items()):
        observed = document.get("observed") if isinstance(document, Mapping) else None
        if isinstance(observed, Mapping):
            facts = known_facts(observed, name=stem)
            found[facts.name] = facts
    return found
