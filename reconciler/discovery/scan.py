"""A scan: every target probed concurrently, at a bounded rate; finds matched to Devices."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from urllib.parse import urlsplit

import httpx

from reconciler.clock import Clock
from reconciler.discovery.probe import Found, ProbeSettings, probe
from reconciler.model.kinds import Device

__all__ = ["mark_declared", "scan"]


async def scan(
    targets: Sequence[tuple[str, int]],
    *,
    http: httpx.AsyncClient,
    clock: Clock,
    api_key: str | None = None,
    settings: ProbeSettings | None = None,
) -> list[Found]:
    """Probe every (host, port); the routers found, in target order.

    At most ``settings.concurrency`` probes run at once, and a new one starts at most
    ``settings.rate`` times a second (paced by ``clock``). One probe's failure is that
    target's answer (nothing found), never the scan's.
    """
    settings = settings or ProbeSettings()
    gate = asyncio.Semaphore(settings.concurrency)
    spacing = 1.0 / settings.rate
    start = clock.monotonic()

    async def one(index: int, host: str, port: int) -> Found | None:
        async with gate:
            delay = start + index * spacing - clock.monotonic()
            if delay > 0:
                await clock.sleep(delay)
            return await probe(
                host, port, http=http, clock=clock, api_key=api_key, settings=settings
            )

    results = await asyncio.gather(*(one(i, h, p) for i, (h, p) in enumerate(targets)))
    return [f for f in results if f is not None]


def _address_key(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return host, parts.port or (443 if parts.scheme == "https" else 80)


def mark_declared(found: Iterable[Found], devices: Mapping[str, Device]) -> list[Found]:
    """``found`` with ``declared_as`` set where a Device has the same address (host and
    port) or pins the same certificate fingerprint."""
    by_address = {_address_key(str(d.spec.address)): n for n, d in sorted(devices.items())}
    by_pin = {
        d.spec.tls.fingerprint: n for n, d in sorted(devices.items()) if d.spec.tls.fingerprint
    }
    out = []
    for f in found:
        name = by_address.get(_address_key(f.address)) or by_pin.get(f.fingerprint)
        out.append(replace(f, declared_as=name))
    return out
