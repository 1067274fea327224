"""The daemon's in-memory account of the fleet, turned into status snapshots.

It folds the plain outputs of the other stages (observed facts, the plan, the rollout
journal's progress, transitions, refusals) into :class:`~reconciler.report.snapshot.
StatusSnapshot` values for the status writer. It holds no logic of those stages: it only
copies their values into the report's shapes. ``daemon.py`` owns the one instance.

Cost: a snapshot runs on the event loop after every transition and for every ``GET /``, so
it is linear in the fleet and mostly reuse. The plan is indexed by device and by policy
once per plan; each device's and each rollout's status is kept until one of its inputs
changes, so a transition rebuilds one device's entry and one rollout's, and a snapshot
re-uses every other entry as the same object (which lets the writer skip re-rendering it).
The dashboard's JSON keeps one encoded fragment per device entry in the same way.

An observation or a plan makes every device entry new. The daemon then calls
:meth:`StatusBook.reindex`, which builds them in a worker thread (at 10,000 devices 50 ms,
several times that on a busy machine, were the longest event-loop blocks left); until it
is done, snapshots show the previous entries, with every device that changed phase since
built anew. Without :meth:`~StatusBook.reindex`, the next snapshot builds them on the spot.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.model.facts import DeviceFacts
from reconciler.model.state import DesiredState
from reconciler.planning.plan import Action, Plan, PlannedDevice
from reconciler.planning.progress import Phase, RolloutProgress
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
from reconciler.rollout.model import OutcomeStatus, Transition
from reconciler.sanitize import redact

__all__ = ["StatusBook"]

_MAX_REFUSALS = 20
_encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
"""Compact JSON, as Starlette's ``JSONResponse`` renders it."""
_SummaryKey = tuple[str, str | None, bool | None, str | None]
"""What the dashboard shows of a device: phase, version, reachable, target."""


def _summary_key(device: DeviceStatus) -> _SummaryKey:
    facts = device.facts
    return (
        device.phase,
        facts.version if facts else None,
        facts.reachable if facts else None,
        device.target_version,
    )


def _fragment(name: str, key: _SummaryKey) -> bytes:
    """One device's entry of the dashboard's ``devices`` object, without braces."""
    entry = dict(zip(("phase", "version", "reachable", "target"), key, strict=True))
    return _encode({name: entry})[1:-1].encode()


