"""Device safety through the whole daemon: real git, the simulator, restarts.

The canary loses its BGP session after its upgrade (a simulator fault). The daemon is
SIGKILLed while the canary waits for its boot or sits in its health gate; a fresh daemon
on the same state dir must resume the canary at its journalled phase, run the health gate,
roll the canary back, halt, and upgrade nobody else.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from reconciler.planning.progress import Phase
from reconciler.rollout.model import Transition
from tests.support.daemon import (
    ALWAYS_OPEN,
    config_files,
    free_port,
    make_daemon,
    policy_yaml,
    wait_for,
)
from tests.support.gitrepo import seeded_remote
from tests.support.rollout import OLD, OLDER, TARGET, make_device
from tests.support.safety import daemon_process, journal_phases, upgraded
from tests.support.simulator import KEY_ENV, running_simulator

# Established peers print two numbers before N/A; a peer that is down prints "Active 0".
ESTABLISHED = r"\s\d+\s+\d+\s+N/A$"


def bgp_policy(**spec: object) -> str:
    """A policy to TARGET, one device at a time, with a BGP health gate."""
    doc = yaml.safe_load(policy_yaml(TARGET, window=ALWAYS_OPEN, maxParallel=1))
    doc["spec"]["healthChecks"] = [
        {"name": "bgp", "show": ["ip", "bgp", "summary"], "expect": ESTABLISHED,
         "initialDelay": "2s", "interval": "1s", "timeout": "20s", "failureThreshold": 1},
    ]  # fmt: skip
    doc["spec"].update(spec)
    return yaml.safe_dump(doc, sort_keys=False)


@pytest.mark.parametrize("phase", ["await-boot", "health"])
async def test_restart_runs_the_health_gate_and_rolls_back(tmp_path: Path, phase: str) -> None:
    devices = [make_device(f"r{i}") for i in range(4)]
    for d in devices:
        d.faults.degrade_after_upgrade = True  # whichever device is the canary
    async with running_simulator(devices=devices, boot_seconds=2.0) as fleet:
        files, _ = config_files(tmp_path / "upstream", fleet, [OLD, TARGET])
        files["policies/fleet.yaml"] = bgp_policy()
        remote, _ = seeded_remote(tmp_path / "git", files)
        state, port = tmp_path / "state", free_port()
        env = {KEY_ENV: fleet.api_key}
        job = {"remote": str(remote), "state_dir": str(state), "port": port, "environ": env}
        async with daemon_process(job, tmp_path / "job.json") as first:
            await wait_for(lambda: phase in journal_phases(state).values(), 60, phase)
            first.kill()  # SIGKILL: no step finishes, nothing is flushed
            await first.wait()
        canary = next(n for n, p in journal_phases(state).items() if p == phase)
        assert fleet.device(canary).running in (OLD, TARGET)

        logs = io.StringIO()
        daemon = make_daemon(remote, state, port, env, logs, poll_interval=0.2,
                             status_coalesce=0)  # fmt: skip
        stop = asyncio.Event()
        task = asyncio.create_task(daemon.run(stop))
        try:
            await wait_for(
                lambda: journal_phases(state).get(canary) == Phase.FAILED or task.done(),
                60,
                "the canary's health gate after the restart",
            )
            record = daemon.journal.device("fleet", canary)
            assert record is not None and "health check failed" in record.last_error, record
            assert record.marker == "rolled-back"
            assert fleet.device(canary).running == OLD
            roll = daemon.journal.rollout("fleet")
            assert roll is not None and roll.halted
            # Let a few more passes run: nobody else is touched.
            for _ in range(3):
                await daemon.reconcile(None)
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)
        for name in fleet.names:
            adds = [e for e in fleet.device(name).log if e["event"] == "image-add"]
            assert len(adds) == (1 if name == canary else 0), (name, adds)
        assert empty_runs(logs.getvalue()) == 0, "a run with nothing to do"


def empty_runs(log: str) -> int:
    """Rollout runs in a daemon's JSON log that ended without moving any device."""
    empty, moved = 0, None
    for event in (json.loads(line) for line in log.splitlines() if line.strip()):
        kind = event.get("event")
        if kind == "rollout-start":
            moved = False
        elif kind == "transition":
            moved = True
        elif kind == "rollout-end" and moved is False:
            empty += 1
    return empty


