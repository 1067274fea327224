"""The metrics module and the example monitoring files in deploy/monitoring.

The daemon-level proof is tests/e2e/test_metrics.py; these check the files alone (and with
``promtool`` when it is installed) and the timing arithmetic with chosen times.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from reconciler.report.metrics import Metrics, rollout_phase
from reconciler.report.snapshot import RolloutStatus, StatusSnapshot
from tests.support.metrics import (
    DASHBOARD,
    RULES,
    dashboard_exprs,
    exported_names,
    families,
    metric_names,
    promtool,
    rule_exprs,
    sample,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Served:
    requests: int = 3
    refused: int = 1
    bytes_served: int = 4096


def _scrape(metrics: Metrics, snapshot: StatusSnapshot | None = None) -> str:
    body, _ = metrics.render(Served(), snapshot or StatusSnapshot("abc"), 2)
    return body.decode()


def test_every_rule_has_a_severity_and_reads_only_exported_metrics() -> None:
    doc = yaml.safe_load(RULES.read_text())
    rules = [rule for group in doc["groups"] for rule in group["rules"]]
    assert rules
    assert all(rule["labels"]["severity"] in {"warning", "critical"} for rule in rules)
    exported = exported_names(families(_scrape(Metrics("1"))))
    for expr in rule_exprs():
        assert metric_names(expr), expr
        assert metric_names(expr) <= exported, expr


def test_the_dashboard_parses_and_queries_only_exported_metrics() -> None:
    doc = json.loads(DASHBOARD.read_text())
    assert doc["panels"]
    exported = exported_names(families(_scrape(Metrics("1"))))
    exprs = dashboard_exprs()
    assert len(exprs) >= len(doc["panels"])
    for expr in exprs:
        assert metric_names(expr), expr
        assert metric_names(expr) <= exported, expr


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not on PATH")
def test_promtool_accepts_the_rules_and_the_exposition() -> None:
    rules = promtool("check", "rules", str(RULES))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    exposition = promtool("check", "metrics", stdin=_scrape(Metrics("1")))
    assert exposition.returncode == 0, exposition.stdout + exposition.stderr


def test_a_step_is_timed_as_the_phase_the_device_leaves() -> None:
    metrics = Metrics("1")
    metrics.transition("fleet", "r1", "pending", "precheck", T0)
    metrics.transition("fleet", "r1", "precheck", "stage", T0 + timedelta(seconds=3))
    metrics.transition("fleet", "r1", "stage", "done", T0 + timedelta(seconds=63))
    metrics.rollout_ended(
        "fleet", halted=False, suspended=False, complete=True, now=T0 + timedelta(seconds=70)
    )
    fams = families(_scrape(metrics))
    assert sample(fams, "gitfirm_device_step_seconds_sum", phase="precheck") == 3
    assert sample(fams, "gitfirm_device_step_seconds_sum", phase="stage") == 60
    assert sample(fams, "gitfirm_device_step_seconds_count", phase="pending") == 0
    assert sample(fams, "gitfirm_rollout_duration_seconds_sum", result="complete") == 70
    assert sample(fams, "gitfirm_rollout_duration_seconds_count", result="halted") == 0
    assert sample(fams, "gitfirm_image_bytes_served_total") == 4096
    assert sample(fams, "gitfirm_git_fetch_failures_total") == 2


def test_rollout_info_names_policy_phase_and_flags() -> None:
    halted = RolloutStatus("edge", "abc", halted=True, device_phases={"r1": "failed"})
    moving = RolloutStatus("core", "abc", device_phases={"r2": "stage", "r3": "pending"})
    fams = families(_scrape(Metrics("1"), StatusSnapshot("abc", rollouts=(halted, moving))))
    info = "gitfirm_rollout_info"
    assert sample(fams, info, policy="edge", phase="halted", halted="true") == 1
    assert sample(fams, info, policy="core", phase="progressing", suspended="false") == 1
    assert rollout_phase(False, True, {"r1": "stage"}) == "suspended"
    assert rollout_phase(False, False, {"r1": "done", "r2": "skipped"}) == "complete"
    assert rollout_phase(False, False, {"r1": "pending"}) == "pending"
