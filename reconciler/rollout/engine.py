"""Orchestration: canary and waves, windows, concurrency, redundancy, halts and pauses.

One :meth:`RolloutEngine.run` drives one policy's work list for one desired revision:

- waves run in order (the canary is wave 0 in the plan); a wave starts only after the
  previous one passed (every device done, failed below the threshold, or skipped, and the
  rollout neither halted nor paused) and the policy's ``pause`` has elapsed since then;
- at most ``maxParallel`` devices in flight, and never more than ``maxUnavailable`` (a
  count, or a percentage of the work list rounded down, at least 1); an unreachable device
  nobody touched is skipped and reported, uses none of that budget, and joins a later run
  once it answers;
- never two members of a redundancy group in flight, and none while a peer is unreachable;
  with :class:`DeviceLocks` shared by every run, a device is driven by one run at a time
  and redundancy groups are exclusive across policies;
- the pause and the wave reached persist in the journal across revisions and restarts;
  they start over only when the policy's target or selector changes;
- windows: a device starts only while an allow window is open and no deny window is (deny
  wins); a device that started finishes even if the window closes; while closed, 1.5+
  devices of the current wave are staged early when the policy allows it;
- ``suspend`` starts nothing; ``failureThreshold`` failures halt the rollout (in-flight
  devices finish); an inconclusive health gate pauses it; both stay halted in the journal
  until a new revision or a new ``retryToken``;
- ``stop`` (a new desired revision arrived): no device starts, devices that have not yet
  disrupted their router stop at the next step, the others finish; the next run re-plans.

Devices whose journal says they are in a disruptive phase resume first, whatever the
window, so a restart never leaves a router half-upgraded.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from reconciler.clock import Clock
from reconciler.model.features import api_features
from reconciler.model.kinds import RolloutPolicy, RolloutPolicySpec
from reconciler.planning.plan import Action, Plan
from reconciler.planning.progress import Phase
from reconciler.planning.windows import next_allowed
from reconciler.rollout.backup import BackupStore
from reconciler.rollout.context import RunContext, Work
from reconciler.rollout.journal import Journal, RolloutRecord
from reconciler.rollout.locks import DeviceLocks
from reconciler.rollout.machine import DeviceRun
from reconciler.rollout.marks import HighWaterMarks
from reconciler.rollout.model import (
    ClientFactory,
    DeviceOutcome,
    EventSink,
    ImageUrl,
    OutcomeStatus,
    RolloutSettings,
    must_finish,
)

__all__ = ["RolloutEngine", "RolloutResult", "max_unavailable", "work_from_plan"]


@dataclass(frozen=True, slots=True)
class RolloutResult:
    """What one run achieved: per-device outcomes as values, and the rollout's state."""

    policy: str
    revision: str
    outcomes: dict[str, DeviceOutcome]
    halted: bool = False
    reason: str = ""
    suspended: bool = False
    wave: int = 0
    complete: bool = False
    waves_passed: tuple[int, ...] = field(default=())


def max_unavailable(text: str, total: int) -> int:
    """Resolve ``maxUnavailable`` ("3" or "25%") against ``total`` devices; at least 1."""
    if text.endswith("%"):
        return max(1, math.floor(total * int(text[:-1]) / 100))
    return max(1, int(text))


def work_from_plan(plan: Plan, policy: str) -> tuple[list[Work], dict[str, str | None]]:
    """The devices of ``policy`` that the plan moves (upgrade or waiting for a window),
    and those it found unreachable with their redundancy group (they count toward
    maxUnavailable, and their peers wait)."""
    work: list[Work] = []
    unreachable: dict[str, str | None] = {}
    for d in plan.devices:
        if d.policy != policy:
            continue
        if d.action is Action.UNREACHABLE:
            unreachable[d.name] = d.redundancy_group
        elif d.action in (Action.UPGRADE, Action.WAITING) and d.path and d.current_version:
            work.append(
                Work(
                    d.name,
                    d.current_version,
                    tuple(h.version for h in d.path),
                    tuple(h.image for h in d.path),
                    d.wave or 0,
                    d.order or 0,
                    d.redundancy_group,
                    d.path[-1].channel,
                    d.platform.partition("/")[2] or None,
                )
            )
    return work, unreachable


def _rollout_key(spec: RolloutPolicySpec) -> str:
    """What a rollout is about: its target and the devices it selects."""
    doc = {
        "target": spec.target.model_dump(mode="json"),
        "selector": spec.selector.model_dump(mode="json"),
    }
    return json.dumps(doc, sort_keys=True)


