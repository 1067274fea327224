"""Running the simulator as a program (``gitfirm sim``): options, start-up and serve-forever.

:class:`SimOptions` is everything the command line can say; :func:`serve` builds the fleet,
applies the fault flags, writes the fleet documents if asked, prints one ``ready`` line on
stdout (a JSON object with the port and device count, so a parent process can wait for it)
and serves until cancelled.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.simulator.fleet import fleet_documents, make_fleet, write_fleet
from reconciler.simulator.server import SimSettings, Simulator

__all__ = ["SimOptions", "build", "parse_fault", "serve"]


@dataclass(frozen=True)
class SimOptions:
    """What ``gitfirm sim`` was asked for."""

    devices: int
    host: str
    port: int
    settings: SimSettings
    per_device_ports: bool = False
    write_fleet: Path | None = None
    key_env: str = "VYOS_API_KEY_SIM"
    releases: tuple[str, ...] = ()
    faults: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per device name, the :class:`Faults` fields to set (``*`` means every device)."""


def parse_fault(text: str) -> tuple[str, dict[str, Any]]:
    """Parse ``DEVICE:FAULT[=VALUE]`` (``*`` for every device); VALUE is JSON or a string,
    absent means true. E.g. ``r0003:unreachable``, ``*:slow_seconds=2``,
    ``r0001:boot_failure=revert``."""
    device, sep, rest = text.partition(":")
    if not sep or not device or not rest:
        raise ValueError(f"bad fault {text!r}: expected DEVICE:FAULT[=VALUE]")
    name, eq, raw = rest.partition("=")
    value: Any = True
    if eq:
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
    return device, {name: value}


def build(options: SimOptions) -> Simulator:
    """The simulator with its fleet and injected faults (not yet listening)."""
    fleet = make_fleet(
        options.devices, seed=options.settings.seed, releases=options.releases or None
    )
    sim = Simulator(fleet, options.settings)
    for name, changes in options.faults.items():
        targets = sim.devices.values() if name == "*" else [sim.device(name)]
        for dev in targets:
            dev.faults.update(changes)
    return sim


async def serve(options: SimOptions) -> None:
    """Start, announce readiness on stdout, and serve until cancelled."""
    sim = build(options)
    port = await sim.start(options.host, options.port, per_device_ports=options.per_device_ports)
    try:
        if options.write_fleet is not None:
            docs = fleet_documents(
                list(sim.devices.values()), sim.base_url, key_env=options.key_env
            )
            write_fleet(options.write_fleet, docs)
        ready = {"ready": True, "port": port, "devices": len(sim.devices)}
        sys.stdout.write(json.dumps(ready) + "\n")
        sys.stdout.flush()
        await asyncio.Event().wait()
    finally:
        await sim.stop()
