"""The status snapshot's cost grows linearly with the fleet, counted in operations.

The daemon builds a snapshot on the event loop after every transition and for every
``GET /``; a per-device scan of the plan made it quadratic. These tests count how many
planned devices a snapshot reads (through a plan whose device tuple counts its reads),
how many device entries a transition rebuilds, and how many objects the dashboard's JSON
encodes (through a counting encoder); no clock is involved.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from reconciler import statusbook
from reconciler.model.state import DesiredState
from reconciler.planning.plan import Plan, PlannedDevice
from reconciler.planning.planner import plan as make_plan
from reconciler.planning.progress import RolloutProgress
from reconciler.report.snapshot import StatusSnapshot
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


class CountingEncoder:
    """Stands in for one of the book's functions (its JSON encoder, its reader of a
    device's dashboard entry) and counts the calls."""

    def __init__(self, encode: Callable[[Any], Any]) -> None:
        self.encode = encode
        self.calls = 0

    def __call__(self, value: Any) -> Any:
        self.calls += 1
        return self.encode(value)


def expected_devices(snap: StatusSnapshot) -> dict[str, Any]:
    """The dashboard's device entries, built from the snapshot without any cache."""
    return {
        d.name: {
            "phase": d.phase,
            "version": d.facts.version if d.facts else None,
            "reachable": d.facts.reachable if d.facts else None,
            "target": d.target_version,
        }
        for d in snap.devices
    }


def test_dashboard_json_encodes_each_device_once_then_only_changed_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counter = CountingEncoder(statusbook._encode)
    monkeypatch.setattr(statusbook, "_encode", counter)
    _, book, state = reads_per_snapshot(400)  # its summary encoded every device once
    assert 400 <= counter.calls <= 400 + 2, counter.calls

    counter.calls = 0
    again = json.loads(book.summary_json(state, ()))
    assert counter.calls <= 2, counter.calls  # nothing changed: only the fleet-wide parts
    assert again["devices"] == expected_devices(book.snapshot(state, ()))

    book.transition(Transition("r00010", "pending", "precheck", state.revision, "canary", NOW))
    counter.calls = 0
    after = json.loads(book.summary_json(state, ()))
    assert counter.calls <= 1 + 2, counter.calls  # the one device, plus the fleet-wide parts
    assert after["devices"]["r00010"]["phase"] == "precheck"
    assert after["devices"] == expected_devices(book.snapshot(state, ()))
    assert after["rollouts"]["canary"]["counts"] == {"pending": 39, "precheck": 1}


def test_dashboard_json_cost_grows_linearly(monkeypatch: pytest.MonkeyPatch) -> None:
    counter = CountingEncoder(statusbook._encode)
    monkeypatch.setattr(statusbook, "_encode", counter)
    reads_per_snapshot(100)
    small, counter.calls = counter.calls, 0
    reads_per_snapshot(800)
    assert counter.calls <= 8 * small + 8, (small, counter.calls)


def test_a_new_observation_encodes_only_devices_whose_dashboard_entry_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counter = CountingEncoder(statusbook._encode)
    monkeypatch.setattr(statusbook, "_encode", counter)
    _, book, state = reads_per_snapshot(400)
    # Every device observed again (new facts objects, so new status entries); one now
    # runs another version and one stopped answering.
    observed = {n: facts(n, "1.4.2", rtt_ms=3.0) for n in state.devices}
    observed["r00020"] = facts("r00020", "1.4.3")
    observed["r00021"] = facts("r00021", None, reachable=False, error="timeout")
    book.observed(observed, state)
    counter.calls = 0
    body = json.loads(book.summary_json(state, ()))
    assert counter.calls <= 2 + 2, counter.calls  # two devices, plus the fleet-wide parts
    assert body["devices"]["r00020"]["version"] == "1.4.3"
    assert body["devices"]["r00021"] == {
        "phase": "pending",
        "version": None,
        "reachable": False,
        "target": None,
    }
    assert body["devices"] == expected_devices(book.snapshot(state, ()))


