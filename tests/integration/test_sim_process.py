"""The simulator as a separate process: ``gitfirm sim --write-fleet`` then ``gitfirm observe``;
and per-device ports."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from pathlib import Path

import httpx

from reconciler.devices.client import VyOSClient
from reconciler.devices.endpoint import Endpoint
from reconciler.devices.transport import make_http_client
from reconciler.model.loader import load_repository
from reconciler.simulator.fleet import make_fleet
from reconciler.simulator.server import SimSettings, Simulator
from tests.support.simulator import SIM_KEY, simulator_process


async def test_sim_fleet_then_observe_json(tmp_path: Path) -> None:
    fleet_file = tmp_path / "repo" / "fleet" / "devices.yaml"
    extra = ["--fault", "r0007:unreachable"]
    async with simulator_process(40, write_fleet=fleet_file, extra_args=extra) as sim:
        loaded = load_repository(tmp_path / "repo")
        assert loaded.state is not None, loaded.errors
        devices = loaded.state.devices
        assert len(devices) == 40
        assert {d.spec.platform.arch for d in devices.values()} == {"amd64", "arm64"}
        assert any(d.spec.redundancyGroup for d in devices.values())
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "reconciler.cli", "observe", str(tmp_path / "repo"),
            "--format", "json",
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "VYOS_API_KEY_SIM": sim.api_key},
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0
    assert SIM_KEY.encode() not in out
    doc = json.loads(out)
    names = [d["name"] for d in doc["devices"]]
    assert names == sorted(names) and len(names) == 40 and "observedAt" in doc
    unreachable = [d["name"] for d in doc["devices"] if not d["reachable"]]
    assert unreachable == ["r0007"]
    assert {d["version"] for d in doc["devices"] if d["reachable"]} >= {"1.4.3"}


def _free_run(count: int) -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            first = int(s.getsockname()[1])
        if first + count < 65_000:
            return first
    raise RuntimeError("no free port")


async def test_per_device_ports_serve_at_root() -> None:
    sim = Simulator(make_fleet(3, seed=2), SimSettings(api_key=SIM_KEY, latency=0))
    for _ in range(10):
        try:
            port = await sim.start("127.0.0.1", _free_run(3), per_device_ports=True)
            break
        except OSError:
            await sim.stop()
    try:
        assert sim.base_url("r0002") == f"http://127.0.0.1:{port + 1}"
        async with make_http_client() as http:
            for name in sim.order:
                endpoint = Endpoint(name=name, base_url=sim.base_url(name), api_key=SIM_KEY)
                assert (await VyOSClient(endpoint, http).version()).version == sim.device(
                    name
                ).running
        async with httpx.AsyncClient() as plain:
            r = await plain.get(f"http://127.0.0.1:{port + 2}/_sim/devices/r0003")
            assert r.json()["name"] == "r0003"
    finally:
        await sim.stop()
