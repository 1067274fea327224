"""Test helpers for the rollout engine on the simulator, and a rollout process for the
crash-safety harness (``python -m tests.support.rollout JOB.json``).

The simulator runs on the event loop's real time (its boot time is 50 ms), so these tests
use :class:`ScaledClock`: real time, scaled. One real second is ``scale`` engine seconds,
so the engine's production defaults (15 min boot timeout, 10 s polls, 1 min window polls)
run in milliseconds, while ``now()`` walks through maintenance windows at the same pace.
A :class:`~reconciler.clock.FakeClock` cannot drive a live simulator: autojump would turn
every poll into a busy loop that outruns the device.

:class:`Rig` starts the simulator, a loopback ISO server, the device clients and the
engine with a journal and backup store in a temporary directory.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from reconciler.clock import SystemClock
from reconciler.devices.client import ClientSettings, VyOSClient
from reconciler.devices.endpoint import Endpoint
from reconciler.model.kinds import RolloutPolicy
from reconciler.planning.plan import Action, Hop, Plan, PlannedDevice
from reconciler.rollout import (
    BackupKey,
    BackupStore,
    Journal,
    RolloutEngine,
    RolloutResult,
    RolloutSettings,
    Transition,
)
from reconciler.simulator.device import VirtualDevice
from reconciler.simulator.iso import build_iso, iso_file_name
from tests.support.simulator import SimFleet, iso_server, running_simulator

__all__ = [
    "NIGHT",
    "OLD",
    "OLDER",
    "TARGET",
    "Rig",
    "ScaledClock",
    "make_device",
    "make_plan",
    "make_policy",
    "rig",
    "run_job",
]

OLDER = "1.5-rolling-202410230007"
OLD = "2025.01.10-0020-rolling"
TARGET = "2025.02.01-0020-rolling"
# A Saturday night; windows in the tests open at 02:00 UTC.
NIGHT = datetime(2026, 1, 3, 1, 0, tzinfo=UTC)


class ScaledClock:
    """Real loop time, ``scale`` times faster, starting at ``start``."""

    def __init__(self, start: datetime = NIGHT, scale: float = 600.0) -> None:
        self.start = start
        self.scale = scale
        # The loop itself, not the running one: the daemon reads the clock in worker threads.
        self._loop = asyncio.get_running_loop()
        self._t0 = self._loop.time()

    def monotonic(self) -> float:
        """Engine seconds since the clock was made."""
        return (self._loop.time() - self._t0) * self.scale

    def now(self) -> datetime:
        """``start`` plus the scaled elapsed time."""
        return self.start + timedelta(seconds=self.monotonic())

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` engine seconds."""
        await asyncio.sleep(max(0.0, seconds) / self.scale)

    def at(self, loop_time: float) -> datetime:
        """This clock's time at an event loop time (the simulator logs those)."""
        return self.start + timedelta(seconds=(loop_time - self._t0) * self.scale)


def make_device(name: str, images: Sequence[str] = (OLDER, OLD)) -> VirtualDevice:
    """A healthy virtual device running the last of ``images``, with one BGP peer."""
    return VirtualDevice(
        name=name,
        arch="amd64",
        flavor="generic",
        images=list(images),
        default=images[-1],
        running=images[-1],
        config={"system": {"host-name": name}},
        bgp_peers=[("192.0.2.1", 64_512)],
    )


def make_policy(name: str = "fleet", **spec: Any) -> RolloutPolicy:
    """A RolloutPolicy; ``spec`` overrides the defaults (always-open window, no pause)."""
    base: dict[str, Any] = {
        "selector": {},
        "target": {"version": TARGET},
        "strategy": {"canary": 1, "waves": [100], "maxParallel": 5, "maxUnavailable": 5,
                     "pause": "0s"},
        "windows": [{"type": "allow", "schedule": "0 0 * * *", "duration": "24h"}],
    }  # fmt: skip
    return RolloutPolicy.model_validate(
        {"apiVersion": "gitfirm.io/v1", "kind": "RolloutPolicy", "metadata": {"name": name},
         "spec": base | spec}
    )  # fmt: skip


def make_plan(
    revision: str,
    policy: str,
    devices: Sequence[VirtualDevice],
    *,
    waves: Mapping[str, int],
    paths: Mapping[str, Sequence[str]] | None = None,
    groups: Mapping[str, str] | None = None,
    unreachable: Sequence[str] = (),
) -> Plan:
    """A Plan moving each device along its path (default: straight to TARGET)."""
    planned = []
    order: dict[int, int] = {}
    for dev in devices:
        path = list((paths or {}).get(dev.name, [TARGET]))
        wave = waves[dev.name]
        order[wave] = order.get(wave, 0) + 1
        action = Action.UNREACHABLE if dev.name in unreachable else Action.UPGRADE
        planned.append(
            PlannedDevice(
                name=dev.name,
                site="ams",
                policy=policy,
                redundancy_group=(groups or {}).get(dev.name),
                platform="amd64/generic",
                current_version=dev.running,
                target_version=path[-1],
                target_image=f"img-{path[-1]}",
                path=tuple(Hop(image=f"img-{v}", version=v, channel="testing") for v in path),
                action=action,
                wave=wave,
                order=order[wave],
            )
        )
    return Plan(revision=revision, now=NIGHT, observed=True, devices=tuple(planned), policies=())


