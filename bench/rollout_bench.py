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

Run: ``.venv/bin/python -m bench.rollout_bench``; prints one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.clock import SystemClock
from reconciler.devices.client import ClientSettings, VyOSClient
from reconciler.devices.endpoint import Endpoint
from reconciler.devices.transport import make_http_client
from reconciler.rollout import (
    BackupKey,
    BackupStore,
    Journal,
    OutcomeStatus,
    RolloutEngine,
    RolloutSettings,
)
from reconciler.simulator.fleet import make_fleet
from reconciler.simulator.iso import build_iso, iso_file_name
from tests.support.rollout import TARGET, make_plan, make_policy
from tests.support.simulator import iso_server, simulator_process

DEVICES = 1000
MAX_PARALLEL = 100
DOWNLOAD_SECONDS = 2.0
BOOT_SECONDS = 3.0
ISO_SIZE = 64 * 1024
WAVES = 1


async def bench() -> dict[str, object]:
    """Run the rollout once and measure it."""
    fleet = make_fleet(DEVICES, releases=["rolling"])  # the simulator builds the same fleet
    isos = {iso_file_name(TARGET, a): build_iso(TARGET, a, size=ISO_SIZE)
            for a in ("amd64", "arm64")}  # fmt: skip
    arch = {d.name: d.arch for d in fleet}
    bandwidth_mb = ISO_SIZE / DOWNLOAD_SECONDS / 1_000_000
    sim_args = ["--release", "rolling", "--boot-seconds", str(BOOT_SECONDS),
                "--bandwidth", f"{bandwidth_mb:.9f}"]  # fmt: skip
    policy = make_policy(strategy={"canary": 0, "waves": [100], "maxParallel": MAX_PARALLEL,
                                   "maxUnavailable": MAX_PARALLEL, "pause": "0s"})  # fmt: skip
    plan = make_plan("rev1", "fleet", fleet, waves={d.name: 1 for d in fleet})
    settings = RolloutSettings.model_validate(
        {"boot_poll": 0.2, "boot_timeout": 60, "stage_poll": 0.2, "window_poll": 1}
    )
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
    lower = WAVES * math.ceil(DEVICES / MAX_PARALLEL) * (DOWNLOAD_SECONDS + BOOT_SECONDS)
    return {
        "bench": "rollout",
        "devices": DEVICES,
        "done": done,
        "seconds": round(seconds, 2),
        "lower_bound_seconds": lower,
        "ratio": round(seconds / lower, 3),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(bench())))
