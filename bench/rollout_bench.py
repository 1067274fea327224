"""Rollout benchmark: 1,000 simulated devices, ``maxParallel: 100``, 2 s download, 3 s boot.

The simulator runs in its own process (as routers are not in ours); the engine, its
journal (sqlite WAL) and a loopback ISO server run here on the real clock.

Lower bound. The policy is one wave of every device (no canary, no pause, an always-open
window, no health checks beyond the built-in ones). Each device must download its image
(2 s at the simulated bandwidth) and then reboot (3 s) one after the other, so its critical
path is 5 s; API calls take no simulated time (latency 0). With at most ``maxParallel``
devices in flight, no schedule finishes faster than
``waves x ceil(devices / maxParallel) x critical path`` = 1 x 10 x 5 s = 50 s. The ratio
measured / lower bound is the engine's overhead (target: at most 1.10).

Time scale. The simulated download and boot stand for a real one-minute download and a
90-second boot, :data:`TIME_SCALE` (30) times faster; the engine's poll intervals and
timeouts are its defaults divided by the same factor, so the bench is a real rollout in
fast motion. The factor and the resulting intervals are printed with every line.

Checks: every device must end ``done`` and the rollout must neither halt nor stop, or the
bench fails. It runs 3 times and prints min, median and max of ``seconds`` and ``ratio``.

Run: ``.venv/bin/python -m bench.rollout_bench``.
"""

from __future__ import annotations

import asyncio
import math
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import RUNS, emit, fail, summarize
from reconciler.clock import SystemClock
from reconciler.devices.client import ClientSettings, VyOSClient
from reconciler.devices.endpoint import Endpoint
from reconciler.devices.transport import make_http_client
from reconciler.model.kinds import RolloutPolicy
from reconciler.planning.plan import Action, Hop, Plan, PlannedDevice
from reconciler.rollout import (
    BackupKey,
    BackupStore,
    Journal,
    OutcomeStatus,
    RolloutEngine,
    RolloutSettings,
)
from reconciler.simulator.device import VirtualDevice
from reconciler.simulator.fleet import make_fleet
from reconciler.simulator.iso import build_iso, iso_file_name
from reconciler.simulator.process import iso_server, simulator_process

DEVICES = 1000
MAX_PARALLEL = 100
DOWNLOAD_SECONDS = 2.0
BOOT_SECONDS = 3.0
ISO_SIZE = 64 * 1024
WAVES = 1
TARGET = "2025.02.01-0020-rolling"
TIME_SCALE = 30.0
"""Real seconds per simulated second: a 60 s download and a 90 s boot become 2 s and 3 s."""
_DEFAULTS = RolloutSettings()
SETTINGS = RolloutSettings(
    boot_timeout=_DEFAULTS.boot_timeout / TIME_SCALE,
    boot_poll=_DEFAULTS.boot_poll / TIME_SCALE,
    stage_timeout=_DEFAULTS.stage_timeout / TIME_SCALE,
    stage_poll=_DEFAULTS.stage_poll / TIME_SCALE,
    window_poll=_DEFAULTS.window_poll / TIME_SCALE,
)
SETTINGS_SHOWN = {
    "time_scale": TIME_SCALE,
    "boot_poll_s": SETTINGS.boot_poll.total_seconds(),
    "stage_poll_s": SETTINGS.stage_poll.total_seconds(),
    "window_poll_s": SETTINGS.window_poll.total_seconds(),
}


def _policy() -> RolloutPolicy:
    strategy = {"canary": 0, "waves": [100], "maxParallel": MAX_PARALLEL,
                "maxUnavailable": MAX_PARALLEL, "pause": "0s"}  # fmt: skip
    spec = {
        "selector": {},
        "target": {"version": TARGET},
        "strategy": strategy,
        "windows": [{"type": "allow", "schedule": "0 0 * * *", "duration": "24h"}],
    }
    return RolloutPolicy.model_validate(
        {"apiVersion": "gitfirm.io/v1", "kind": "RolloutPolicy",
         "metadata": {"name": "fleet"}, "spec": spec}
    )  # fmt: skip


