"""The daemon's in-memory account of the fleet, turned into status snapshots.

It folds the plain outputs of the other stages (observed facts, the plan, the rollout
journal's progress, transitions, refusals) into :class:`~reconciler.report.snapshot.
StatusSnapshot` values for the status writer. It holds no logic of those stages: it only
copies their values into the report's shapes. ``daemon.py`` owns the one instance.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.model.facts import DeviceFacts
from reconciler.model.state import DesiredState
from reconciler.planning.plan import Plan
from reconciler.planning.progress import RolloutProgress
from reconciler.report.snapshot import (
    EVENT_CAP,
    ComplianceVerdict,
    CveExposure,
    DeviceStatus,
    PhaseChange,
    Refusal,
    RolloutEvent,
    RolloutStatus,
    StatusSnapshot,
)
from reconciler.rollout.engine import RolloutResult
from reconciler.rollout.model import Transition
from reconciler.sanitize import redact

__all__ = ["StatusBook"]

_MAX_REFUSALS = 20


class StatusBook:
    """What gitfirm knows right now, per device and per rollout."""

    def __init__(self) -> None:
        self.revision = ""
        self.facts: dict[str, DeviceFacts] = {}
        self.plan: Plan | None = None
        self.phases: dict[str, str] = {}
        self.policy_of: dict[str, str] = {}
        self.changes: dict[str, PhaseChange] = {}
        self.errors: dict[str, str] = {}
        self.events: dict[str, deque[RolloutEvent]] = defaultdict(lambda: deque(maxlen=EVENT_CAP))
        self.halts: dict[str, str] = {}
        self.waves: dict[str, int | None] = {}
        self.refusals: list[Refusal] = []
        self.image_refusals: dict[str, str] = {}
        self.transitions = 0

    # --- inputs -------------------------------------------------------------------------

    def desired(self, revision: str) -> None:
        """A revision was applied: earlier refusals are history now."""
        self.revision = revision
        self.refusals.clear()

    def refusal(self, revision: str, reason: str) -> None:
        """A revision was not applied."""
        self.refusals = [r for r in self.refusals if r.revision != revision]
        self.refusals.append(Refusal(revision, reason))
        del self.refusals[:-_MAX_REFUSALS]

    def refused_images(self, refused: Mapping[str, str]) -> None:
        """Images that failed verification at the current revision."""
        self.image_refusals = dict(refused)

    def observed(self, facts: Mapping[str, DeviceFacts], desired: DesiredState) -> None:
        """The newest observation; devices no longer declared are forgotten."""
        self.facts = {name: facts[name] for name in desired.devices if name in facts}

    def planned(self, plan: Plan, progress: RolloutProgress) -> None:
        """The newest plan and the journal's progress."""
        self.plan = plan
        for device in plan.devices:
            if device.policy:
                self.policy_of[device.name] = device.policy
        for pname, policy in progress.policies.items():
            self.waves[pname] = policy.current_wave
            if policy.halted:
                self.halts[pname] = policy.halt_reason or "halted"
            else:
                self.halts.pop(pname, None)
            for device_name, dp in policy.devices.items():
                if dp.revision == plan.revision or device_name not in self.phases:
                    self.phases[device_name] = str(dp.phase)
                if dp.last_error:
                    self.errors[device_name] = dp.last_error

    def transition(self, event: Transition) -> None:
        """One device changed phase."""
        self.transitions += 1
        self.phases[event.device] = event.to_phase
        self.policy_of[event.device] = event.policy
        self.changes[event.device] = PhaseChange(event.from_phase, event.to_phase, event.time)
        if event.to_phase in ("failed", "rollback") and event.detail:
            self.errors[event.device] = event.detail
        elif event.to_phase == "done":
            self.errors.pop(event.device, None)
        message = f"{event.from_phase} -> {event.to_phase}"
        if event.target:
            message += f" (target {event.target})"
        if event.detail:
            message += f": {event.detail}"
        self.events[event.policy].append(RolloutEvent(event.time, message, event.device))

    def rollout_result(self, result: RolloutResult) -> None:
        """A rollout run ended (complete, halted or stopped)."""
        if result.halted:
            self.halts[result.policy] = result.reason or "halted"
        else:
            self.halts.pop(result.policy, None)

    def policy_blocked(self, policy: str, reason: str) -> None:
        """A rollout could not start (for example, its image was refused)."""
        self.halts[policy] = reason

    # --- outputs ------------------------------------------------------------------------

    def rollout_status(self, policy: str) -> RolloutStatus:
        """One policy's status, for a git note."""
        return next(
            (r for r in self._rollouts() if r.policy == policy),
            RolloutStatus(policy, self.revision),
        )

    def _rollouts(self) -> list[RolloutStatus]:
        plan = self.plan
        if plan is None:
            return []
        out = []
        for planned in plan.policies:
            members = [d.name for d in plan.devices if d.policy == planned.name]
            out.append(
                RolloutStatus(
                    policy=planned.name,
                    revision=self.revision,
                    target_version=planned.target.removeprefix("version "),
                    current_wave=self.waves.get(planned.name),
                    total_waves=len(planned.waves),
                    halted=planned.name in self.halts,
                    halt_reason=self.halts.get(planned.name),
                    suspended=planned.suspended,
                    device_phases={n: self.phases.get(n, "pending") for n in members},
                    events=tuple(self.events[planned.name]),
                )
            )
        return out

    def _devices(self, desired: DesiredState) -> list[DeviceStatus]:
        plan = self.plan
        out = []
        for name, device in sorted(desired.devices.items()):
            planned = plan.device(name) if plan else None
            out.append(
                DeviceStatus(
                    name=name,
                    facts=self.facts.get(name),
                    desired_image=planned.target_image if planned else None,
                    target_version=planned.target_version if planned else None,
                    phase=self.phases.get(name, "pending"),
                    rollout=self.policy_of.get(name),
                    last_transition=self.changes.get(name),
                    last_error=self.errors.get(name),
                    tls_insecure=device.spec.tls.insecureSkipVerify,
                    plaintext=device.spec.insecurePlaintext,
                )
            )
        return out

    def _compliance(self) -> list[ComplianceVerdict]:
        if self.plan is None:
            return []
        return [
            ComplianceVerdict(
                device=d.name,
                compliant=d.compliant,
                reasons=d.compliance,
                exposures=tuple(CveExposure(a.name, a.severity) for a in d.advisories),
                recommendation=(
                    f"{d.recommendation.version}: {d.recommendation.why}"
                    if d.recommendation
                    else None
                ),
            )
            for d in self.plan.devices
            if d.compliance_evaluated
        ]

    def snapshot(self, desired: DesiredState | None, secrets: Iterable[str]) -> StatusSnapshot:
        """Everything the status branch shows now."""
        known = tuple(secrets)
        refusals = tuple(Refusal(r.revision, redact(r.reason, known)) for r in self.refusals)
        if desired is None:
            return StatusSnapshot(self.revision, refusals=refusals)
        return StatusSnapshot(
            desired_revision=self.revision,
            devices=tuple(self._devices(desired)),
            rollouts=tuple(self._rollouts()),
            compliance=tuple(self._compliance()),
            refusals=refusals,
        )

    def summary(self, desired: DesiredState | None, secrets: Iterable[str]) -> dict[str, Any]:
        """A small JSON view for the dashboard endpoint."""
        snap = self.snapshot(desired, secrets)
        return {
            "desiredRevision": snap.desired_revision,
            "refused": [{"revision": r.revision, "reason": r.reason} for r in snap.refusals],
            "images": {"refused": sorted(self.image_refusals)},
            "devices": {
                d.name: {
                    "phase": d.phase,
                    "version": d.facts.version if d.facts else None,
                    "reachable": d.facts.reachable if d.facts else None,
                    "target": d.target_version,
                }
                for d in snap.devices
            },
            "rollouts": {
                r.policy: {"halted": r.halted, "reason": r.halt_reason, "counts": r.counts}
                for r in snap.rollouts
            },
        }