class RolloutEngine:
    """Runs rollouts; built once by the daemon with every dependency injected."""

    def __init__(
        self,
        *,
        journal: Journal,
        backups: BackupStore,
        clients: ClientFactory,
        image_url: ImageUrl,
        clock: Clock,
        settings: RolloutSettings | None = None,
        events: EventSink | None = None,
        secrets: tuple[str, ...] = (),
        marks: HighWaterMarks | None = None,
        locks: DeviceLocks | None = None,
    ) -> None:
        self.journal = journal
        self.marks = marks
        self.backups = backups
        self.clients = clients
        self.image_url = image_url
        self.clock = clock
        self.settings = settings or RolloutSettings()
        self.events = events
        self.secrets = secrets
        self.locks = locks or DeviceLocks()

    async def run(
        self,
        policy: RolloutPolicy,
        plan: Plan,
        *,
        stop: asyncio.Event | None = None,
        wait: bool = True,
    ) -> RolloutResult:
        """Drive the plan's devices of ``policy``. With ``wait`` False, return instead of
        sleeping for a window or a pause; the next call carries on from the journal.

        ``stop`` is set by the daemon when a new desired revision arrives.
        """
        work, unreachable = work_from_plan(plan, policy.name)
        return await self.run_work(
            policy.name,
            policy.spec,
            plan.revision,
            work,
            unreachable=unreachable,
            stop=stop,
            wait=wait,
        )

    async def run_work(
        self,
        policy: str,
        spec: RolloutPolicySpec,
        revision: str,
        work: Sequence[Work],
        *,
        unreachable: Mapping[str, str | None] | None = None,
        stop: asyncio.Event | None = None,
        wait: bool = True,
    ) -> RolloutResult:
        """:meth:`run` on an explicit work list (what :func:`work_from_plan` returns)."""
        token = spec.retryToken or ""
        roll = self.journal.rollout(policy) or RolloutRecord(policy, revision, token)
        if roll.halted and roll.retry_token != token:
            # Only a changed retryToken lifts a halt: resuming is an edit in Git.
            roll = roll.but(halted=False, reason="")
        key = _rollout_key(spec)
        if roll.target and roll.target != key:
            # A new target or selector is a new rollout; another revision of the same
            # one (an unrelated commit) keeps its wave and its pause.
            roll = roll.but(wave=0, wave_passed_at="")
        roll = roll.but(revision=revision, target=key)
        if not roll.halted:
            roll = roll.but(retry_token=token)
        roll = roll.but(updated=self.clock.now().isoformat())
        self.journal.write_rollout(roll)
        run = _Run(
            self, policy, spec, revision, token, work, roll, dict(unreachable or {}),
            stop or asyncio.Event(), wait,
        )  # fmt: skip
        return await run.execute()


_ENDED = frozenset({OutcomeStatus.DONE, OutcomeStatus.FAILED, OutcomeStatus.SKIPPED})


