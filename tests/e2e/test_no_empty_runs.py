"""No empty rollout runs: the daemon starts a run only when its policy has something to do.

The daemon is stopped (SIGTERM-like) while a device is part-way through its upgrade, before
anything disruptive: the device parks in the journal. While the daemon is down the policy
is suspended. The restarted daemon must not spawn a run for the suspended policy on every
pass (the parked device is not in a disruptive step, so there is nothing to finish); the
parked device shows as pending, with why. Counted from the daemon's own log lines
(``rollout-start``) and the router's log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconciler.planning.progress import DISRUPTIVE, Phase
from reconciler.rollout.journal import DeviceRecord, Journal
from tests.support.daemon import wait_for
from tests.support.scheduling import Stage, fleet_policy, staged_gitops

EDGE: dict[str, Any] = {"maxParallel": 1}


def runs_since(stage: Stage, revision: str) -> int:
    """Rollout runs started since ``revision`` was last applied or restored."""
    events = stage.events()
    marks = [
        i for i, e in enumerate(events)
        if e.get("event") in ("applied", "restored") and e.get("revision") == revision
    ]  # fmt: skip
    assert marks, f"{revision} was never in force"
    return sum(1 for e in events[marks[-1] :] if e.get("event") == "rollout-start")


async def test_a_suspended_policy_with_a_parked_device_gets_no_runs(tmp_path: Path) -> None:
    files = {"policies/fleet.yaml": fleet_policy("1.4.3", **EDGE)}
    async with staged_gitops(tmp_path, files, devices=4, boot_seconds=0.2) as stage:
        slow: list[str] = []

        def slow_second(event: Any) -> None:
            # The second device answers slowly, so the stop finds it mid-way.
            if event.to_phase == "precheck" and len(stage.starts()) == 2 and not slow:
                slow.append(event.device)
                stage.fleet.device(event.device).faults.slow_seconds = 1.0

        stage.running.listeners.append(slow_second)
        stage.merge({"policies/fleet.yaml": fleet_policy("1.4.4", **EDGE)}, "To 1.4.4")
        await wait_for(lambda: bool(slow), 90, "the second device to start")
        (mid,) = slow
        await stage.stop()
        record = _stopped_record(stage, mid)
        assert record.phase not in DISRUPTIVE and record.phase != Phase.PENDING, record
        stage.fleet.device(mid).faults.slow_seconds = 0.0

        suspend = stage.merge(
            {"policies/fleet.yaml": fleet_policy("1.4.4", suspend=True, **EDGE)}, "Suspend"
        )
        daemon = await stage.start()
        await wait_for(lambda: daemon.state.verified == suspend, 30, "the suspend in force")
        for _ in range(3):  # three full passes: observe, plan, offer
            await daemon.reconcile(None)
        await wait_for(lambda: not daemon.rollouts_running(), 60, "no run going")
        assert runs_since(stage, suspend) == 0, "runs were started for a suspended policy"
        now = daemon.journal.device("fleet", mid)
        assert now is not None and now.phase == Phase.PENDING, now
        assert "suspended" in now.last_error, now
        assert stage.router_events(mid, "reboot") == 0


def _stopped_record(stage: Stage, device: str) -> DeviceRecord:
    """The journal record of ``device`` while no daemon runs."""
    journal = Journal(stage.state / "journal.sqlite3")
    try:
        record = journal.device("fleet", device)
    finally:
        journal.close()
    assert record is not None, f"{device} has no journal record"
    return record
