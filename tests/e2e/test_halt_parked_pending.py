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
from tests.support.daemon import wait_for
from tests.support.scheduling import fleet_policy, park_the_canary, staged_gitops

EDGE: dict[str, Any] = {"maxParallel": 1}


async def test_a_halt_sends_a_device_parked_before_its_add_back_to_pending(
    tmp_path: Path,
) -> None:
    files = {"policies/fleet.yaml": fleet_policy("1.4.3", **EDGE)}
    async with staged_gitops(
        tmp_path, files, devices=4, boot_seconds=0.2, shutdown_grace=0.05
    ) as stage:
        parked = await park_the_canary(stage, None, "the canary to stage", **EDGE)
        canary = parked.device
        assert parked.phase == Phase.STAGE, parked
        assert parked.marker == "", parked  # no add was sent
        assert stage.router_events(canary, "image-add") == 0

        others = [n for n in stage.fleet.names if n != canary]
        stage.fleet.device(canary).faults.unreachable = True
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
