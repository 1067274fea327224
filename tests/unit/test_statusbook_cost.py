"""The status snapshot's cost grows linearly with the fleet, counted in operations.

The daemon builds a snapshot on the event loop after every transition and for every
``GET /``; a per-device scan of the plan made it quadratic. These tests count how many
planned devices a snapshot reads (through a plan whose device tuple counts its reads)
and how many device entries a transition rebuilds; no clock is involved.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from reconciler.model.state import DesiredState
from reconciler.planning.plan import Plan, PlannedDevice
from reconciler.planning.planner import plan as make_plan
from reconciler.planning.progress import RolloutProgress
from reconciler.rollout.model import Transition
from reconciler.statusbook import StatusBook
from tests.support.planning import NOW, desired, device, facts, image, policy


class CountingDevices(tuple[PlannedDevice, ...]):
    """A plan's device tuple that counts every element read through iteration or index."""

    reads = 0

    def __iter__(self) -> Iterator[PlannedDevice]:
        for item in super().__iter__():
            CountingDevices.reads += 1
            yield item

    def __getitem__(self, index: Any) -> Any:
        CountingDevices.reads += 1
        return super().__getitem__(index)


def fleet(size: int) -> tuple[DesiredState, Plan]:
    """``size`` devices, one policy upgrading a tenth of them (label ``ring=canary``)."""
    devices = [
        device(f"r{i:05d}", labels={"fleet": "all", "ring": "canary" if i % 10 == 0 else "main"})
        for i in range(size)
    ]
    state = desired(
        devices,
        images=[image("1.4.3")],
        policies=[policy("canary", version="1.4.3", match={"ring": "canary"}, waves=(100,))],
    )
    observed = {d.name: facts(d.name, "1.4.2") for d in devices}
    plan = make_plan(state, observed, RolloutProgress(), NOW)
    object.__setattr__(plan, "devices", CountingDevices(plan.devices))
    return state, plan


def reads_per_snapshot(size: int) -> tuple[int, StatusBook, DesiredState]:
    """Planned-device reads of one snapshot plus one dashboard summary of ``size`` devices."""
    state, plan = fleet(size)
    book = StatusBook()
    book.desired(state.revision)
    book.observed({n: facts(n, "1.4.2") for n in state.devices}, state)
    book.planned(plan, RolloutProgress())
    CountingDevices.reads = 0
    snap = book.snapshot(state, ())
    book.summary(state, ())
    assert len(snap.devices) == size
    assert snap.rollouts[0].device_phases  # the policy's members are there
    return CountingDevices.reads, book, state


def test_snapshot_reads_of_the_plan_grow_linearly() -> None:
    small, _, _ = reads_per_snapshot(100)
    large, _, _ = reads_per_snapshot(800)
    # 8 times the devices may cost at most 8 times the reads (plus a constant); a
    # per-device scan of the plan costs 64 times.
    assert large <= 8 * small + 8, (small, large)
    assert large <= 3 * 800, (small, large)


def test_a_transition_rebuilds_only_its_device() -> None:
    _, book, state = reads_per_snapshot(400)
    before = book.snapshot(state, ())
    book.transition(Transition("r00010", "pending", "precheck", state.revision, "canary", NOW))
    CountingDevices.reads = 0
    after = book.snapshot(state, ())
    rebuilt = [a.name for a, b in zip(after.devices, before.devices, strict=True) if a is not b]
    assert rebuilt == ["r00010"]
    assert after.devices[10].phase == "precheck"
    assert after.rollouts[0].device_phases["r00010"] == "precheck"
    assert CountingDevices.reads <= 1, CountingDevices.reads