async def test_config_changed_after_the_add_survives_and_old_images_go(tmp_path: Path) -> None:
    # Staged early (1.5+), activated later: an operator changes the config in between.
    devices = [make_device(f"r{i}") for i in range(3)]
    sick = devices[2]
    sick.bgp_down = True  # unhealthy before the upgrade: precheck refuses it
    async with running_simulator(devices=devices) as fleet:
        files, _ = config_files(tmp_path / "upstream", fleet, [OLD, TARGET])
        files["policies/fleet.yaml"] = bgp_policy()
        remote, _ = seeded_remote(tmp_path / "git", files)
        state = tmp_path / "state"
        daemon = make_daemon(remote, state, free_port(), {KEY_ENV: fleet.api_key},
                             io.StringIO(), poll_interval=0.2, status_coalesce=0)  # fmt: skip
        details: dict[tuple[str, str], str] = {}

        def operator(event: Transition) -> None:
            details[(event.device, event.to_phase)] = event.detail
            if event.to_phase == "activate":  # after the add, before the reboot
                fleet.device(event.device).config["system"]["login"] = {"banner": "keep me"}

        daemon.listeners.append(operator)
        stop = asyncio.Event()
        task = asyncio.create_task(daemon.run(stop))
        try:
            healthy = [d.name for d in devices if d is not sick]
            await wait_for(
                lambda: all(journal_phases(state).get(n) == "done" for n in healthy) or task.done(),
                60,
                "the healthy devices' upgrades",
            )
            await wait_for(lambda: journal_phases(state).get(sick.name) == "skipped", 30, "skip")
            record = daemon.journal.device("fleet", sick.name)
            assert record is not None and "unhealthy before the upgrade" in record.last_error
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)
        for name in healthy:
            dev = fleet.device(name)
            assert dev.running == TARGET
            # The change made after the add is running and saved in the new image.
            assert dev.config["system"]["login"] == {"banner": "keep me"}, dev.config
            assert dev.saved_config == dev.config
            assert "config restored" in details[(name, "health")]
            # keepImages 2: the running image and the previous one; the oldest is gone.
            assert sorted(dev.images) == sorted([OLD, TARGET])
            assert "deleted old images: " + OLDER in details[(name, "done")]
        assert fleet.device(sick.name).running == OLD
        assert not [e for e in fleet.device(sick.name).log if e["event"] == "image-add"]

        # The backups the daemon took: listed, shown only on request, and restored.
        r0, cli = fleet.device("r0"), ("--state-dir", str(state))
        code, out, _ = await gitfirm("backup", "list", "r0", *cli)
        assert code == 0 and len(out.splitlines()) == 2, out  # backup + pre-activation
        code, out, err = await gitfirm("backup", "show", "r0", *cli)
        assert code == 1 and not out and err.startswith("error: ") and "--print" in err
        code, out, _ = await gitfirm("backup", "show", "r0", "--print", *cli)
        assert code == 0 and "keep me" in out
        r0.config["system"] = {"host-name": "broken"}  # someone breaks it
        env = {"GITFIRM_API_KEY": fleet.api_key}
        code, out, err = await gitfirm("backup", "restore", "r0", "--url", fleet.url("r0"),
                                       *cli, env=env)  # fmt: skip
        assert code == 0, err
        assert r0.config["system"]["login"] == {"banner": "keep me"}
        assert r0.saved_config == r0.config
        code, _, err = await gitfirm("backup", "restore", "r0", "--at", "2000-01-01T00:00:00",
                                     "--url", fleet.url("r0"), *cli, env=env)  # fmt: skip
        assert code == 1 and err.startswith("error: no backup of r0 at")
        assert fleet.api_key not in err


