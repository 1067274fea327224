"""Crash safety: SIGKILL the rollout process at 20 random points and restart it each time.

The simulator runs in its own process, so device work (an image add, a reboot) carries on
while the rollout process is dead, as on real routers. Afterwards every device must run
its target, with at most one image add per device and hop, exactly one reboot per hop (no
needless reboot) and never two image operations at once.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from reconciler.simulator.iso import build_iso, iso_file_name
from tests.support.rollout import TARGET, make_device, make_plan, make_policy
from tests.support.simulator import iso_server, simulator_process

ROOT = Path(__file__).resolve().parents[2]
KILLS = 20
LTS_HOP = "1.4.4"


async def _snapshot(http: httpx.AsyncClient, base: str, name: str) -> dict[str, Any]:
    answer = await http.get(f"{base}/_sim/devices/{name}", timeout=10)
    state: dict[str, Any] = answer.json()
    return state


async def test_sigkill_at_random_points(tmp_path: Path) -> None:
    rng = random.Random(20260105)
    isos = {
        iso_file_name(v, arch): build_iso(v, arch, size=4096)
        for v in (LTS_HOP, TARGET)
        for arch in ("amd64", "arm64")
    }
    sim_args = ["--release", "1.4", "--release", "rolling", "--boot-seconds", "0.4",
                "--bandwidth", "0.016"]  # fmt: skip  # a 4 KiB ISO downloads in ~0.25 s
    async with (
        simulator_process(16, extra_args=sim_args) as sim,
        iso_server(isos) as iso_base,
        httpx.AsyncClient() as http,
    ):
        base = f"http://127.0.0.1:{sim.port}"
        states = {n: await _snapshot(http, base, n) for n in sim.names}
        devices = [make_device(n, images=s["images"]) for n, s in states.items()]
        paths = {d.name: ([LTS_HOP, TARGET] if d.running.startswith("1.4") else [TARGET])
                 for d in devices}  # fmt: skip
        waves = {d.name: (0 if i == 0 else 1) for i, d in enumerate(devices)}
        groups = {d.name: f"pair-{i // 2}" for i, d in enumerate(devices)}
        plan = make_plan("rev1", "fleet", devices, waves=waves, paths=paths, groups=groups)
        policy = make_policy(strategy={"canary": 1, "waves": [100], "maxParallel": 2,
                                       "maxUnavailable": 2, "pause": "0s"})  # fmt: skip
        job = {
            "sim": base,
            "key": sim.api_key,
            "iso": iso_base,
            "arch": {n: s["arch"] for n, s in states.items()},
            "journal": str(tmp_path / "journal.sqlite"),
            "backups": str(tmp_path / "backups"),
            "backup_key": base64.b64encode(os.urandom(32)).decode(),
            "policy": policy.model_dump(mode="json"),
            "plan": plan.model_dump(mode="json"),
            "settings": {"boot_timeout": 20, "boot_poll": 0.05, "stage_timeout": 5,
                         "stage_poll": 0.05, "window_poll": 1},
        }  # fmt: skip
        job_file = tmp_path / "job.json"
        job_file.write_text(json.dumps(job))

        async def start() -> asyncio.subprocess.Process:
            return await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.support.rollout", str(job_file),
                cwd=ROOT, stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip

        kills = 0
        while kills < KILLS:
            proc = await start()
            try:
                await asyncio.wait_for(proc.wait(), rng.uniform(0.3, 1.2))
            except TimeoutError:
                proc.send_signal(signal.SIGKILL)
                await proc.wait()
                kills += 1
            else:
                break  # it finished before this kill: nothing left to interrupt
        proc = await start()
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        summary = json.loads(out.decode().strip().splitlines()[-1])
        assert proc.returncode == 0 and summary["complete"], summary
        assert kills == KILLS, f"only {kills} kills landed before the rollout finished"

        for name, path in paths.items():
            state = await _snapshot(http, base, name)
            assert state["running"] == TARGET, (name, state["log"])
            adds = Counter(e["url"].rsplit("/", 1)[-1] for e in state["log"]
                           if e["event"] == "image-add")  # fmt: skip
            assert len(adds) == len(path) and max(adds.values()) == 1, (name, adds)
            reboots = [e for e in state["log"] if e["event"] == "reboot"]
            assert len(reboots) == len(path), (name, state["log"])
            assert state["image_ops_max"] <= 1
