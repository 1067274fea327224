"""Test helpers around the VyOS simulator.

In-process (fast, direct access to device state)::

    from tests.support.simulator import running_simulator

    async with running_simulator(4, releases=["1.4"]) as fleet:
        url = fleet.url("r0001")            # http://127.0.0.1:PORT/r0001
        fleet.api_key                       # the key every device accepts
        dev = fleet.device("r0001")         # a VirtualDevice: images, default, running ...
        dev.faults.unreachable = True       # inject a fault (see simulator.device.Faults)
        dev.calls, dev.image_ops_max, dev.log   # counters and the event log
        fleet.endpoint("r0001")             # a devices.Endpoint for the client
        fleet.device_docs()                 # kind: Device models for the fleet

Defaults suit tests: no latency, unlimited bandwidth, 50 ms boot, seed 0.

As a separate process (benchmarks, crash-safety harness)::

    async with simulator_process(1000, latency=0.1) as proc:
        proc.url("r0001"), proc.port, proc.api_key

``simulator_process`` runs ``python -m reconciler.cli sim``, waits for its ``ready`` line and
kills it on exit. Its state is read through the control API (``/_sim/devices/<name>``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from reconciler.devices.endpoint import Endpoint
from reconciler.model.kinds import Device
from reconciler.simulator.device import VirtualDevice
from reconciler.simulator.fleet import fleet_documents, make_fleet
from reconciler.simulator.process import SIM_KEY, SimProcess, iso_server, simulator_process
from reconciler.simulator.server import SimSettings, Simulator

__all__ = [
    "SIM_KEY",
    "SimFleet",
    "SimProcess",
    "iso_server",
    "running_simulator",
    "simulator_process",
]

KEY_ENV = "VYOS_API_KEY_SIM"


@dataclass
class SimFleet:
    """A running in-process simulator."""

    sim: Simulator

    @property
    def api_key(self) -> str:
        """The key every device accepts."""
        return self.sim.settings.api_key

    @property
    def names(self) -> list[str]:
        """Device names in fleet order."""
        return list(self.sim.order)

    def url(self, name: str) -> str:
        """Base URL of one device's API."""
        return self.sim.base_url(name)

    def device(self, name: str) -> VirtualDevice:
        """The live state of one device."""
        return self.sim.device(name)

    def endpoint(self, name: str) -> Endpoint:
        """A client endpoint for one device."""
        return Endpoint(name=name, base_url=self.url(name), api_key=self.api_key)

    def endpoints(self) -> list[Endpoint]:
        """Client endpoints for every device."""
        return [self.endpoint(n) for n in self.names]

    def device_docs(self, key_env: str = KEY_ENV) -> list[Device]:
        """``kind: Device`` models pointing at this simulator."""
        docs = fleet_documents(list(self.sim.devices.values()), self.url, key_env=key_env)
        return [Device.model_validate(d) for d in docs]


@asynccontextmanager
async def running_simulator(
    count: int = 3,
    *,
    devices: Sequence[VirtualDevice] | None = None,
    releases: Sequence[str] | None = None,
    seed: int = 0,
    latency: float = 0.0,
    bandwidth: float = 0.0,
    boot_seconds: float = 0.05,
    upstream_timeout: float = 600.0,
    hang_seconds: float = 30.0,
    api_key: str = SIM_KEY,
) -> AsyncIterator[SimFleet]:
    """Start a simulator on a free 127.0.0.1 port in this event loop."""
    fleet = (
        list(devices) if devices is not None else make_fleet(count, seed=seed, releases=releases)
    )
    settings = SimSettings(
        api_key=api_key,
        latency=latency,
        bandwidth=bandwidth,
        boot_seconds=boot_seconds,
        upstream_timeout=upstream_timeout,
        hang_seconds=hang_seconds,
        seed=seed,
    )
    sim = Simulator(fleet, settings)
    await sim.start("127.0.0.1", 0)
    try:
        yield SimFleet(sim)
    finally:
        await sim.stop()
