"""Benchmark: observe a simulated fleet with gitfirm's observer.

Starts ``gitfirm sim`` in a separate process (100 ms per API call), then measures:

- gitfirm's observer (``reconciler.devices.observe``, concurrency 256) on 1,000 and then
  10,000 devices; one observation is ``show version`` plus ``show system image``;
- the ceiling: a bare aiohttp loop making the same requests with the same concurrency and
  no parsing;
- the floor: one device at a time with gitfirm's client, as a naive script does, measured
  on 200 devices and scaled linearly to the fleet size.

Each size is measured in 3 runs (``"run": 1..3``), each gitfirm's and the bare loop's side by
side, then min, median and max lines (``"stat"``) of ``ceiling_ratio`` (gitfirm's throughput
/ the bare loop's), ``sequential_ratio`` (gitfirm's speed-up over the scaled floor),
``cpu_us_per_request`` (this process's CPU time per API call during gitfirm's run; steadier
than wall time on a shared machine) and ``rss_mb`` (this process's peak RSS; the simulator
runs elsewhere). Every device must be observed reachable, or the bench fails.
Run: ``.venv/bin/python -m bench.observe_bench``; fleet sizes as arguments
(``... observe_bench 3000``) give a quicker run of just those sizes.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import aiohttp

from bench.harness import RUNS, emit, fail, rss_mb, summarize
from reconciler.devices.endpoint import Endpoint
from reconciler.devices.observe import ObserveSettings, observe
from reconciler.devices.transport import make_http_client
from reconciler.runtime import tune_gc
from reconciler.simulator.process import simulator_process

__all__ = ["main"]

CONCURRENCY = 256
LATENCY = 0.1
FLOOR_DEVICES = 200
SIZES = (1_000, 10_000)
FIGURES = ("seconds", "ceiling_ratio", "sequential_ratio", "cpu_us_per_request", "rss_mb")


async def _gitfirm(endpoints: list[Endpoint], concurrency: int) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds of this process, and the number of reachable devices."""
    settings = ObserveSettings(concurrency=concurrency, deadline=120.0)
    async with make_http_client(max_connections=concurrency) as http:
        started, cpu = time.perf_counter(), time.process_time()
        facts = await observe(endpoints, http, settings=settings)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return elapsed, cpu, sum(f.reachable for f in facts.values())


async def _bare(endpoints: list[Endpoint]) -> float:
    """The same two requests per device through plain aiohttp, no parsing."""
    bodies = [
        {"op": "show", "path": ["version"]},
        {"op": "show", "path": ["system", "image"]},
    ]
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        todo = iter(endpoints)

        async def worker() -> None:
            for ep in todo:
                for body in bodies:
                    async with session.post(ep.url("/show"), json={"key": ep.api_key, **body}) as r:
                        await r.read()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return time.perf_counter() - started


async def _run(endpoints: list[Endpoint], per_device: float, size: int) -> dict[str, Any]:
    """One side-by-side measurement of gitfirm and the bare loop on ``size`` devices."""
    fleet = endpoints[:size]
    seconds, cpu, reachable = await _gitfirm(fleet, CONCURRENCY)
    if reachable != size:
        fail(
            f"observe: {size - reachable} of {size} devices unreachable; is the machine overloaded?"
        )
    rss = rss_mb()
    ceiling = await _bare(fleet)
    return {
        "devices": size,
        "seconds": round(seconds, 2),
        "bare_seconds": round(ceiling, 2),
        "ceiling_ratio": round(ceiling / seconds, 3),
        "sequential_ratio": round(per_device * size / seconds, 1),
        "cpu_us_per_request": round(cpu / (2 * size) * 1e6),
        "rss_mb": rss,
    }


async def main(sizes: tuple[int, ...] = SIZES) -> None:
    """Run every measurement against one simulator process."""
    async with simulator_process(max(sizes), latency=LATENCY, start_timeout=120) as sim:
        endpoints = sim.endpoints()
        floor_s, _, reachable = await _gitfirm(endpoints[:FLOOR_DEVICES], 1)
        if reachable != FLOOR_DEVICES:
            fail(f"observe: {FLOOR_DEVICES - reachable} devices unreachable one at a time")
        per_device = floor_s / FLOOR_DEVICES
        emit(
            {
                "bench": "observe-sequential",
                "devices": FLOOR_DEVICES,
                "seconds": round(floor_s, 2),
                "note": "one device at a time; scaled linearly for sequential_ratio",
            }
        )
        for size in sizes:
            runs = []
            for run in range(1, RUNS + 1):
                runs.append(await _run(endpoints, per_device, size))
                emit({"bench": "observe", "run": run, **runs[-1]})
            for line in summarize(runs, FIGURES, bench="observe", devices=size):
                emit(line)


if __name__ == "__main__":
    tune_gc()  # as `gitfirm` itself does at start-up; both loops run under it
    sys.exit(asyncio.run(main(tuple(int(a) for a in sys.argv[1:]) or SIZES)))
