"""A device whose image add was issued is seen through even when its policy is suspended.

The add arms the router's next boot (on 1.3/1.4 for good), so a device stopped after the
add was sent is disrupted, like one mid-reboot. The daemon is stopped with no grace while
the canary's add runs (the journal says ``stage``, ``add-issued``); the policy is suspended
while it is down. The restarted daemon must finish that device, gate included, with no
second add, instead of leaving it in ``stage`` with its next boot armed (found by the chaos
suite, seed 4042: "r0002 still stage after the fleet went quiet").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconciler.daemon import Daemon
from reconciler.planning.progress import Phase
from tests.support.daemon import wait_for
from tests.support.scheduling import fleet_policy, park_the_canary, staged_gitops

EDGE: dict[str, Any] = {"maxParallel": 1}


async def test_a_suspended_policy_finishes_a_device_whose_add_was_issued(tmp_path: Path) -> None:
    files = {"policies/fleet.yaml": fleet_policy("1.4.3", **EDGE)}
    async with staged_gitops(
        tmp_path, files, devices=4, boot_seconds=0.2, shutdown_grace=0.05
    ) as stage:

        def add_issued(daemon: Daemon, canary: str) -> bool:
            # The slow answers make the stop find the canary's add running.
            record = daemon.journal.device("fleet", canary)
            return record is not None and record.marker == "add-issued"

        parked = await park_the_canary(stage, add_issued, "the canary's add to be issued", **EDGE)
        canary = parked.device
        assert parked.phase == Phase.STAGE, parked
        assert parked.marker == "add-issued", parked

        suspend = stage.merge(
            {"policies/fleet.yaml": fleet_policy("1.4.4", suspend=True, **EDGE)}, "Suspend"
        )
        daemon = await stage.start()
        await wait_for(lambda: daemon.state.verified == suspend, 30, "the suspend in force")

        def finished() -> bool:
            record = daemon.journal.device("fleet", canary)
            return record is not None and record.phase == Phase.DONE

        await wait_for(finished, 90, "the canary to be seen through")
        assert stage.versions()[canary] == "1.4.4"
        assert stage.router_events(canary, "image-add") == 1
        others = [n for n in stage.fleet.names if n != canary]
        assert all(stage.router_events(n, "image-add") == 0 for n in others), "suspended"
