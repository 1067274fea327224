"""Supersede: when a new revision changes what a running rollout is about, that run stops.

A run drives the policy as it was when it started. A later revision that retargets the
policy, suspends it, changes its selector, windows or strategy, removes it, or removes a
device the run works on makes that run stale: it must not start another device, and the
devices it started but had not yet disrupted (precheck, backup, stage with no add in
progress, activate before the reboot was sent) go back to ``pending`` with the reason
recorded, so the next run, on the new revision, is the only actor that touches them and
the old target is never booted. Devices whose reboot was sent finish their step. A halted
policy's parked devices go back to ``pending`` the same way: no run comes for them until a
retry, and a record left in ``stage`` would claim work that nobody is doing.

Plain functions over plain data; the scheduler wires them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from reconciler.model.kinds import RolloutPolicy, RolloutPolicySpec
from reconciler.planning.progress import Phase
from reconciler.rollout.journal import DeviceRecord

__all__ = ["back_to_pending", "superseded"]

# Phases a stopped device may be parked in before its reboot.
_PARKED = frozenset({Phase.PRECHECK, Phase.BACKUP, Phase.STAGE, Phase.ACTIVATE})
# Markers (see the device machine) that keep a record where it is: an add that may still
# run on the router, which the next run must watch for; a reboot that was sent, which the
# next run must see through.
_KEEP = frozenset({"add-issued", "reboot-issued"})


def superseded(
    running: RolloutPolicySpec,
    devices: Iterable[str],
    new: RolloutPolicy | None,
    known: Collection[str],
) -> str:
    """Why a run of the policy as ``running`` (driving ``devices``) is stale under a
    revision whose policy is ``new`` (None: removed) and whose devices are ``known``; empty
    when it is not. A new ``retryToken`` alone, or nothing changed, supersedes nothing."""
    if new is None:
        return "policy removed"
    if new.spec.suspend and not running.suspend:
        return "suspended"
    old = running.model_dump(mode="json", exclude={"retryToken", "suspend"})
    now = new.spec.model_dump(mode="json", exclude={"retryToken", "suspend"})
    changed = sorted(k for k in old.keys() | now.keys() if old.get(k) != now.get(k))
    if changed:
        return f"{', '.join(changed)} changed"
    gone = sorted(set(devices) - set(known))
    if gone:
        return f"device removed: {', '.join(gone)}"
    return ""


def back_to_pending(records: Iterable[DeviceRecord], detail: str, now: str) -> list[DeviceRecord]:
    """The records of a stopped run's undisrupted devices, back at ``pending`` with
    ``detail`` (records of other phases, or with an add issued, are left out)."""
    return [
        r.but(phase=Phase.PENDING, marker="", last_error=detail, updated=now)
        for r in records
        if r.phase in _PARKED and r.marker not in _KEEP
    ]
