"""Fleet observation: facts for every device, concurrently, with a bound and a deadline.

An observation of one device is its version (``show version``: version, architecture,
flavor) plus its image list (``show system image``); with ``health=True`` also uptime, load
and memory. API features follow the observed version's branch and build date
(:func:`reconciler.model.features.api_features`), because probing ``GET /info`` would cost
a third call per device on every pass; the client still detects a missing endpoint at the
point of use (404 -> :class:`~reconciler.errors.Unsupported`).

One device's failure is a value: its facts say ``reachable: false`` with a sanitized
``error`` (an observation that failed for any reason, a refused key included, counts as not
reachable, since nothing about the device is known). :func:`observe` never raises for one
device.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from reconciler.clock import Clock, SystemClock
from reconciler.devices.client import ClientSettings, VyOSClient
from reconciler.devices.endpoint import Endpoint
from reconciler.devices.parse import parse_health
from reconciler.errors import summarize
from reconciler.model.facts import DeviceFacts, Health
from reconciler.model.features import api_features

__all__ = ["START_BATCH", "ObserveSettings", "observation_document", "observe", "observe_device"]


@dataclass(frozen=True, slots=True)
class ObserveSettings:
    """How a fleet is observed."""

    concurrency: int = 256
    """Devices observed at once: enough to hide 0.1-1 s per call, few enough for one process."""
    deadline: float = 60.0
    """Seconds one device may take in total (its retries included) before it counts as
    unreachable for this pass."""
    health: bool = False
    """Also read uptime, load and memory (two more calls per device)."""
    client: ClientSettings = field(default_factory=ClientSettings)
    """Settings of each device's client."""


_NO_HEALTH = Health()  # immutable: one shared value when health is not read
START_BATCH = 32
"""Workers that open their first connection in the same turn of the event loop: 256 at
once held the loop for 0.1-0.2 s at the start of every observation of a large fleet."""


async def observe_device(client: VyOSClient, clock: Clock, *, health: bool = False) -> DeviceFacts:
    """Observe one device; raises the client's errors (see :func:`observe` for the fleet)."""
    started = clock.monotonic()
    version = await client.version()
    rtt_ms = (clock.monotonic() - started) * 1000
    images = await client.images()
    found = _NO_HEALTH
    if health:
        found = parse_health(
            await client.show(["system", "uptime"]), await client.show(["system", "memory"])
        )
    return DeviceFacts(
        name=client.name,
        reachable=True,
        observed_at=clock.now(),
        version=version.version,
        architecture=version.architecture,
        flavor=version.flavor,
        images=images,
        health=found,
        features=api_features(version.version),
        rtt_ms=round(rtt_ms, 1),
    )


class _Deadlines:
    """Per-device deadlines for one pass, kept by one periodic check instead of a timer per
    device (``asyncio.timeout`` per device was a third of the observer's own CPU).

    A device's task is listed only while it awaits its observation, so a cancel from the
    check always lands inside that observation, never in a later device's.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._loop = asyncio.get_running_loop()
        self._running: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        # Checked ten times per deadline, at most once every 50 ms and at least every second.
        self._every = max(0.05, min(1.0, seconds / 10))
        self._timer = self._loop.call_later(self._every, self._check)

    def _check(self) -> None:
        now = self._loop.time()
        for task, deadline in self._running.items():
            if now >= deadline and task not in self._expired:
                self._expired.add(task)
                task.cancel()
        self._timer = self._loop.call_later(self._every, self._check)

    def start(self, task: asyncio.Task[Any]) -> None:
        """``task`` begins one device's observation now."""
        self._running[task] = self._loop.time() + self.seconds

    def stop(self, task: asyncio.Task[Any]) -> bool:
        """``task`` is done with its device; True when the check cancelled it."""
        del self._running[task]
        if task in self._expired:
            self._expired.discard(task)
            return True
        return False

    def close(self) -> None:
        """Stop checking (the pass is over)."""
        self._timer.cancel()


async def _observe_one(
    endpoint: Endpoint,
    http: httpx.AsyncClient,
    settings: ObserveSettings,
    clock: Clock,
    deadlines: _Deadlines,
) -> DeviceFacts:
    client = VyOSClient(endpoint, http, settings=settings.client, clock=clock)
    task = asyncio.current_task()
    assert task is not None
    deadlines.start(task)
    try:
        facts = await observe_device(client, clock, health=settings.health)
    except asyncio.CancelledError:
        # Ours alone: report the device; anyone else's cancel goes on up.
        if not deadlines.stop(task) or task.uncancel() > 0:
            raise
        error = f"unreachable: no observation within {settings.deadline:g}s"
    except Exception as e:  # one device must never abort the pass
        deadlines.stop(task)
        summary = summarize(e, (endpoint.api_key,))
        error = f"{summary.reason}: {summary.message}"
    else:
        if deadlines.stop(task):
            task.uncancel()  # the observation finished despite our cancel: forget it
        return facts
    return DeviceFacts(name=endpoint.name, reachable=False, observed_at=clock.now(), error=error)


async def observe(
    endpoints: Iterable[Endpoint],
    http: httpx.AsyncClient,
    *,
    settings: ObserveSettings | None = None,
    clock: Clock | None = None,
) -> dict[str, DeviceFacts]:
    """Facts for every endpoint, keyed by device name, unreachable ones included.

    At most ``settings.concurrency`` devices are in flight; a fixed pool of workers pulls
    from the list, so 10,000 devices cost 256 tasks, not 10,000.
    """
    settings = settings or ObserveSettings()
    clock = clock or SystemClock()
    pending = list(endpoints)
    results: dict[str, DeviceFacts] = {}
    todo = iter(pending)
    deadlines = _Deadlines(settings.deadline)

    async def worker(turns: int) -> None:
        for _ in range(turns):  # start in batches, one turn of the event loop apart
            await asyncio.sleep(0)
        for endpoint in todo:
            results[endpoint.name] = await _observe_one(endpoint, http, settings, clock, deadlines)

    workers = min(settings.concurrency, len(pending))
    try:
        await asyncio.gather(*(worker(i // START_BATCH) for i in range(workers)))
    finally:
        deadlines.close()
    return results


def observation_document(facts: Mapping[str, DeviceFacts], observed_at: datetime) -> dict[str, Any]:
    """The JSON form ``gitfirm observe --format json`` prints and ``plan --observed`` reads:
    ``{"observedAt": ..., "devices": [DeviceFacts, ...]}`` sorted by name."""
    return {
        "observedAt": observed_at.isoformat(),
        "devices": [facts[name].model_dump(mode="json") for name in sorted(facts)],
    }