def _plan(devices: list[VirtualDevice]) -> Plan:
    """Every device straight to TARGET in one wave, as the planner would plan it."""
    hop = Hop(image=f"img-{TARGET}", version=TARGET, channel="testing")
    planned = tuple(
        PlannedDevice(
            name=d.name,
            site="ams",
            policy="fleet",
            redundancy_group=None,
            platform=f"{d.arch}/generic",
            current_version=d.running,
            target_version=TARGET,
            target_image=hop.image,
            path=(hop,),
            action=Action.UPGRADE,
            wave=1,
            order=i + 1,
        )
        for i, d in enumerate(devices)
    )
    now = datetime.now(UTC)
    return Plan(revision="rev1", now=now, observed=True, devices=planned, policies=())


async def bench() -> dict[str, Any]:
    """Run the rollout once and measure it."""
    fleet = make_fleet(DEVICES, releases=["rolling"])  # the simulator builds the same fleet
    isos = {iso_file_name(TARGET, a): build_iso(TARGET, a, size=ISO_SIZE)
            for a in ("amd64", "arm64")}  # fmt: skip
    arch = {d.name: d.arch for d in fleet}
    bandwidth_mb = ISO_SIZE / DOWNLOAD_SECONDS / 1_000_000
    sim_args = ["--release", "rolling", "--boot-seconds", str(BOOT_SECONDS),
                "--bandwidth", f"{bandwidth_mb:.9f}"]  # fmt: skip
    policy, plan, settings = _policy(), _plan(fleet), SETTINGS
    with tempfile.TemporaryDirectory() as tmp:
        async with (
            simulator_process(DEVICES, extra_args=sim_args) as sim,
            iso_server(isos) as iso_base,
            make_http_client(max_connections=4 * MAX_PARALLEL) as http,
        ):
            clock = SystemClock()
            client_settings = ClientSettings(timeout=30.0, read_attempts=1)
            clients = {
                n: VyOSClient(Endpoint(n, sim.url(n), sim.api_key), http,
                              settings=client_settings, clock=clock)
                for n in arch
            }  # fmt: skip
            journal = Journal(Path(tmp) / "journal.sqlite")
            engine = RolloutEngine(
                journal=journal,
                backups=BackupStore(Path(tmp) / "backups", BackupKey(os.urandom(32))),
                clients=clients.__getitem__,
                image_url=lambda d, i: f"{iso_base}/{iso_file_name(TARGET, arch[d])}",
                clock=clock, settings=settings, secrets=(sim.api_key,),
            )  # fmt: skip
            started = time.perf_counter()
            result = await engine.run(policy, plan)
            seconds = time.perf_counter() - started
            journal.close()
    done = sum(1 for o in result.outcomes.values() if o.status is OutcomeStatus.DONE)
    if result.halted or not result.complete or done != DEVICES:
        fail(f"rollout: {done} of {DEVICES} devices done (halted: {result.reason or 'no'})")
    lower = WAVES * math.ceil(DEVICES / MAX_PARALLEL) * (DOWNLOAD_SECONDS + BOOT_SECONDS)
    return {
        "done": done,
        "seconds": round(seconds, 2),
        "lower_bound_seconds": lower,
        "ratio": round(seconds / lower, 3),
    }


def main() -> None:
    """Three rollouts, each on a fresh simulator and journal."""
    fixed = {"bench": "rollout", "devices": DEVICES, **SETTINGS_SHOWN}
    runs = []
    for run in range(1, RUNS + 1):
        runs.append(asyncio.run(bench()))
        emit({**fixed, "run": run, **runs[-1]})
    for line in summarize(runs, ("seconds", "ratio"), **fixed):
        emit(line)


if __name__ == "__main__":
    main()
