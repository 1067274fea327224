"""One owner for every rollout: single flight per policy, device locks, control first.

The daemon hands the scheduler two kinds of input, both plain data and both synchronous,
so no interleaving of its loops can split a decision:

- :meth:`Scheduler.control`: a revision was verified and loaded. Its policies are now the
  only ones in force, before anything is observed or downloaded for it: a new
  ``retryToken`` lifts its policy's halt; a run it supersedes (policy retargeted,
  suspended, otherwise changed or removed, or a device of the run removed; see
  :mod:`~reconciler.rollout.supersede`) stops starting devices, a device whose reboot was
  sent finishes its step, and the devices it had started but not disrupted go back to
  pending with the reason; plans of older revisions are refused;
- :meth:`Scheduler.offer`: a plan for the revision in force. A policy with work gets it
  on its one task: started at once when idle, or queued while the run in progress stops
  at its next step boundary.

Each policy has at most one task, and that task runs one engine run at a time: two runs
for one policy cannot exist. :class:`DeviceLocks` holds every device from precheck to a
terminal phase and keeps redundancy groups exclusive across policies.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field

from reconciler.model.kinds import RolloutPolicy, RolloutPolicySpec
from reconciler.planning.plan import CHANGE_ACTIONS, Plan
from reconciler.planning.progress import Phase
from reconciler.rollout.engine import RolloutEngine, RolloutResult, work_from_plan
from reconciler.rollout.model import Transition, must_finish
from reconciler.rollout.supersede import back_to_pending, superseded
from reconciler.sanitize import redact

__all__ = ["ResultSink", "Scheduler"]

log = logging.getLogger("gitfirm.scheduler")

ResultSink = Callable[[RolloutResult], Awaitable[None]]


@dataclass
class _Slot:
    """One policy's single flight: its task, the run in progress and the plan queued."""

    policy: str
    task: asyncio.Task[None] | None = None
    revision: str | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    queued: Plan | None = None
    spec: RolloutPolicySpec | None = None
    """The policy as the run in progress started with it."""
    devices: frozenset[str] = frozenset()
    """The devices the run in progress works on."""
    superseded: str = ""
    """Why a newer revision stopped the run in progress (empty: it did not)."""

    @property
    def busy(self) -> bool:
        return self.task is not None and not self.task.done()


