"""Supersede through the whole daemon: a retarget or a suspend pushed mid-rollout.

The edge devices roll to 1.4.4, one at a time. While the second one is between precheck
and its reboot (it answers slowly), a commit retargets the policy to 1.4.5, or suspends
it. From the moment the daemon takes that revision in (its scheduler's control step), the
stale run must not start a device, nor take one it had not yet disrupted to its reboot:
that device goes back to pending with the reason, and only the new run touches it. Judged
by what the simulated routers logged (adds, reboots) and by the daemon's journal.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.daemon import Daemon
from reconciler.rollout.journal import DeviceRecord
from tests.support.daemon import wait_for
from tests.support.scheduling import Stage, fleet_policy, staged_gitops

EDGE: dict[str, Any] = {"selector": {"tier": "edge"}, "maxParallel": 1}
# Phases a device may finish its step in after a retarget: the reboot was sent already.
COMMITTED = frozenset({"await-boot", "verify", "health", "rollback", "verify-rollback"})


@dataclass
class Control:
    """What the journal said, and when, at the moment the daemon took each revision in."""

    at: dict[str, float] = field(default_factory=dict)
    records: dict[str, dict[str, DeviceRecord]] = field(default_factory=dict)


def watch_control(stage: Stage, control: Control, slow: list[str]) -> None:
    """Record each revision's control moment; slow down the second device the daemon
    starts (so it is mid-way when the change lands), and speed it up again at the change."""

    def prepare(daemon: Daemon) -> None:
        original = daemon.scheduler.control

        def observed(revision: str, *args: Any, **kwargs: Any) -> None:
            control.at[revision] = asyncio.get_running_loop().time()
            control.records[revision] = daemon.journal.devices("fleet")
            for name in slow:
                stage.fleet.device(name).faults.slow_seconds = 0.0
            original(revision, *args, **kwargs)

        daemon.scheduler.control = observed  # type: ignore[method-assign]

        def on_transition(event: Any) -> None:
            if event.to_phase == "precheck" and len(stage.starts()) == 2 and not slow:
                slow.append(event.device)
                stage.fleet.device(event.device).faults.slow_seconds = 1.0

        daemon.listeners.append(on_transition)

    stage.prepare = prepare


def committed(record: DeviceRecord | None) -> bool:
    """Whether the device was past its reboot (or had it sent) when the change landed."""
    if record is None:
        return False
    return record.phase in COMMITTED or (
        record.phase == "activate" and record.marker == "reboot-issued"
    )


@pytest.mark.parametrize("change", ["retarget", "suspend"])
async def test_a_change_mid_rollout_supersedes_the_stale_run(tmp_path: Path, change: str) -> None:
    files = {"policies/fleet.yaml": fleet_policy("1.4.3", **EDGE)}
    async with staged_gitops(
        tmp_path,
        files,
        devices=10,
        versions=("1.4.3", "1.4.4", "1.4.5"),
        boot_seconds=0.2,
        start=False,
        groups=False,
    ) as stage:
        # r0000 (tier core) is outside the policy and answers slowly: every observation
        # of the fleet is long, which gives a stale run time to act.
        stage.fleet.device(stage.fleet.names[0]).faults.slow_seconds = 1.0
        control, slow = Control(), list[str]()
        watch_control(stage, control, slow)
        daemon = await stage.start()
        first = stage.merge({"policies/fleet.yaml": fleet_policy("1.4.4", **EDGE)}, "To 1.4.4")
        await wait_for(lambda: len(stage.starts()) >= 2, 90, "the canary and the next device")
        if change == "retarget":
            new = fleet_policy("1.4.5", **EDGE)
        else:
            new = fleet_policy("1.4.4", suspend=True, **EDGE)
        head = stage.merge({"policies/fleet.yaml": new}, change)
        await wait_for(lambda: head in control.at, 60, "the change taken in")
        edge = [
            d.name for d in stage.fleet.device_docs() if d.metadata.labels.get("tier") == "edge"
        ]
        if change == "retarget":
            await wait_for(
                lambda: all(stage.versions()[n] == "1.4.5" for n in edge),
                180,
                "the new target (a device parked for the old one must not stall it)",
            )
        await wait_for(lambda: not daemon.rollouts_running(), 90, "every run to end")
        await daemon.reconcile(None)  # one more full pass: time for a wrong start
        await wait_for(lambda: not daemon.rollouts_running(), 90, "every run to end")

        t0, before = control.at[head], control.records[head]
        (mid,) = slow
        assert not committed(before.get(mid)), f"{mid} was not mid-way at the change"
        for name in edge:
            log = [e for e in stage.fleet.device(name).log if e["at"] >= t0]
            adds = [e for e in log if e["event"] == "image-add"]
            old_boots = [e for e in log if e["event"] == "reboot" and e["image"] == "1.4.4"]
            if not committed(before.get(name)):
                # Nothing of the stale run reaches the router after the change.
                assert old_boots == [], (name, before.get(name), log)
                assert len(adds) <= (1 if change == "retarget" else 0), (name, log)
            boots = [e["image"] for e in stage.fleet.device(name).log if e["event"] == "reboot"]
            assert len(boots) == len(set(boots)), (name, boots)  # never the same reboot twice
        stale = [
            e["device"]
            for e in stage.events("transition")
            if e.get("revision") == first and e["phase"].endswith("->precheck")
            and e["device"] not in before
        ]  # fmt: skip
        assert stale == [], f"the stale run started devices after the change: {stale}"

        # The device stopped mid-way went back to pending, with the reason, then (after
        # a retarget) the new run took it to the new target.
        parked = [
            t for t in daemon.journal.events("fleet", limit=500)
            if t.device == mid and t.to_phase == "pending"
        ]  # fmt: skip
        want = "target changed" if change == "retarget" else "suspended"
        assert parked and want in parked[-1].detail, parked
        record = daemon.journal.device("fleet", mid)
        assert record is not None
        if change == "retarget":
            assert stage.versions()[mid] == "1.4.5" and record.phase == "done"
        else:
            assert stage.versions()[mid] == "1.4.3" and record.phase == "pending"
            assert stage.router_events(mid, "reboot") == 0


async def test_a_device_removed_mid_rollout_is_never_driven(tmp_path: Path) -> None:
    files = {"policies/fleet.yaml": fleet_policy("1.4.3", **EDGE)}
    async with staged_gitops(
        tmp_path, files, devices=10, boot_seconds=0.2, start=False, groups=False
    ) as stage:
        stage.fleet.device(stage.fleet.names[0]).faults.slow_seconds = 1.0  # slow passes
        control, slow = Control(), list[str]()
        watch_control(stage, control, slow)
        daemon = await stage.start()
        stage.merge({"policies/fleet.yaml": fleet_policy("1.4.4", **EDGE)}, "To 1.4.4")
        await wait_for(lambda: len(stage.starts()) >= 2, 90, "the canary and the next device")
        edge = [
            d.name for d in stage.fleet.device_docs() if d.metadata.labels.get("tier") == "edge"
        ]
        gone = [n for n in edge if n not in stage.starts()][-1]  # one nobody started yet
        devices = (stage.work / "fleet" / "devices.yaml").read_text()
        docs = [d for d in yaml.safe_load_all(devices) if d["metadata"]["name"] != gone]
        head = stage.merge(
            {"fleet/devices.yaml": yaml.safe_dump_all(docs, sort_keys=False)}, f"Remove {gone}"
        )
        await wait_for(lambda: head in control.at, 60, "the removal taken in")
        kept = [n for n in edge if n != gone]
        await wait_for(lambda: all(stage.versions()[n] == "1.4.4" for n in kept), 180, "the others")
        await wait_for(lambda: not daemon.rollouts_running(), 90, "every run to end")
        assert stage.fleet.device(gone).log == [], "a removed device was driven"
        roll = daemon.journal.rollout("fleet")
        assert roll is not None and not roll.halted, roll
        failed = [e for e in stage.events("transition") if e["phase"].endswith("->failed")]
        assert failed == [], failed
