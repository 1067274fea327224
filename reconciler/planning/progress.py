"""Rollout state as the planner reads it: plain, frozen input types.

The rollout engine produces these (from its journal and re-observation) and hands them to
:func:`reconciler.planning.planner.plan`. They hold no behaviour beyond small, pure
helpers, so both sides agree on one meaning:

- an *attempt* is counted per device under :func:`attempt_key` (desired revision plus the
  policy's ``retryToken``): one automatic attempt per device per key;
- a *halt* stays in force until the policy's ``retryToken`` changes
  (:meth:`PolicyProgress.halt_in_force`), so resuming is always an edit in Git.
"""

from __future__ import annotations

import enum
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DISRUPTIVE",
    "IN_FLIGHT",
    "DeviceProgress",
    "Phase",
    "PolicyProgress",
    "RolloutProgress",
    "attempt_key",
]


class Phase(enum.StrEnum):
    """A device's place in the upgrade state machine of DESIGN.md."""

    PENDING = "pending"
    PRECHECK = "precheck"
    BACKUP = "backup"
    STAGE = "stage"
    ACTIVATE = "activate"
    AWAIT_BOOT = "await-boot"
    VERIFY = "verify"
    HEALTH = "health"
    DONE = "done"
    ROLLBACK = "rollback"
    VERIFY_ROLLBACK = "verify-rollback"
    FAILED = "failed"
    SKIPPED = "skipped"


# Phases in which the engine owns the device: it finishes them even when the window closes
# or a new desired revision arrives, and the planner shows the device as an upgrade.
IN_FLIGHT: frozenset[Phase] = frozenset(
    {
        Phase.PRECHECK,
        Phase.BACKUP,
        Phase.STAGE,
        Phase.ACTIVATE,
        Phase.AWAIT_BOOT,
        Phase.VERIFY,
        Phase.HEALTH,
        Phase.ROLLBACK,
        Phase.VERIFY_ROLLBACK,
    }
)


# Phases in which the device may be disrupted (rebooting, or running an unproven image):
# the journal, not the planner's view of the device, says where it resumes.
DISRUPTIVE: frozenset[Phase] = IN_FLIGHT - {Phase.PRECHECK, Phase.BACKUP, Phase.STAGE}


def attempt_key(revision: str, retry_token: str | None) -> str:
    """The key attempts are counted under: the desired revision and the policy's
    ``retryToken``. A new commit or a changed token gives a fresh key, so a new attempt."""
    return f"{revision}#{retry_token or ''}"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceProgress(_Frozen):
    """Where one device stands in its policy's rollout.

    ``hop`` is the 0-based index, in the planned path, of the hop being worked on.
    ``attempts`` maps :func:`attempt_key` to the number of automatic attempts started
    under that key. ``last_error`` is already sanitized by the engine.
    """

    name: str
    phase: Phase = Phase.PENDING
    revision: str = Field(default="", description="Desired revision this phase belongs to")
    hop: int = Field(default=0, ge=0)
    target_version: str | None = None
    attempts: dict[str, int] = Field(default_factory=dict)
    last_error: str | None = None
    updated_at: datetime | None = None

    @property
    def in_flight(self) -> bool:
        """Whether the engine is in the middle of a step on this device."""
        return self.phase in IN_FLIGHT

    def attempted(self, revision: str, retry_token: str | None) -> bool:
        """Whether an automatic attempt was already started under this revision and token."""
        return self.attempts.get(attempt_key(revision, retry_token), 0) > 0


class PolicyProgress(_Frozen):
    """The state of one RolloutPolicy's rollout.

    ``revision`` is the desired revision being rolled out. ``current_wave`` uses the plan's
    numbering (0 is the canary wave, 1.. the percentage waves); None before the first wave.
    ``halt_retry_token`` is the policy's ``retryToken`` at the moment of the halt.
    """

    policy: str
    revision: str = ""
    halted: bool = False
    halt_reason: str | None = None
    halt_retry_token: str | None = None
    current_wave: int | None = None
    devices: dict[str, DeviceProgress] = Field(default_factory=dict)

    def halt_in_force(self, retry_token: str | None) -> bool:
        """Whether the halt still holds: only a changed ``retryToken`` lifts it."""
        return self.halted and retry_token == self.halt_retry_token


class RolloutProgress(_Frozen):
    """Every policy's progress, keyed by policy name. Empty means nothing has started."""

    policies: dict[str, PolicyProgress] = Field(default_factory=dict)

    def policy(self, name: str) -> PolicyProgress | None:
        """The progress of one policy, if it has any."""
        return self.policies.get(name)

    def device(self, policy: str, device: str) -> DeviceProgress | None:
        """One device's progress under one policy, if any."""
        found = self.policies.get(policy)
        return None if found is None else found.devices.get(device)
