"""Render the dashboard's fleet and history pages for 10,000 devices, 3 times.

One JSON line per run, {"bench": "dashboard", "run": i, "devices": N, "events": E,
"fleet_cold_ms": ..., "history_cold_ms": ..., "cached_ms": ..., "rss_mb": M}, then min,
median and max lines. "cold" is the first request at a new state version (the page is
built and rendered); "cached" is the mean of 200 further requests at the same version, which
only look the page up. Requests go through the real Starlette app in process (ASGI).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import httpx
from starlette.applications import Starlette

from bench.harness import RUNS, emit, fail, rss_mb, summarize
from reconciler.dashboard.board import Backup, Board
from reconciler.dashboard.live import Changes
from reconciler.dashboard.routes import Dashboard
from reconciler.model.facts import DeviceFacts
from reconciler.report.snapshot import DeviceStatus, StatusSnapshot
from reconciler.rollout.model import Transition

T0 = datetime(2026, 12, 1, tzinfo=UTC)
PHASES = ("pending", "precheck", "backup", "stage", "activate", "await-boot", "verify", "done")


def _board(devices: int, version: int) -> Board:
    rows = tuple(
        DeviceStatus(
            name=f"r{i:05d}",
            facts=DeviceFacts(name=f"r{i:05d}", reachable=i % 50 != 0, observed_at=T0,
                              version="1.4.3" if i % 3 else "1.4.4"),
            phase="done" if i % 3 == 0 else "pending",
            rollout=f"policy-{i % 4}",
        )
        for i in range(devices)
    )  # fmt: skip
    history = tuple(
        Transition(f"r{i:05d}", a, b, "rev", f"policy-{i % 4}", T0 + timedelta(seconds=i + n),
                   target="1.4.4")
        for i in range(0, devices, 3)
        for n, (a, b) in enumerate(itertools.pairwise(PHASES))
    )  # fmt: skip
    return Board(version, T0, StatusSnapshot("rev", devices=rows), history=history)


class _Feed:
    def __init__(self, board: Board) -> None:
        self.current = board

    def version(self) -> int:
        return self.current.version

    def board(self) -> Board:
        return self.current

    def backups(self, device: str) -> Sequence[Backup]:
        return ()


async def _ms(client: httpx.AsyncClient, path: str, times: int = 1) -> float:
    started = time.perf_counter()
    for _ in range(times):
        response = await client.get(path)
        if response.status_code != 200:
            fail(f"{path} answered {response.status_code}")
    return round((time.perf_counter() - started) * 1000 / times, 2)


async def _run(devices: int, run: int) -> dict[str, float | int | str]:
    feed = _Feed(_board(devices, version=run))
    dashboard = Dashboard(feed, Changes(), None)
    transport = httpx.ASGITransport(app=Starlette(routes=dashboard.pages()))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        fleet = await _ms(client, "/ui/")
        history = await _ms(client, "/ui/history")
        cached = await _ms(client, "/ui/", times=200)
    if dashboard.cache.renders != 2:
        fail(f"expected 2 renders, got {dashboard.cache.renders}")
    return {
        "bench": "dashboard", "run": run, "devices": devices,
        "events": len(feed.current.history), "fleet_cold_ms": fleet,
        "history_cold_ms": history, "cached_ms": cached, "rss_mb": rss_mb(),
    }  # fmt: skip


def main() -> None:
    """Run the bench and print its JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=10_000)
    args = parser.parse_args()
    runs = []
    for run in range(1, RUNS + 1):
        record = asyncio.run(_run(args.devices, run))
        emit(record)
        runs.append(record)
    figures = ("fleet_cold_ms", "history_cold_ms", "cached_ms")
    for line in summarize(runs, figures, bench="dashboard", devices=args.devices):
        emit(line)


if __name__ == "__main__":
    main()
