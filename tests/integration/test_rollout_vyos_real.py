"""The engine on real-VyOS behaviours (issue 10, point 12 a): a device whose release flavor
changed after planning is refused at the point of adding, before any ``/image add`` (the
real add would hang until nginx's 504)."""

from __future__ import annotations

from pathlib import Path

from reconciler.rollout import OutcomeStatus
from tests.support.rollout import make_device, make_plan, make_policy, rig


async def test_engine_refuses_an_add_of_another_flavor(tmp_path: Path) -> None:
    devices = [make_device("r01"), make_device("r02")]
    # The plan chose generic images (the Device declares generic); r02 now runs azure.
    devices[1].flavor = "azure"
    plan = make_plan("rev1", "fleet", devices, waves={"r01": 0, "r02": 0})
    async with rig(tmp_path, devices) as r:
        result = await r.run(make_policy(strategy={"canary": 0, "waves": [100],
                                                   "maxParallel": 2, "pause": "0s"}), plan)  # fmt: skip
        refused = result.outcomes["r02"]
        assert refused.status is OutcomeStatus.FAILED
        assert refused.error is not None and "release flavor 'azure'" in refused.error
        assert r.adds("r02") == [] and r.reboots("r02") == []
        assert r.device("r02").calls["/image"] == 0
        assert result.outcomes["r01"].status is OutcomeStatus.DONE
        assert len(r.adds("r01")) == 1
