"""A halted policy leaves no device parked before its add: it goes back to ``pending``.

Found by the chaos suite, seed 6050 ("r0005 still stage after the fleet went quiet"): the
daemon was killed while the canary sat in ``stage`` with no add sent. The restarted
daemon's run started another router first, whose add failed (disk full), and the policy
halted. No run comes for a halted policy's untouched devices, so the canary's record said
``stage`` for good: work nobody was doing. Here the daemon is stopped with no grace while
the canary saves its config before the add, the canary is then unreachable (so the next
run skips it), and every other router's disk is full.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconciler.planning.progress import Phase
from reconciler.rollout.journal import Journal
from tests.support.daemon import wait_for
from tests.support.scheduling import fleet_policy, staged_gitops

EDGE: dict[str, Any] = {"maxParallel": 1}


async def test_a_halt_sends_a_device_parked_before_its_add_back_to_pending(
    tmp_path: Path,
) -> None:
    files = {"policies/fleet.yaml": fleet_policy("1.4.3", **EDGE)}
    async with staged_gitops(
        tmp_path, files, devices=4, boot_seconds=0.2, shutdown_grace=0.05
    ) as stage:
        daemon = stage.running
        first: list[str] = []

        def slow_save(event: Any) -> None:
            # The canary answers slowly from its stage on: the stop finds it saving its
            # config, before the add.
            if event.to_phase == "stage" and not first:
                first.append(event.device)
                stage.fleet.device(event.device).faults.slow_seconds = 1.5

        daemon.listeners.append(slow_save)
        stage.merge({"policies/fleet.yaml": fleet_policy("1.4.4", **EDGE)}, "To 1.4.4")
        await wait_for(lambda: bool(first), 90, "the canary to stage")
        await stage.stop()
        (canary,) = first
        journal = Journal(stage.state / "journal.sqlite3")
        try:
            parked = journal.device("fleet", canary)
        finally:
            journal.close()
        assert parked is not None and parked.phase == Phase.STAGE, parked
        assert parked.marker == "", parked  # no add was sent
        assert stage.router_events(canary, "image-add") == 0

        others = [n for n in stage.fleet.names if n != canary]
        stage.fleet.device(canary).faults.update({"slow_seconds": 0.0, "unreachable": True})
        for name in others:
            stage.fleet.device(name).faults.disk_full = True
        daemon = await stage.start()

        def halted() -> bool:
            roll = daemon.journal.rollout("fleet")
            return roll is not None and roll.halted

        await wait_for(halted, 90, "the policy to halt on a full disk")

        def back_to_pending() -> bool:
            record = daemon.journal.device("fleet", canary)
            return record is not None and record.phase == Phase.PENDING

        await wait_for(back_to_pending, 30, "the parked canary back at pending")
        record = daemon.journal.device("fleet", canary)
        assert record is not None and record.last_error.startswith("rollout halted: ")
        assert "failureThreshold" in record.last_error, record.last_error
        moves = [e["phase"] for e in stage.events("transition") if e["device"] == canary]
        assert moves[-1] == "stage->pending", moves
        # The halt touched nothing on the canary: no add, still on its old image.
        assert stage.router_events(canary, "image-add") == 0
        assert stage.versions()[canary] == "1.4.3"