async def gitfirm(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run ``gitfirm ARGS`` as a process (the simulator keeps serving meanwhile)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reconciler.cli", *args, env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(), err.decode()


@pytest.mark.parametrize("on_unreachable", [None, "rollback", "pause"])
async def test_canary_silent_after_its_boot(tmp_path: Path, on_unreachable: str | None) -> None:
    # None: the policy does not say, and the default (rollback) applies.
    rollback = {} if on_unreachable is None else {"rollback": {"onUnreachable": on_unreachable}}
    devices = [make_device(f"r{i}") for i in range(3)]
    async with running_simulator(devices=devices) as fleet:
        files, _ = config_files(tmp_path / "upstream", fleet, [OLD, TARGET])
        files["policies/fleet.yaml"] = bgp_policy(**rollback)
        remote, _ = seeded_remote(tmp_path / "git", files)
        state = tmp_path / "state"
        daemon = make_daemon(remote, state, free_port(), {KEY_ENV: fleet.api_key},
                             io.StringIO(), poll_interval=0.2, status_coalesce=0)  # fmt: skip

        def silence(event: Transition) -> None:
            # Silent from its health gate on; a rollback finds it answering again.
            if event.to_phase in ("health", "rollback"):
                fleet.device(event.device).faults.unreachable = event.to_phase == "health"

        daemon.listeners.append(silence)
        stop = asyncio.Event()
        task = asyncio.create_task(daemon.run(stop))
        try:
            await wait_for(
                lambda: bool((r := daemon.journal.rollout("fleet")) and r.halted) or task.done(),
                60,
                "the halt",
            )
            (canary,) = daemon.journal.devices("fleet")
            record = daemon.journal.device("fleet", canary)
            assert record is not None and "probe error" in record.last_error, record
            if on_unreachable != "pause":
                assert record.phase is Phase.FAILED and record.marker == "rolled-back"
                assert fleet.device(canary).running == OLD
            else:  # left for a human, on the new image, and said so
                assert record.phase is Phase.HEALTH and record.marker == "inconclusive"
                assert fleet.device(canary).running == TARGET
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)
        for name in fleet.names:
            adds = [e for e in fleet.device(name).log if e["event"] == "image-add"]
            assert len(adds) == (1 if name == canary else 0), (name, adds)


async def test_old_images_are_deleted_after_the_health_gate(tmp_path: Path) -> None:
    async with upgraded(tmp_path, make_device("r1")) as (fleet, _, details):
        dev = fleet.device("r1")
    assert dev.running == TARGET
    # keepImages 2 (the default): the running image and the previous one stay.
    assert sorted(dev.images) == sorted([OLD, TARGET]), dev.images
    events = [e["event"] for e in dev.log]
    assert events.count("image-delete") == 1
    assert events.index("image-delete") > events.index("booted")
    assert "deleted old images: " + OLDER in details["done"]


async def test_a_rollouts_backups_are_listed_shown_and_restored(tmp_path: Path) -> None:
    async with upgraded(tmp_path, make_device("r1")) as (fleet, state, _):
        dev, cli = fleet.device("r1"), ("--state-dir", str(state))
        code, out, _ = await gitfirm("backup", "list", "r1", *cli)
        assert code == 0 and len(out.splitlines()) == 2, out  # backup + pre-activation
        code, out, _ = await gitfirm("backup", "show", "r1", "--print", *cli)
        assert code == 0 and 'host-name "r1"' in out, out
        dev.config["system"] = {"host-name": "broken"}  # someone breaks it
        env = {"GITFIRM_API_KEY": fleet.api_key}
        code, _, err = await gitfirm("backup", "restore", "r1", "--url", fleet.url("r1"),
                                     *cli, env=env)  # fmt: skip
        assert code == 0, err
        assert dev.config["system"] == {"host-name": "r1"}
        assert dev.saved_config == dev.config