class Scheduler:
    """Owns every rollout task of the daemon; built once with the engine it drives."""

    def __init__(self, engine: RolloutEngine, *, on_result: ResultSink | None = None) -> None:
        self.engine = engine
        self.on_result = on_result
        self._slots: dict[str, _Slot] = {}
        self._revision: str | None = None
        self._policies: dict[str, RolloutPolicy] = {}
        self._closed = False

    def control(
        self,
        revision: str,
        policies: Mapping[str, RolloutPolicy],
        devices: Collection[str] | None = None,
    ) -> None:
        """A revision was verified and loaded: its control state takes effect now, before
        anything is observed or downloaded for it. ``devices`` are the revision's device
        names (None: not known, no run is stopped for a removed device)."""
        self._revision = revision
        self._policies = dict(policies)
        for name, policy in self._policies.items():
            self._retry(name, policy.spec.retryToken or "", revision)
            slot = self._slots.get(name)
            if slot is not None and slot.busy:
                continue
            # Parked by a stop before the suspend or the halt (a restart, an earlier
            # revision): no run will come for them while suspended or halted.
            if policy.spec.suspend:
                self._back_to_pending(name, "superseded: suspended")
            elif halt := self._halt(policy):
                self._back_to_pending(name, halt)
        for name, slot in self._slots.items():
            if slot.queued is not None and slot.queued.revision != revision:
                slot.queued = None
            if not slot.busy or slot.spec is None or slot.superseded:
                continue
            known = slot.devices if devices is None else devices
            reason = superseded(slot.spec, slot.devices, self._policies.get(name), known)
            if reason:
                log.info(
                    "rollout superseded: %s",
                    reason,
                    extra={"event": "rollout-stop", "rollout": name, "revision": revision},
                )
                slot.superseded = reason
                slot.stop.set()

    def offer(self, plan: Plan, blocked: Mapping[str, str] | None = None) -> list[str]:
        """Give each policy with work in ``plan`` to its task; returns the policies whose
        run starts or is queued. ``blocked`` names policies that must not start (a refused
        image); a plan older than the revision in force is ignored."""
        if self._closed or plan.revision != self._revision:
            return []
        moved = []
        for name in sorted(self._policies):
            slot = self._slots.setdefault(name, _Slot(name))
            if slot.busy and plan.revision in (slot.revision, _revision(slot.queued)):
                continue  # this revision's run is going or next; it re-plans from the journal
            if not self._has_work(plan, self._policies[name]) or name in (blocked or {}):
                if slot.busy:
                    slot.stop.set()
                slot.queued = None
                continue
            slot.queued = plan
            moved.append(name)
            if slot.busy:
                slot.stop.set()  # in-flight devices finish their step; the queued plan follows
            else:
                slot.task = asyncio.create_task(self._drive(slot), name=f"rollout:{name}")
        return moved

    async def _drive(self, slot: _Slot) -> None:
        while (plan := slot.queued) is not None and not self._closed:
            slot.queued = None
            policy = self._policies.get(slot.policy)
            if policy is None or plan.revision != self._revision:
                continue
            slot.revision, slot.stop = plan.revision, asyncio.Event()
            slot.spec, slot.superseded = policy.spec, ""
            slot.devices = frozenset(
                d.name
                for d in plan.devices
                if d.policy == slot.policy and d.action in CHANGE_ACTIONS
            )
            log.info(
                "rollout started",
                extra={"event": "rollout-start", "rollout": slot.policy, "revision": plan.revision},
            )
            try:
                result = await self.engine.run(policy, plan, stop=slot.stop)
            except Exception as exc:  # one policy's failure never ends the others
                log.error(
                    "rollout failed: %s: %s",
                    type(exc).__name__,
                    redact(str(exc), self.engine.secrets),
                    extra={"event": "rollout-failed", "rollout": slot.policy},
                )
                continue
            finally:
                slot.revision, slot.spec = None, None
                if slot.superseded:
                    self._back_to_pending(slot.policy, f"superseded: {slot.superseded}")
            if result.halted:
                # Devices an earlier stop parked before their add wait for the retry.
                self._back_to_pending(slot.policy, self._halt(policy) or "rollout halted")
            log.info(
                "rollout ended: %s",
                "halted" if result.halted else "complete" if result.complete else "stopped",
                extra={"event": "rollout-end", "rollout": slot.policy, "revision": plan.revision},
            )
            if self.on_result is not None:
                try:
                    await self.on_result(result)
                except Exception as exc:  # reporting never ends the policy's task
                    log.warning(
                        "reporting a rollout's end failed: %s",
                        redact(f"{type(exc).__name__}: {exc}", self.engine.secrets),
                        extra={"event": "rollout-report-failed", "rollout": slot.policy},
                    )

    def _retry(self, policy: str, token: str, revision: str) -> None:
        """A new ``retryToken`` lifts the policy's halt now, before the revision is observed
        (a run still going for the halt starts nothing: it holds the halt in memory)."""
        journal = self.engine.journal
        roll = journal.rollout(policy)
        if roll is None or not roll.halted or roll.retry_token == token:
            return
        now = self.engine.clock.now().isoformat()
        journal.write_rollout(roll.but(halted=False, reason="", retry_token=token, updated=now))
        log.info(
            "rollout retry: halt lifted (was: %s)",
            roll.reason,
            extra={"event": "rollout-retry", "rollout": policy, "revision": revision},
        )

    def _has_work(self, plan: Plan, policy: RolloutPolicy) -> bool:
        """Whether a run of ``policy`` would do anything: move a device of the plan, or,
        when the policy is suspended or halted, finish a device's disruptive step."""
        work, _ = work_from_plan(plan, policy.name)
        if not work:
            return False
        if not (policy.spec.suspend or self._halt(policy)):
            return True
        records = self.engine.journal.devices(policy.name)
        # A paused gate ("inconclusive") waits for a human, not for another run.
        return any(
            (r := records.get(w.device)) is not None
            and must_finish(r.phase, r.marker)
            and r.marker != "inconclusive"
            for w in work
        )

    def _halt(self, policy: RolloutPolicy) -> str:
        """Why ``policy`` is halted, as a transition detail; empty when it is not (a new
        ``retryToken`` lifts a halt)."""
        roll = self.engine.journal.rollout(policy.name)
        if roll is None or not roll.halted or roll.retry_token != (policy.spec.retryToken or ""):
            return ""
        return f"rollout halted: {roll.reason}" if roll.reason else "rollout halted"

    def _back_to_pending(self, policy: str, detail: str) -> None:
        """The devices a stop parked before they were disrupted are pending again, with why
        (journalled and announced like any transition)."""
        engine = self.engine
        now = engine.clock.now()
        before = engine.journal.devices(policy)
        for record in back_to_pending(before.values(), detail, now.isoformat()):
            event = Transition(
                record.device,
                str(before[record.device].phase),
                str(Phase.PENDING),
                self._revision or record.revision,
                policy,
                now,
                record.hop,
                record.target,
                record.last_error,
            )
            engine.journal.write_device(record, event)
            if engine.events is not None:
                engine.events(event)

    def running(self) -> list[str]:
        """Policies whose task is going (waiting for a window or a pause included)."""
        return sorted(n for n, s in self._slots.items() if s.busy)

    async def close(self, grace: float) -> None:
        """Stop every rollout: nothing starts, in-flight devices get ``grace`` seconds to
        reach a step boundary, then every task is cancelled and awaited (none outlives
        this call; the journal lets the next process resume)."""
        self._closed = True
        for slot in self._slots.values():
            slot.queued = None
            slot.stop.set()
        tasks = [s.task for s in self._slots.values() if s.task is not None and s.busy]
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _revision(plan: Plan | None) -> str | None:
    return plan.revision if plan is not None else None
