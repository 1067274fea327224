"""The rollout state the planner reads, produced from the journal.

The types are planning's (:mod:`reconciler.planning.progress`); this module only fills
them in, so the planner and the status report see what the engine recorded.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from reconciler.planning.progress import (
    DeviceProgress,
    PolicyProgress,
    RolloutProgress,
    attempt_key,
)
from reconciler.rollout.journal import DeviceRecord, Journal, RolloutRecord

__all__ = ["policy_progress", "rollout_progress"]


def _when(text: str) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _device(rec: DeviceRecord) -> DeviceProgress:
    return DeviceProgress(
        name=rec.device,
        phase=rec.phase,
        revision=rec.revision,
        hop=rec.hop,
        target_version=rec.target or None,
        attempts={attempt_key(rec.revision, rec.retry_token or None): rec.attempts}
        if rec.attempts
        else {},
        last_error=rec.last_error or None,
        updated_at=_when(rec.updated),
    )


def policy_progress(journal: Journal, policy: str) -> PolicyProgress:
    """One policy's progress: its halt, current wave and every device it touched."""
    roll = journal.rollout(policy) or RolloutRecord(policy, "")
    return PolicyProgress(
        policy=policy,
        revision=roll.revision,
        halted=roll.halted,
        halt_reason=roll.reason or None,
        halt_retry_token=(roll.retry_token or None) if roll.halted else None,
        current_wave=roll.wave if roll.revision else None,
        devices={n: _device(r) for n, r in journal.devices(policy).items()},
    )


def rollout_progress(journal: Journal, policies: Iterable[str]) -> RolloutProgress:
    """Progress of every named policy, for the planner and the status branch."""
    return RolloutProgress(policies={p: policy_progress(journal, p) for p in sorted(policies)})
