"""Commit statuses for rollouts: what each rollout says on the desired revision, and the
loop that posts it.

One status per RolloutPolicy, context ``gitfirm/<policy>``, on the desired revision:
``pending`` while the rollout runs (or waits), ``success`` when every device is done or
skipped, ``failure`` when it halted, and ``error`` ("superseded") when a newer revision
replaced it while it was still pending. The description names the wave and the counts;
the target URL is the rollout's card on the dashboard's rollouts page. A status is posted
only when it changes, so an idle daemon sends nothing and GitHub's limit of 1000 statuses
per context is never near.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from urllib.parse import quote

from reconciler.clock import Clock
from reconciler.errors import GitfirmError, summarize
from reconciler.forge.protocol import CommitState, Forge
from reconciler.report.metrics import rollout_phase
from reconciler.report.snapshot import RolloutStatus, StatusSnapshot
from reconciler.supervise import first_of

__all__ = ["CONTEXT_PREFIX", "StatusPoster", "StatusUpdate", "rollout_statuses"]

log = logging.getLogger("gitfirm.forge")

CONTEXT_PREFIX = "gitfirm/"
_SETTLED = ("done", "skipped")


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """One commit status as gitfirm wants it on the forge."""

    sha: str
    context: str
    state: CommitState
    description: str
    target_url: str


def rollout_statuses(
    snapshot: StatusSnapshot, dashboard_url: str, planned: str | None
) -> list[StatusUpdate]:
    """The status of every rollout of ``snapshot``, on its desired revision (pure).

    ``planned`` is the revision of the newest plan: right after a revision applies, the
    rollouts still show the previous plan, and nothing is said until the new one is made.
    """
    if not snapshot.desired_revision or planned != snapshot.desired_revision:
        return []
    base = dashboard_url.rstrip("/")
    running = {d.name: d.facts.version for d in snapshot.devices if d.facts is not None}
    out = []
    for r in sorted(snapshot.rollouts, key=lambda r: r.policy):
        phases = _settled_phases(r, running)
        out.append(
            StatusUpdate(
                sha=snapshot.desired_revision,
                context=f"{CONTEXT_PREFIX}{r.policy}",
                state=_state(r, phases),
                description=_description(r, phases),
                target_url=f"{base}/ui/rollouts#rollout-{quote(r.policy, safe='')}",
            )
        )
    return out


def _settled_phases(r: RolloutStatus, running: Mapping[str, str | None]) -> dict[str, str]:
    """Device phases, with a pending device that already runs the target counted done."""
    return {
        name: "done"
        if phase == "pending" and r.target_version and running.get(name) == r.target_version
        else phase
        for name, phase in r.device_phases.items()
    }


def _state(r: RolloutStatus, phases: Mapping[str, str]) -> CommitState:
    phase = rollout_phase(r.halted, r.suspended, phases)
    if phase == "halted":
        return "failure"
    if phase == "complete":
        return "success"
    return "pending"


def _description(r: RolloutStatus, phases: Mapping[str, str]) -> str:
    counts = Counter(phases.values())
    done = sum(counts.get(p, 0) for p in _SETTLED)
    failed = counts.get("failed", 0)
    pending = counts.get("pending", 0)
    flight = sum(counts.values()) - done - failed - pending
    parts = [f"{done} done"]
    parts += [f"{flight} in flight"] if flight else []
    parts += [f"{pending} pending"] if pending else []
    parts += [f"{failed} failed"] if failed else []
    waves = r.total_waves or 0
    if not counts:
        text = "no devices selected"
    elif done == sum(counts.values()):
        text = f"{done} done" + (f" in {waves} waves" if waves > 1 else "")
    elif r.current_wave is not None and waves:
        # The plan's own names: wave 0 is the canary, then wave 1, 2...
        label = "canary" if r.current_wave == 0 else f"wave {r.current_wave}"
        text = f"{label} ({waves} waves): " + ", ".join(parts)
    else:
        text = f"{waves} waves: " + ", ".join(parts) if waves > 1 else ", ".join(parts)
    if r.halted:
        text = f"halted, {text}" + (f" ({r.halt_reason})" if r.halt_reason else "")
    elif r.suspended:
        text = f"suspended, {text}"
    target = f" to {r.target_version}" if r.target_version else ""
    return f"{r.policy}{target}: {text}"


class StatusPoster:
    """Posts each rollout's status when it changes; a failed post is tried again later."""

    def __init__(
        self,
        forge: Forge,
        updates: Callable[[], Sequence[StatusUpdate]],
        *,
        clock: Clock,
        interval: float = 60.0,
        secrets: Callable[[], tuple[str, ...]] = tuple,
    ) -> None:
        self._forge = forge
        self._updates = updates
        self._clock = clock
        self._interval = interval
        self._secrets = secrets
        self._posted: dict[tuple[str, str], StatusUpdate] = {}
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Something changed: post soon (the status may differ now)."""
        self._wake.set()

    async def post_changed(self) -> int:
        """Post every status that differs from the last one posted; returns how many."""
        updates = list(self._updates())
        if not updates:
            return 0  # between a new revision and its plan: nothing to say yet
        current = {(u.sha, u.context) for u in updates}
        revision = updates[0].sha
        posted = 0
        for key, old in list(self._posted.items()):
            if key in current:
                continue
            # A rollout left pending on an older revision never ends there: say so once.
            if old.sha != revision and old.state == "pending":
                policy = old.context.removeprefix(CONTEXT_PREFIX)
                note = f"{policy}: superseded by {revision[:12]}, which is rolled out instead"
                if not await self._post(replace(old, state="error", description=note)):
                    continue  # tried again next time
                posted += 1
            # Only the current revision's statuses are remembered: a long run stays small.
            del self._posted[key]
        for update in updates:
            if self._posted.get((update.sha, update.context)) != update and await self._post(
                update
            ):
                self._posted[(update.sha, update.context)] = update
                posted += 1
        return posted

    async def _post(self, update: StatusUpdate) -> bool:
        try:
            await self._forge.set_status(
                update.sha,
                context=update.context,
                state=update.state,
                description=update.description,
                target_url=update.target_url,
            )
        except GitfirmError as e:
            # Logged and retried at the next wake or interval; never stops the daemon.
            summary = summarize(e, self._secrets())
            log.warning(
                "commit status %s not posted: %s",
                update.context,
                summary.message,
                extra={"event": "forge-status-failed", "reason": summary.reason},
            )
            return False
        log.info(
            "commit status %s: %s",
            update.context,
            update.state,
            extra={"event": "forge-status", "revision": update.sha, "rollout": update.context},
        )
        return True

    async def run(self) -> None:
        """Post changes as they come (woken by :meth:`wake`), and retry every ``interval``."""
        while True:
            self._wake.clear()
            await self.post_changed()
            await first_of(self._clock.sleep(self._interval), self._wake.wait())
