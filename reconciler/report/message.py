"""Status commit messages: a readable subject and the trailers that make ``git log`` an audit log.

Trailers, in this order::

    Desired-Revision: <sha>
    Rollout: <policy>          one per rollout whose file changed or whose device moved
    Device: <name>             one per device whose file changed
    Phase: <from>-><to>        right after its Device line, when the phase changed

The transition is the one between the committed file and the new one, so a coalesced
commit that spans several steps says ``stage->await-boot``; ``none`` is "no file before".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.sanitize import redact

__all__ = ["Change", "commit_message", "diff_documents"]

_SUBJECT_DEVICES = 3


@dataclass(frozen=True, slots=True)
class Change:
    """One device whose status file changed."""

    device: str
    from_phase: str | None
    to_phase: str | None

    @property
    def transitioned(self) -> bool:
        """True when the phase itself changed."""
        return self.from_phase != self.to_phase


def _phase(doc: Any) -> str | None:
    return str(doc["phase"]) if isinstance(doc, dict) and "phase" in doc else None


def _rollout(doc: Any) -> str | None:
    desired = doc.get("desired") if isinstance(doc, dict) else None
    name = desired.get("rollout") if isinstance(desired, dict) else None
    return str(name) if name else None


def diff_documents(
    previous: Mapping[str, Any], current: Mapping[str, Any]
) -> tuple[list[Change], list[str]]:
    """Devices whose files changed and rollouts touched, both sorted by name."""
    changes: list[Change] = []
    rollouts: set[str] = set()
    for path in sorted(set(previous) | set(current)):
        old, new = previous.get(path), current.get(path)
        if old == new:
            continue
        name = path.rsplit("/", 1)[-1].removesuffix(".yaml")
        if path.startswith("devices/"):
            change = Change(name, _phase(old), _phase(new))
            changes.append(change)
            if change.transitioned:
                rollouts.update(r for r in (_rollout(old), _rollout(new)) if r)
        elif path.startswith("rollouts/"):
            rollouts.add(name)
    return changes, sorted(rollouts)


def _arrow(change: Change) -> str:
    return f"{change.from_phase or 'none'}->{change.to_phase or 'none'}"


def _subject(changes: list[Change], rollouts: list[str]) -> str:
    moved = [c for c in changes if c.transitioned]
    if moved:
        shown = ", ".join(f"{c.device} {_arrow(c)}" for c in moved[:_SUBJECT_DEVICES])
        more = len(moved) - _SUBJECT_DEVICES
        return f"status: {shown}" + (f" (+{more} more)" if more > 0 else "")
    if changes:
        return f"status: observations changed on {len(changes)} device(s)"
    if rollouts:
        return f"status: rollout {', '.join(rollouts)} updated"
    return "status: summary updated"


def commit_message(
    desired_revision: str,
    previous: Mapping[str, Any],
    current: Mapping[str, Any],
    secrets: Iterable[str] = (),
) -> str:
    """The full message for a commit that turns ``previous`` documents into ``current``."""
    changes, rollouts = diff_documents(previous, current)
    trailers = [f"Desired-Revision: {desired_revision}"]
    trailers += [f"Rollout: {name}" for name in rollouts]
    for change in changes:
        trailers.append(f"Device: {change.device}")
        if change.transitioned:
            trailers.append(f"Phase: {_arrow(change)}")
    text = _subject(changes, rollouts) + "\n\n" + "\n".join(trailers) + "\n"
    return redact(text, tuple(secrets))