@dataclass
class Rig:
    """Everything one rollout test needs, wired like the daemon wires it."""

    fleet: SimFleet
    engine: RolloutEngine
    clock: ScaledClock
    journal: Journal
    backups: BackupStore
    clients: dict[str, VyOSClient]
    events: list[Transition] = field(default_factory=list)

    def device(self, name: str) -> VirtualDevice:
        """A live simulated device."""
        return self.fleet.device(name)

    async def run(self, policy: RolloutPolicy, plan: Plan, **kw: Any) -> RolloutResult:
        """One engine run, bounded in time."""
        return await asyncio.wait_for(self.engine.run(policy, plan, **kw), 60)

    def adds(self, name: str) -> list[dict[str, Any]]:
        """The image adds the device executed."""
        return [e for e in self.device(name).log if e["event"] == "image-add"]

    def reboots(self, name: str) -> list[dict[str, Any]]:
        """The reboots the device executed."""
        return [e for e in self.device(name).log if e["event"] == "reboot"]


@asynccontextmanager
async def rig(
    tmp: Path,
    devices: Sequence[VirtualDevice],
    *,
    versions: Sequence[str] = (TARGET,),
    clock: ScaledClock | None = None,
    settings: RolloutSettings | None = None,
    boot_seconds: float = 0.05,
) -> AsyncIterator[Rig]:
    """Start simulator, ISO server, clients and engine; stop them all on exit."""
    isos = {iso_file_name(v): build_iso(v, size=1024) for v in versions}
    clk = clock or ScaledClock()
    async with (
        running_simulator(devices=devices, boot_seconds=boot_seconds) as fleet,
        iso_server(isos) as base,
        httpx.AsyncClient() as http,
    ):
        client_settings = ClientSettings(timeout=5.0, read_attempts=1)
        clients: dict[str, VyOSClient] = {
            d.name: VyOSClient(
                Endpoint(d.name, fleet.url(d.name), fleet.api_key), http,
                settings=client_settings, clock=clk,
            )
            for d in devices
        }  # fmt: skip

        def image_url(device: str, image: str) -> str:
            return f"{base}/{iso_file_name(image.removeprefix('img-'))}"

        journal = Journal(tmp / "journal.sqlite")
        backups = BackupStore(tmp / "backups", BackupKey(os.urandom(32)))
        events: list[Transition] = []
        engine = RolloutEngine(
            journal=journal, backups=backups, clients=clients.__getitem__,
            image_url=image_url, clock=clk, settings=settings, events=events.append,
            secrets=(fleet.api_key,),
        )  # fmt: skip
        try:
            yield Rig(fleet, engine, clk, journal, backups, clients, events)
        finally:
            journal.close()


def run_job(path: Path) -> int:
    """Run one rollout described by a job file against a simulator in another process.

    The job (JSON) names the simulator, API key, ISO server, device architectures, journal
    and backup paths, the policy, the plan and compressed engine settings. Prints one JSON
    line with the result; exits 0 when the rollout completed.
    """
    job = json.loads(path.read_text())

    async def main() -> RolloutResult:
        clock = SystemClock()
        policy = RolloutPolicy.model_validate(job["policy"])
        plan = Plan.model_validate(job["plan"])
        settings = RolloutSettings.model_validate(job["settings"])

        def image_url(device: str, image: str) -> str:
            version = image.removeprefix("img-")
            return f"{job['iso']}/{iso_file_name(version, job['arch'][device])}"

        async with httpx.AsyncClient() as http:
            client_settings = ClientSettings(timeout=5.0, read_attempts=1)
            clients = {
                name: VyOSClient(Endpoint(name, f"{job['sim']}/{name}", job["key"]), http,
                                 settings=client_settings, clock=clock)
                for name in job["arch"]
            }  # fmt: skip
            journal = Journal(Path(job["journal"]))
            key = BackupKey(base64.b64decode(job["backup_key"]))
            engine = RolloutEngine(
                journal=journal, backups=BackupStore(Path(job["backups"]), key),
                clients=clients.__getitem__, image_url=image_url, clock=clock,
                settings=settings, secrets=(job["key"],),
            )  # fmt: skip
            try:
                return await engine.run(policy, plan)
            finally:
                journal.close()

    result = asyncio.run(main())
    summary = {
        "complete": result.complete,
        "halted": result.halted,
        "reason": result.reason,
        "outcomes": {n: o.status.value for n, o in sorted(result.outcomes.items())},
    }
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0 if result.complete else 3


if __name__ == "__main__":
    sys.exit(run_job(Path(sys.argv[1])))
