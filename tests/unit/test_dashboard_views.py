"""The dashboard's page models and render cache on plain boards (no daemon).

The end-to-end tests drive a real daemon; these pin the arithmetic (filters, per-phase
median and p95, success rates, chart geometry) and the promise that a 10,000-device page is
rendered once per state version however often it is requested.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import httpx
from starlette.applications import Starlette

from reconciler.dashboard.board import Backup, Board, ImageRow, StoreCapacity
from reconciler.dashboard.charts import bar_chart
from reconciler.dashboard.live import Changes
from reconciler.dashboard.routes import CSP, Dashboard
from reconciler.dashboard.views import (
    FLEET_ROWS,
    Filters,
    fleet_view,
    history_view,
    images_view,
)
from reconciler.model.facts import DeviceFacts
from reconciler.report.snapshot import DeviceStatus, StatusSnapshot
from reconciler.rollout.model import Transition

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _board(devices: int, version: int = 1, history: Sequence[Transition] = ()) -> Board:
    rows = tuple(
        DeviceStatus(
            name=f"r{i:05d}",
            facts=DeviceFacts(
                name=f"r{i:05d}",
                reachable=i % 10 != 0,
                observed_at=T0,
                version="1.4.3" if i % 2 else "1.4.4",
            ),
            phase="pending",
            rollout="fleet",
        )
        for i in range(devices)
    )
    return Board(version, T0, StatusSnapshot("abc", devices=rows), history=tuple(history))


class _Fixed:
    """A feed that serves one board (what the daemon's feed does between two changes)."""

    def __init__(self, board: Board) -> None:
        self.current = board

    def version(self) -> int:
        return self.current.version

    def board(self) -> Board:
        return self.current

    def backups(self, device: str) -> Sequence[Backup]:
        return ()


def test_fleet_counts_versions_and_filters_by_policy() -> None:
    board = _board(40)
    view = fleet_view(board, Filters())
    bars = {b.label: b.value for b in view["versions"].bars}
    # Every tenth device is unreachable: its version is not believed.
    assert bars == {"1.4.3": 20, "1.4.4": 16, "unreachable": 4}
    assert dict(view["reachability"])["unreachable"] == 4
    assert fleet_view(board, Filters(policy="other"))["total"] == 0
    assert fleet_view(board, Filters(policy="fleet"))["total"] == 40


def test_chart_bars_scale_to_the_largest_value() -> None:
    chart = bar_chart("x", [("a", 10, "info"), ("b", 5, "info"), ("c", 0, "bad")])
    widths = [b.width for b in chart.bars]
    assert widths[0] == 2 * widths[1] and widths[2] == 0
    assert [b.y for b in chart.bars] == sorted(b.y for b in chart.bars)


def test_history_median_p95_and_rates() -> None:
    steps = []
    for i in range(20):  # stage takes i+1 seconds on device i; device 19 fails
        device = f"r{i}"
        start = T0 + timedelta(minutes=i)
        end = "failed" if i == 19 else "done"
        steps += [
            Transition(device, "backup", "stage", "rev", "fleet", start, target="1.4.4"),
            Transition(device, "stage", end, "rev", "fleet", start + timedelta(seconds=i + 1),
                       target="1.4.4"),
        ]  # fmt: skip
    view = history_view(_board(0, history=steps))
    (phase, count, median, p95), *_ = view["phases"]
    assert (phase, count, median, p95) == ("stage", 20, 10.5, 19.0)
    assert view["rates"]["image"] == [("1.4.4", 19, 1, "95%")]
    assert view["overall"] == "95%"


async def test_a_big_fleet_renders_once_per_state_version() -> None:
    feed = _Fixed(_board(10_000))
    dashboard = Dashboard(feed, Changes(), None)
    app = Starlette(routes=dashboard.pages())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://dash") as client:
        for _ in range(5):
            page = await client.get("/ui/")
            assert page.status_code == 200 and page.headers["content-security-policy"] == CSP
        assert dashboard.cache.renders == 1
        assert page.text.count('<tr><td><a href="/ui/devices/') == FLEET_ROWS
        assert f"Showing the first {FLEET_ROWS} of 10000" in page.text
        feed.current = _board(10_000, version=2)
        await client.get("/ui/")
        await client.get("/ui/?site=none")
        assert dashboard.cache.renders == 3


def test_store_growth_and_days_until_full() -> None:
    mib = 2**20
    images = tuple(
        ImageRow(f"i{n}", f"1.4.{n}", "stable", f"{n:064x}", 300 * mib, True,
                 stored_at=(T0 - timedelta(days=d)).isoformat())
        for n, d in enumerate((40, 20, 10, 1))
    )  # fmt: skip
    board = Board(
        1, T0, StatusSnapshot("abc"), images=images,
        capacity=StoreCapacity(used=1200 * mib, free=900 * mib),
    )  # fmt: skip
    view = images_view(board)
    # 900 MiB stored in the last 30 days: 30 MiB a day, so 900 MiB free last 30 days.
    assert view["rate_per_day"] == 30 * mib and view["days_left"] == 30
    assert [cum for _, _, cum in view["growth"]] == [300 * mib, 600 * mib, 900 * mib, 1200 * mib]
    quiet = Board(1, T0, StatusSnapshot("abc"), images=images[:1])
    assert images_view(quiet)["days_left"] is None
