"""The scheduler and the device locks over the real engine and the simulator.

A device that moves from one policy to another between revisions, or a redundancy pair
split across policies, must still have one actor at a time; a cancelled run takes its
device tasks with it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from reconciler.model.kinds import RolloutPolicy
from reconciler.planning.plan import Plan
from reconciler.rollout.locks import DeviceLocks
from reconciler.rollout.scheduler import Scheduler
from tests.integration.test_rollout_engine import in_flight_sets
from tests.support.daemon import wait_for
from tests.support.rollout import TARGET, Rig, make_device, make_plan, make_policy, rig


def test_device_locks_hold_devices_and_groups() -> None:
    locks = DeviceLocks()
    assert locks.acquire("r1", "pair")
    assert not locks.acquire("r1", None), "a device is taken once"
    assert not locks.acquire("r2", "pair"), "one member of a group at a time"
    assert locks.acquire("r3", None)
    locks.release("r1")
    assert locks.acquire("r2", "pair")
    assert locks.held() == {"r2", "r3"}


async def test_a_redundancy_pair_split_across_policies_is_never_down_together(
    tmp_path: Path,
) -> None:
    devices = [make_device(f"r{i}") for i in range(4)]
    groups = {"r0": "pair", "r2": "pair"}
    a, b = make_policy("a"), make_policy("b")
    plan_a = make_plan("rev1", "a", devices[:2], waves={"r0": 0, "r1": 0}, groups=groups)
    plan_b = make_plan("rev1", "b", devices[2:], waves={"r2": 0, "r3": 0}, groups=groups)
    plan = Plan(revision="rev1", now=plan_a.now, observed=True,
                devices=plan_a.devices + plan_b.devices, policies=())  # fmt: skip
    async with rig(tmp_path, devices, boot_seconds=0.2) as r:
        scheduler = Scheduler(r.engine)
        try:
            await _two_policies(r, scheduler, plan, {"a": a, "b": b})
        finally:
            await scheduler.close(grace=1)


async def _two_policies(
    r: Rig, scheduler: Scheduler, plan: Plan, policies: dict[str, RolloutPolicy]
) -> None:
    names = ["r0", "r1", "r2", "r3"]
    scheduler.control("rev1", policies)
    assert scheduler.offer(plan) == ["a", "b"]
    # One run per policy, whatever is offered meanwhile.
    assert scheduler.offer(plan) == []
    await wait_for(lambda: not scheduler.running(), 60, "both runs to end")
    for flying in in_flight_sets(r.events):
        assert not {"r0", "r2"} <= flying, "both members of the pair in flight"
    assert r.device("r1").running == TARGET and r.device("r3").running == TARGET
    # The member held back by the other policy's run joins a later run.
    for _ in range(3):
        if all(r.device(n).running == TARGET for n in ("r0", "r2")):
            break
        scheduler.offer(plan)
        await wait_for(lambda: not scheduler.running(), 60, "a later run")
    assert all(r.device(n).running == TARGET for n in names)
    assert all(len(r.adds(n)) == 1 for n in names)


async def test_a_cancelled_run_leaves_no_device_task(tmp_path: Path) -> None:
    devices = [make_device(f"r{i}") for i in range(3)]
    policy = make_policy()
    plan = make_plan("rev1", "fleet", devices, waves={d.name: 0 for d in devices})
    async with rig(tmp_path, devices, boot_seconds=5.0) as r:
        run = asyncio.create_task(r.engine.run(policy, plan))
        await wait_for(lambda: any(e.to_phase == "await-boot" for e in r.events), 30, "a reboot")
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
        left = [
            t for t in asyncio.all_tasks()
            if not t.done() and "_drive" in t.get_coro().__qualname__  # type: ignore[union-attr]
        ]  # fmt: skip
        assert left == [], f"device tasks outlived their run: {left}"