class _Run:
    """The state of one :meth:`RolloutEngine.run` call."""

    def __init__(
        self,
        engine: RolloutEngine,
        policy: str,
        spec: RolloutPolicySpec,
        revision: str,
        token: str,
        work: Sequence[Work],
        roll: RolloutRecord,
        unreachable: dict[str, str | None],
        stop: asyncio.Event,
        wait: bool,
    ) -> None:
        self.e = engine
        self.spec = spec
        self.work = list(work)
        self.roll = roll
        self.unreachable = set(unreachable)
        self.members: dict[str, set[str]] = {}
        for device, group in ({w.device: w.group for w in self.work} | unreachable).items():
            if group is not None:
                self.members.setdefault(group, set()).add(device)
        self.stop = stop
        self.wait = wait
        self.budget = max_unavailable(spec.strategy.maxUnavailable, len(self.work))
        self.inflight: dict[str, Work] = {}
        self.outcomes: dict[str, DeviceOutcome] = {}
        self.passed: list[int] = []
        self.blocked = ""
        self.ctx = RunContext(
            policy,
            revision,
            token,
            spec,
            engine.journal,
            engine.backups,
            engine.clock,
            engine.settings,
            engine.image_url,
            engine.events,
            engine.secrets,
            peer_busy=self._peer_busy,
            marks=engine.marks,
        )
        records = engine.journal.devices(policy)
        self.failed = {
            n
            for n, r in records.items()
            if r.phase is Phase.FAILED and r.revision == revision and r.retry_token == token
        }
        self.resuming = {n for n, r in records.items() if must_finish(r.phase, r.marker)}
        self.staged = {
            n for n, r in records.items() if r.phase is Phase.STAGE and r.marker == "staged"
        }

    def _peers(self, work: Work) -> set[str]:
        """The other members of the device's redundancy group."""
        if work.group is None:
            return set()
        return self.members[work.group] - {work.device}

    def _peer_busy(self, work: Work) -> bool:
        return bool(self._peers(work) & (set(self.inflight) | self.unreachable))

    def _result(self, *, complete: bool = False) -> RolloutResult:
        for w in self.work:
            self.outcomes.setdefault(
                w.device, DeviceOutcome(w.device, OutcomeStatus.WAITING, Phase.PENDING)
            )
        return RolloutResult(
            self.ctx.policy,
            self.ctx.revision,
            dict(self.outcomes),
            self.roll.halted,
            self.roll.reason or self.blocked,
            self.spec.suspend,
            self.roll.wave,
            complete,
            tuple(self.passed),
        )

    def _save(self, **changes: object) -> None:
        self.roll = self.roll.but(updated=self.e.clock.now().isoformat(), **changes)
        self.e.journal.write_rollout(self.roll)

    async def execute(self) -> RolloutResult:
        # The journal is the truth: a disrupted device finishes (health gate and rollback
        # included) whatever stops the rollout, and before any other device starts: in a
        # later wave it would look idle to its redundancy peers until its wave came.
        resume = [w for w in self.work if w.device in self.resuming]
        if self.spec.suspend or self.roll.halted:
            if resume:
                await self._run_wave(resume)
            return self._result()
        if resume and not await self._run_wave(resume):
            return self._result()
        waves = sorted({w.wave for w in self.work})
        for i, wave in enumerate(waves):
            items = sorted((w for w in self.work if w.wave == wave), key=lambda w: w.order)
            # ``roll.wave`` is the wave being worked on or waited for; an earlier one
            # passed before (a restart re-runs it to collect outcomes, touching nobody).
            fresh = wave >= self.roll.wave
            if fresh and not await self._pause_before():
                return self._result()
            if wave > self.roll.wave:
                self._save(wave=wave)
            if not await self._run_wave(items):
                return self._result()
            self.passed.append(wave)
            if fresh:
                nxt = waves[i + 1] if i + 1 < len(waves) else wave
                self._save(wave=nxt, wave_passed_at=self.e.clock.now().isoformat())
        return self._result(complete=True)

    async def _pause_before(self) -> bool:
        """Wait out the policy's pause after the previous wave passed (journalled, so
        neither a new revision nor a restart shortens it)."""
        if not self.roll.wave_passed_at:
            return True  # no wave of this rollout passed yet
        passed = datetime.fromisoformat(self.roll.wave_passed_at)
        until = passed + self.spec.strategy.pause
        while (now := self.e.clock.now()) < until:
            if not self.wait or self.stop.is_set():
                return False
            await self._sleep_until(until, now)
        return True

    async def _sleep_until(self, when: datetime, now: datetime) -> None:
        poll = self.e.settings.window_poll
        await self.e.clock.sleep(min(poll, max(when - now, timedelta(0))).total_seconds())

    def _may_start(self, w: Work, open_now: bool) -> bool:
        if w.device in self.resuming:
            # Already disrupted: finish it even if a peer is down, never beside a busy one.
            return not (self._peers(w) & set(self.inflight))
        if not open_now or self.stop.is_set() or self.roll.halted:
            return False
        if len(self.inflight) >= self.budget:
            return False
        return not self._peer_busy(w)

    def _skip_reason(self, w: Work) -> str:
        """Why a device is skipped without being touched (empty: it is not)."""
        if w.device in self.resuming:
            return ""
        if w.device in self.unreachable:
            return "unreachable"
        if self._peers(w) & self.unreachable:
            return "a redundancy peer is unreachable"
        return ""

    def _may_stage_early(self, w: Work) -> bool:
        return (
            self.spec.strategy.stageEarly
            and w.device not in self.staged
            and api_features(w.current).set_default
            and not self.stop.is_set()
            and not self.roll.halted
        )

    async def _run_wave(self, items: list[Work]) -> bool:
        """Run one wave to its end; False when the rollout cannot go on now."""
        # A device resumed before the waves keeps its outcome: it is not started again.
        todo = [w for w in items if not self._ended(w)]
        pending = sorted(todo, key=lambda w: (w.device not in self.resuming, w.order))
        tasks: dict[asyncio.Task[DeviceOutcome], Work] = {}
        try:
            await self._wave_loop(pending, tasks)
        finally:
            # Cancelled (shutdown past its grace): no device task outlives its run.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return all(self._ended(w) for w in items) and not self.roll.halted

    def _ended(self, w: Work) -> bool:
        outcome = self.outcomes.get(w.device)
        return outcome is not None and outcome.status in _ENDED

    def _start(
        self, pending: list[Work], tasks: dict[asyncio.Task[DeviceOutcome], Work]
    ) -> tuple[bool, bool]:
        """Start what may start now; returns whether the window was open, and whether a
        device waits for another run."""
        open_now = self.ctx.window_open(self.e.clock.now())
        held_elsewhere = False
        for w in list(pending):
            if len(tasks) >= self.spec.strategy.maxParallel:
                break
            skip = self._skip_reason(w)
            if skip:
                pending.remove(w)
                self.outcomes[w.device] = DeviceOutcome(
                    w.device, OutcomeStatus.SKIPPED, Phase.PENDING, error=skip
                )
                continue
            early = False
            if not self._may_start(w, open_now):
                if open_now or not self._may_stage_early(w):
                    continue
                early = True
            if not self.e.locks.acquire(w.device, w.group):
                held_elsewhere = True  # another run drives it or a member of its group
                continue
            pending.remove(w)
            if not early:
                self.inflight[w.device] = w
            tasks[asyncio.create_task(self._drive(w, early), name=f"device:{w.device}")] = w
        return open_now, held_elsewhere

    async def _wave_loop(
        self, pending: list[Work], tasks: dict[asyncio.Task[DeviceOutcome], Work]
    ) -> None:
        while pending or tasks:
            open_now, held_elsewhere = self._start(pending, tasks)
            if not tasks:
                if not pending or self.roll.halted or self.stop.is_set() or not self.wait:
                    break
                if open_now or held_elsewhere:
                    # Only a busy peer or another rollout blocks: not a halt; the next pass,
                    # with fresh observations, tries again.
                    self.blocked = (
                        "waiting: a device or its redundancy group is busy in another rollout"
                        if held_elsewhere
                        else "waiting: a redundancy peer is busy or unreachable"
                    )
                    break
                nxt = next_allowed(self.spec.windows, self.e.clock.now())
                if nxt is None:
                    break
                await self._sleep_until(nxt, self.e.clock.now())
                continue
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                w = tasks.pop(task)
                self.inflight.pop(w.device, None)
                self.resuming.discard(w.device)
                self._record(w, task.result(), pending)

    async def _drive(self, w: Work, early: bool) -> DeviceOutcome:
        try:
            if self.stop.is_set() and w.device not in self.resuming:
                # Stopped (a suspend, say) between the start decision and this task's turn.
                return DeviceOutcome(
                    w.device, OutcomeStatus.WAITING, Phase.PENDING, error="stopped"
                )
            client = self.e.clients(w.device)
            return await DeviceRun(
                self.ctx, w, client, early=early, stopping=self.stop.is_set
            ).drive()
        except Exception as e:  # one device never aborts the fleet
            return DeviceOutcome(
                w.device,
                OutcomeStatus.FAILED,
                Phase.PENDING,
                error=self.ctx.redact(f"internal: {type(e).__name__}: {e}"),
            )
        finally:
            self.e.locks.release(w.device)

    def _record(self, w: Work, outcome: DeviceOutcome, pending: list[Work]) -> None:
        self.outcomes[w.device] = outcome
        if outcome.status is OutcomeStatus.WAITING and (outcome.error or "").startswith("staged"):
            self.staged.add(w.device)
            pending.insert(0, w)
        elif outcome.status is OutcomeStatus.WAITING and outcome.phase is not Phase.ACTIVATE:
            pending.insert(0, w)  # stopped before disrupting; restarts when allowed
        elif outcome.status is OutcomeStatus.SKIPPED and outcome.phase is Phase.SKIPPED:
            if outcome.error and "unreachable" in outcome.error:
                self.unreachable.add(w.device)
        elif outcome.status is OutcomeStatus.FAILED:
            self.failed.add(w.device)
            if len(self.failed) >= self.spec.strategy.failureThreshold and not self.roll.halted:
                self._save(
                    halted=True,
                    reason=f"failureThreshold reached: {len(self.failed)} "
                    f"failed (last {w.device}: {outcome.error})",
                )
        elif outcome.status is OutcomeStatus.PAUSED and not self.roll.halted:
            self._save(halted=True, reason=f"paused: {w.device}: {outcome.error}")