_Summary = tuple[dict[str, tuple[_SummaryKey, bytes]], list[bytes]]
"""The dashboard's fragment per device (with what it shows) and the fragments in order."""


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
        self.waiting: dict[str, str] = {}
        self.waves: dict[str, int | None] = {}
        self.refusals: list[Refusal] = []
        self.image_refusals: dict[str, str] = {}
        self.build_refusals: list[Refusal] = []
        self.transitions = 0
        # Indexes of the current plan, built once per plan.
        self._planned: dict[str, PlannedDevice] = {}
        self._members: dict[str, tuple[str, ...]] = {}
        self._unreachable: dict[str, tuple[str, ...]] = {}
        # Entries kept until one of their inputs changes (see the module docstring).
        self._desired: DesiredState | None = None
        self._position: dict[str, int] = {}
        self._device_rows: tuple[DeviceStatus, ...] | None = None
        self._interim: tuple[DeviceStatus, ...] | None = None
        """The entries before the last observation or plan, shown while :meth:`reindex`
        builds the new ones."""
        self._generation = 0
        """Moves with every observation and plan: a reindex of an older one is dropped."""
        self._reindexing = 0
        self._stale: set[str] = set()
        self._summary_rows: dict[str, tuple[_SummaryKey, bytes]] = {}
        self._summary_devices_json: tuple[tuple[DeviceStatus, ...], bytes] | None = None
        self._summary_parts: list[bytes] = []
        self._rebuilt: set[str] | None = None
        """Device entries rebuilt since the dashboard last joined its JSON (None: all)."""
        self._rollout_rows: dict[str, RolloutStatus] = {}
        self._verdicts: tuple[ComplianceVerdict, ...] | None = None

    # --- inputs -------------------------------------------------------------------------

    def desired(self, revision: str) -> None:
        """A revision was applied: earlier refusals are history now."""
        self.revision = revision
        self.refusals.clear()
        self._rollout_rows.clear()

    def refusal(self, revision: str, reason: str) -> None:
        """A revision was not applied."""
        self.refusals = [r for r in self.refusals if r.revision != revision]
        self.refusals.append(Refusal(revision, reason))
        del self.refusals[:-_MAX_REFUSALS]

    def refused_build(self, build: str, reason: str) -> None:
        """An upstream build (``<source>/<file>``) failed verification: never proposed."""
        self.build_refusals = [r for r in self.build_refusals if r.revision != build]
        self.build_refusals.append(Refusal(build, reason))
        del self.build_refusals[:-_MAX_REFUSALS]

    def refused_images(self, refused: Mapping[str, str]) -> None:
        """Images that failed verification at the current revision."""
        self.image_refusals = dict(refused)

    def observed(self, facts: Mapping[str, DeviceFacts], desired: DesiredState) -> None:
        """The newest observation; devices no longer declared are forgotten."""
        self.facts = {name: facts[name] for name in desired.devices if name in facts}
        self._outdate()

    def planned(self, plan: Plan, progress: RolloutProgress) -> None:
        """The newest plan and the journal's progress."""
        self.plan = plan
        self._planned = {d.name: d for d in plan.devices}
        members: dict[str, list[str]] = defaultdict(list)
        unreachable: dict[str, list[str]] = defaultdict(list)
        for device in plan.devices:
            if device.policy:
                self.policy_of[device.name] = device.policy
                members[device.policy].append(device.name)
                if device.action is Action.UNREACHABLE:
                    unreachable[device.policy].append(device.name)
        self._members = {name: tuple(names) for name, names in members.items()}
        self._unreachable = {name: tuple(names) for name, names in unreachable.items()}
        self._outdate()
        self._rollout_rows.clear()
        self._verdicts = None
        for pname, policy in progress.policies.items():
            self.waves[pname] = policy.current_wave
            if policy.halted:
                self.halts[pname] = policy.halt_reason or "halted"
            else:
                self.halts.pop(pname, None)
            for device_name, dp in policy.devices.items():
                if dp.revision == plan.revision or device_name not in self.phases:
                    self.phases[device_name] = str(dp.phase)
                wanted = self._planned.get(device_name)
                if (
                    dp.phase in (Phase.DONE, Phase.FAILED)
                    and wanted is not None
                    and wanted.target_version is not None
                    and dp.target_version != wanted.target_version
                ):
                    # That outcome was for another target: the one wanted now is not started.
                    self.phases[device_name] = str(Phase.PENDING)
                if dp.last_error:
                    self.errors[device_name] = dp.last_error

    def _outdate(self) -> None:
        """Every device entry must be built again (new facts or a new plan)."""
        if self._device_rows is not None:
            self._interim = self._device_rows
        self._device_rows = None
        self._generation += 1

    async def reindex(self, desired: DesiredState) -> None:
        """Build every device entry again in a worker thread, after an observation or a
        plan, and keep them unless a newer one came meanwhile.

        The thread reads what transitions change (phases, errors) while the loop goes
        on; every device that moves meanwhile stays stale and is built again, on the
        loop, by the next snapshot, so no transition is lost.
        """
        if self._device_rows is not None or self._interim is None or desired is not self._desired:
            return
        generation, before = self._generation, self._interim
        full = self._rebuilt is None  # the dashboard has every fragment to make anyway
        self._reindexing += 1
        try:
            rows, moved, summary = await asyncio.to_thread(self._rebuild, desired, before, full)
        finally:
            self._reindexing -= 1
        if generation != self._generation or desired is not self._desired:
            return
        self._device_rows, self._interim = rows, None
        if summary is not None:
            (self._summary_rows, self._summary_parts), self._rebuilt = summary, set()
            self._summary_devices_json = None
        elif self._rebuilt is not None:
            self._rebuilt |= moved

    def _rebuild(
        self, desired: DesiredState, before: tuple[DeviceStatus, ...], full: bool
    ) -> tuple[tuple[DeviceStatus, ...], set[str], _Summary | None]:
        """Every device entry, and either the devices whose dashboard summary differs from
        ``before`` or (``full``) every dashboard fragment; in a worker thread."""
        rows = tuple(self._device_row(n, desired) for n in self._position)
        if full:
            fragments: dict[str, tuple[_SummaryKey, bytes]] = {}
            for d in rows:
                key = _summary_key(d)
                fragments[d.name] = (key, _fragment(d.name, key))
            return rows, set(), (fragments, [fragments[d.name][1] for d in rows])
        moved = {
            new.name
            for old, new in zip(before, rows, strict=True)
            if _summary_key(old) != _summary_key(new)
        }
        return rows, moved, None

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
        self._stale.add(event.device)
        self._rollout_rows.pop(event.policy, None)

    def rollout_result(self, result: RolloutResult) -> None:
        """A rollout run ended (complete, halted or stopped)."""
        if result.halted:
            self.halts[result.policy] = result.reason or "halted"
        else:
            self.halts.pop(result.policy, None)
        skipped = sorted(
            f"{name} ({outcome.error})" if outcome.error else name
            for name, outcome in result.outcomes.items()
            if outcome.status is OutcomeStatus.SKIPPED
        )
        reasons = [] if result.halted or not result.reason else [result.reason]
        reasons += [f"skipped: {', '.join(skipped)}"] if skipped else []
        self.waiting[result.policy] = "; ".join(reasons)
        self._rollout_rows.pop(result.policy, None)

    def policy_blocked(self, policy: str, reason: str) -> None:
        """A rollout could not start (for example, its image was refused)."""
        self.halts[policy] = reason
        self._rollout_rows.pop(policy, None)

    # --- outputs ------------------------------------------------------------------------

    def rollout_status(self, policy: str) -> RolloutStatus:
        """One policy's status, for a git note."""
        plan = self.plan
        if plan is None or not any(p.name == policy for p in plan.policies):
            return RolloutStatus(policy, self.revision)
        return next(r for r in self._rollouts(plan) if r.policy == policy)

    def _rollouts(self, plan: Plan) -> list[RolloutStatus]:
        out = []
        for planned in plan.policies:
            row = self._rollout_rows.get(planned.name)
            if row is None:
                members = self._members.get(planned.name, ())
                unreachable = self._unreachable.get(planned.name, ())
                waiting = [self.waiting.get(planned.name, "")]
                waiting += (
                    [f"unreachable, skipped: {', '.join(unreachable)}"] if unreachable else []
                )
                row = RolloutStatus(
                    policy=planned.name,
                    revision=self.revision,
                    target_version=planned.target.removeprefix("version "),
                    current_wave=self.waves.get(planned.name),
                    total_waves=len(planned.waves),
                    halted=planned.name in self.halts,
                    halt_reason=self.halts.get(planned.name),
                    waiting_reason="; ".join(w for w in waiting if w) or None,
                    suspended=planned.suspended,
                    device_phases={n: self.phases.get(n, "pending") for n in members},
                    events=tuple(self.events[planned.name]),
                )
                self._rollout_rows[planned.name] = row
            out.append(row)
        return out

    def _device_row(self, name: str, desired: DesiredState) -> DeviceStatus:
        planned = self._planned.get(name)
        return DeviceStatus(
            name=name,
            facts=self.facts.get(name),
            desired_image=planned.target_image if planned else None,
            target_version=planned.target_version if planned else None,
            phase=self.phases.get(name, "pending"),
            rollout=self.policy_of.get(name),
            last_transition=self.changes.get(name),
            last_error=self.errors.get(name),
            tls_insecure=desired.devices[name].spec.tls.insecureSkipVerify,
            plaintext=desired.devices[name].spec.insecurePlaintext,
        )

    def _devices(self, desired: DesiredState) -> tuple[DeviceStatus, ...]:
        if desired is not self._desired:
            self._desired = desired
            self._position = {name: i for i, name in enumerate(sorted(desired.devices))}
            self._device_rows = self._interim = None
        if self._device_rows is None and self._reindexing and self._interim is not None:
            # The new entries are being built: the previous ones, with every device that
            # moved since built anew. They stay stale until the new entries are in.
            rows = list(self._interim)
            stale = self._stale & self._position.keys()
            for name in stale:
                rows[self._position[name]] = self._device_row(name, desired)
            if self._rebuilt is not None:
                self._rebuilt |= stale
            return tuple(rows)
        if self._device_rows is None:
            self._interim = None
            self._device_rows = tuple(self._device_row(n, desired) for n in self._position)
            self._rebuilt = None
        elif self._stale:
            # Copying the tuple runs in C; only the stale entries are built again.
            rows = list(self._device_rows)
            stale = self._stale & self._position.keys()
            for name in stale:
                rows[self._position[name]] = self._device_row(name, desired)
            self._device_rows = tuple(rows)
            if self._rebuilt is not None:
                self._rebuilt |= stale
        self._stale.clear()
        return self._device_rows

    def _compliance(self, plan: Plan) -> tuple[ComplianceVerdict, ...]:
        if self._verdicts is None:
            self._verdicts = tuple(
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
                for d in plan.devices
                if d.compliance_evaluated
            )
        return self._verdicts

    def snapshot(self, desired: DesiredState | None, secrets: Iterable[str]) -> StatusSnapshot:
        """Everything the status branch shows now."""
        known = tuple(secrets)
        refusals = tuple(Refusal(r.revision, redact(r.reason, known)) for r in self.refusals)
        builds = tuple(Refusal(r.revision, redact(r.reason, known)) for r in self.build_refusals)
        if desired is None:
            return StatusSnapshot(self.revision, refusals=refusals, refused_builds=builds)
        plan = self.plan
        return StatusSnapshot(
            desired_revision=self.revision,
            devices=self._devices(desired),
            rollouts=tuple(self._rollouts(plan)) if plan else (),
            compliance=self._compliance(plan) if plan else (),
            refusals=refusals,
            refused_builds=builds,
        )

    def _summary_devices(self, devices: tuple[DeviceStatus, ...]) -> bytes:
        """The dashboard's ``devices`` object as JSON, kept as one encoded fragment per
        device. Only the entries rebuilt since the last call are looked at (all of them
        after an observation or a new plan), and a fragment is encoded again only when what
        it shows changed; the object itself is a join, in C, of the fragments."""
        cached = self._summary_devices_json
        if cached is not None and cached[0] is devices:
            return cached[1]
        parts, rebuilt = self._summary_parts, self._rebuilt
        indexes: Iterable[int]
        if rebuilt is None or len(parts) != len(devices):
            parts = self._summary_parts = [b""] * len(devices)
            indexes = range(len(devices))
            if len(self._summary_rows) > len(devices):  # devices left desired state
                self._summary_rows = {}
        else:
            indexes = [self._position[name] for name in rebuilt]
        self._rebuilt = set()
        cache = self._summary_rows
        for i in indexes:
            d = devices[i]
            key = _summary_key(d)
            hit = cache.get(d.name)
            if hit is None or hit[0] != key:
                cache[d.name] = hit = (key, _fragment(d.name, key))
            parts[i] = hit[1]
        body = b"{" + b",".join(parts) + b"}"
        self._summary_devices_json = (devices, body)
        return body

    def summary_json(self, desired: DesiredState | None, secrets: Iterable[str]) -> bytes:
        """The dashboard endpoint's body: :meth:`summary` as compact UTF-8 JSON.

        Linear in the fleet only through a join of cached per-device fragments (see
        :meth:`_summary_devices`): ``GET /`` runs on the event loop, and encoding 10,000
        entries on each request blocked it for hundreds of milliseconds.
        """
        snap = self.snapshot(desired, secrets)
        head = _encode(
            {
                "desiredRevision": snap.desired_revision,
                "refused": [{"revision": r.revision, "reason": r.reason} for r in snap.refusals],
                "images": {"refused": sorted(self.image_refusals)},
            }
        )
        rollouts = _encode(
            {
                r.policy: {
                    "halted": r.halted,
                    "reason": r.halt_reason,
                    "waiting": r.waiting_reason,
                    "counts": r.counts,
                }
                for r in snap.rollouts
            }
        )
        devices = self._summary_devices(snap.devices)
        tail = b',"devices":' + devices + b',"rollouts":' + rollouts.encode() + b"}"
        return head[:-1].encode() + tail

    def summary(self, desired: DesiredState | None, secrets: Iterable[str]) -> dict[str, Any]:
        """A small JSON view for the dashboard endpoint (:meth:`summary_json`, parsed)."""
        parsed: dict[str, Any] = json.loads(self.summary_json(desired, secrets))
        return parsed
