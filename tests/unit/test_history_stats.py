"""Report statistics without the daemon: outcomes per dimension, phase times, percentiles."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from reconciler.history.render import render
from reconciler.history.stats import Step, build_report, percentile, store_forecast

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _run(device: str, phases: list[tuple[str, int]], target: str = "1.4.4") -> list[Step]:
    out, prev = [], "pending"
    for phase, at in phases:
        out.append(Step(device, "core", prev, phase, T0 + timedelta(seconds=at), target))
        prev = phase
    return out


def test_nearest_rank_percentile() -> None:
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 95) == 19.0
    assert percentile(values, 50) == 10.0
    assert percentile([7.0], 95) == 7.0


def test_rates_phase_times_and_rollbacks() -> None:
    steps = _run("r1", [("precheck", 0), ("stage", 10), ("done", 70)])
    steps += _run("r2", [("precheck", 0), ("stage", 20), ("rollback", 30), ("failed", 40)])
    steps += _run("r3", [("precheck", 5)])  # still in precheck: not timed
    report = build_report(steps, platforms={"r1": "amd64/generic", "r2": "arm64/generic"})
    assert (report.done, report.failed) == (1, 1)
    assert {r.key: (r.done, r.failed) for r in report.rates["platform"]} == {
        "amd64/generic": (1, 0),
        "arm64/generic": (0, 1),
    }
    phases = {p.phase: p for p in report.phases}
    assert (phases["precheck"].count, phases["precheck"].median) == (2, 15.0)
    assert phases["stage"].p95 == 60.0
    assert [s.device for s in report.rollbacks] == ["r2"]
    rows = list(csv.reader(io.StringIO(render(report, "csv"))))
    assert ["Success rate per policy", "core", "1", "1", "50.0%"] in rows
    assert rows[0] == ["table", "image", "done", "failed", "rate"]
    text = render(report, "text")
    assert "2 upgrades" not in text and "1 upgrades done, 1 failed, success 50.0%" in text


def test_empty_journal_renders_in_every_format() -> None:
    report = build_report([])
    for fmt in ("text", "markdown", "json"):
        assert "0" in render(report, fmt)
    assert render(report, "csv").startswith("table,image,done,failed,rate\n")


def test_store_forecast_from_the_last_30_days() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    gib = 2**30
    stored = [(now - timedelta(days=90), 5 * gib), (now - timedelta(days=10), 3 * gib)]
    forecast = store_forecast(stored, used=8 * gib, free=30 * gib, now=now)
    assert forecast.per_day == 3 * gib / 30  # the old image is outside the window
    assert forecast.days_left == 300
    assert store_forecast(stored[:1], 5 * gib, 30 * gib, now).days_left is None


def test_html_report_escapes_what_routers_and_git_say() -> None:
    steps = _run("<script>alert(1)</script>", [("precheck", 0), ("rollback", 5), ("failed", 9)])
    forecast = store_forecast([], used=2**30, free=2**31, now=datetime(2026, 12, 1, tzinfo=UTC))
    page = render(build_report(steps, store=forecast), "html")
    assert page.startswith("<!doctype html>") and "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<h2>Image store</h2>" in page and "<td>1024</td><td>2048</td>" in page