def test_after_transitions_the_dashboard_reads_only_the_moved_devices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, book, state = reads_per_snapshot(400)
    read = CountingEncoder(statusbook._summary_key)  # counts the entries it looks at
    monkeypatch.setattr(statusbook, "_summary_key", read)
    for name in ("r00010", "r00020"):
        book.transition(Transition(name, "pending", "precheck", state.revision, "canary", NOW))
        book.snapshot(state, ())  # each transition submits a snapshot
    book.transition(Transition("r00010", "precheck", "backup", state.revision, "canary", NOW))
    body = json.loads(book.summary_json(state, ()))
    assert read.calls == 2, read.calls  # not the 400 devices
    assert body["devices"] == expected_devices(book.snapshot(state, ()))
    assert body["devices"]["r00010"]["phase"] == "backup"
    assert body["devices"]["r00020"]["phase"] == "precheck"


async def test_an_observation_is_indexed_in_a_thread_and_no_transition_is_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After an observation the daemon has every entry built in a worker thread. Until
    they are in, snapshots show the entries from before it, with a device that moved
    meanwhile built anew on the loop; the thread read that device before it moved, so the
    next snapshot builds it again from its newest phase."""
    _, book, state = reads_per_snapshot(400)
    loop_thread = threading.get_ident()
    on_loop = [0]
    real_row = StatusBook._device_row

    def row(self: StatusBook, name: str, desired: DesiredState) -> Any:
        on_loop[0] += threading.get_ident() == loop_thread
        return real_row(self, name, desired)

    built, release = threading.Event(), threading.Event()
    real_rebuild = StatusBook._rebuild

    def rebuild(self: StatusBook, *args: Any) -> Any:
        done = real_rebuild(self, *args)
        built.set()
        release.wait(10)
        return done

    monkeypatch.setattr(StatusBook, "_device_row", row)
    monkeypatch.setattr(StatusBook, "_rebuild", rebuild)
    observed = {n: facts(n, "1.4.2", rtt_ms=3.0) for n in state.devices}
    observed["r00020"] = facts("r00020", "1.4.3")
    book.observed(observed, state)
    indexing = asyncio.create_task(book.reindex(state))
    assert await asyncio.to_thread(built.wait, 10)  # every entry built, r00010 pending

    book.transition(Transition("r00010", "pending", "precheck", state.revision, "canary", NOW))
    during = book.snapshot(state, ())
    assert during.devices[10].phase == "precheck"
    assert during.devices[20].facts is not None and during.devices[20].facts.version == "1.4.2"
    assert on_loop[0] == 1, on_loop  # the moved device only

    release.set()
    await indexing
    after = book.snapshot(state, ())
    assert after.devices[10].phase == "precheck"  # not the thread's older entry
    assert after.devices[20].facts is not None and after.devices[20].facts.version == "1.4.3"
    assert on_loop[0] == 2, on_loop  # the moved device once more; 399 in the thread
    assert json.loads(book.summary_json(state, ()))["devices"] == expected_devices(after)


async def test_a_dashboard_join_of_every_device_is_made_in_the_thread_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Entries were built (a ``/metrics`` scrape) but the dashboard never joined them: its
    first join would encode every device on the loop, so the reindex encodes them in the
    thread; the next ``GET /`` encodes only the fleet-wide parts."""
    state, plan = fleet(400)
    book = StatusBook()
    book.desired(state.revision)
    book.observed({n: facts(n, "1.4.2") for n in state.devices}, state)
    book.planned(plan, RolloutProgress())
    book.snapshot(state, ())
    book.observed({n: facts(n, "1.4.2", rtt_ms=3.0) for n in state.devices}, state)
    loop_thread = threading.get_ident()
    on_loop = [0]
    real = statusbook._encode

    def encode(value: Any) -> Any:
        on_loop[0] += threading.get_ident() == loop_thread
        return real(value)

    monkeypatch.setattr(statusbook, "_encode", encode)
    await book.reindex(state)
    body = json.loads(book.summary_json(state, ()))
    assert on_loop[0] <= 2, on_loop
    assert body["devices"] == expected_devices(book.snapshot(state, ()))
