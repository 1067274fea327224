"""The running daemon's ``/metrics`` is something operators can alert on.

A real daemon (real git remote, simulator, HTTP port) rolls a small fleet to a new
version, receives webhooks, refuses a bad revision and loses its remote for a while; the
test scrapes ``/metrics`` through the operator token before and after and parses it as
Prometheus does: counters are ``*_total``, histograms observed what happened, every label
value an alert could name is there at 0 from the start, no label names a device, and the
example alert rules and dashboard in deploy/monitoring read only metrics it exports.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client.metrics_core import Metric

from reconciler import __version__
from reconciler.planning.progress import Phase
from tests.support.daemon import policy_yaml, running_gitops, wait_for
from tests.support.gitrepo import git
from tests.support.metrics import (
    dashboard_exprs,
    exported_names,
    families,
    metric_names,
    promtool,
    rule_exprs,
    sample,
)

TOKEN = "operator-token-metrics"
GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
ENV = {"GITFIRM_OPERATOR_TOKEN": TOKEN, "GITFIRM_WEBHOOK_SECRET": GITHUB_SECRET}
FORGES = ("github", "gitlab", "gitea")
WEBHOOK_RESULTS = ("accepted", "rejected", "rate_limited", "too_large", "not_configured")
COUNTERS = (
    "gitfirm_reconcile_passes",
    "gitfirm_device_transitions",
    "gitfirm_git_fetch_failures",
    "gitfirm_revisions_refused",
    "gitfirm_webhooks_received",
    "gitfirm_image_requests",
    "gitfirm_image_requests_refused",
    "gitfirm_image_bytes_served",
)
HISTOGRAMS = (
    "gitfirm_reconcile_pass_seconds",
    "gitfirm_device_step_seconds",
    "gitfirm_rollout_duration_seconds",
    "gitfirm_status_commit_seconds",
    "gitfirm_event_loop_lag_seconds",
)
GAUGES = (
    "gitfirm_rollout_info",
    "gitfirm_devices_by_phase",
    "gitfirm_applied_revision_timestamp_seconds",
    "gitfirm_last_successful_pass_timestamp_seconds",
    "gitfirm_build_info",
    "gitfirm_devices",
)


async def _until(
    http: httpx.AsyncClient, check: Callable[[dict[str, Metric]], bool], what: str
) -> dict[str, Metric]:
    """Scrape every 100 ms until ``check`` holds (at most 90 s)."""
    for _ in range(900):
        fams = families(await _scrape(http))
        if check(fams):
            return fams
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def _scrape(http: httpx.AsyncClient) -> str:
    response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    return response.text


def _assert_initialised(fams: dict[str, Metric]) -> None:
    """Every label value an alert names exists before anything happened."""
    assert sample(fams, "gitfirm_reconcile_passes_total", result="failure") == 0
    for forge in FORGES:
        for result in WEBHOOK_RESULTS:
            assert sample(fams, "gitfirm_webhooks_received_total", forge=forge, result=result) == 0
    for phase in Phase:
        assert sample(fams, "gitfirm_devices_by_phase", phase=str(phase)) >= 0
        assert sample(fams, "gitfirm_device_step_seconds_count", phase=str(phase)) == 0
    for result in ("complete", "halted", "suspended", "incomplete"):
        assert sample(fams, "gitfirm_rollout_duration_seconds_count", result=result) == 0
    assert sample(fams, "gitfirm_revisions_refused_total") == 0
    assert sample(fams, "gitfirm_git_fetch_failures_total") == 0
    assert sample(fams, "gitfirm_devices", reachable="false") >= 0


def _assert_shape(fams: dict[str, Metric], text: str, devices: list[str]) -> None:
    """Types, ``_total`` names, process metrics and no per-device label."""
    for name in COUNTERS:
        assert fams[name].type == "counter", name
        assert f"\n{name}_total" in text, name
    for name in HISTOGRAMS:
        assert fams[name].type == "histogram", name
    for name in GAUGES:
        assert fams[name].type == "gauge", name
    # Running totals are never gauges: every counter sample ends in _total (or _created).
    for f in fams.values():
        for s in f.samples:
            assert "device" not in s.labels, s
            assert not set(devices) & set(s.labels.values()), s
            if f.type == "counter":
                assert s.name.endswith(("_total", "_created")), s
    assert {"process_cpu_seconds", "process_resident_memory_bytes"} <= set(fams)
    assert sample(fams, "gitfirm_build_info", version=__version__) == 1


async def test_metrics_after_a_rollout_are_alertable(tmp_path: Path) -> None:
    async with (
        running_gitops(tmp_path, devices=2, environ=ENV) as ops,
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{ops.port}", headers={"Authorization": f"Bearer {TOKEN}"}
        ) as http,
    ):
        _assert_initialised(families(await _scrape(http)))

        sha = ops.merge({"policies/fleet.yaml": policy_yaml("1.4.4")}, "Roll the fleet to 1.4.4")
        await wait_for(lambda: set(ops.versions().values()) == {"1.4.4"}, 90, "rollout")
        fams = await _until(
            http,
            lambda f: sample(f, "gitfirm_rollout_duration_seconds_count", result="complete") > 0,
            "the rollout's duration",
        )
        info = sample(
            fams,
            "gitfirm_rollout_info",
            policy="fleet",
            phase="complete",
            halted="false",
            suspended="false",
        )
        assert info == 1
        assert sample(fams, "gitfirm_devices_by_phase", phase="done") == 2
        committed = int(git(ops.remote, "show", "-s", "--format=%ct", sha).strip())
        assert sample(fams, "gitfirm_applied_revision_timestamp_seconds") == committed
        last = sample(fams, "gitfirm_last_successful_pass_timestamp_seconds")
        assert 0 < last <= time.time()
        assert sample(fams, "gitfirm_reconcile_pass_seconds_count") > 0
        for phase in ("precheck", "backup", "stage", "activate", "health"):
            assert sample(fams, "gitfirm_device_step_seconds_count", phase=phase) == 2, phase
        assert sample(fams, "gitfirm_image_bytes_served_total") > 0
        assert sample(fams, "gitfirm_image_requests_total") >= 2

        hook = {"X-Hub-Signature-256": GITHUB_SIGNATURE, "Content-Type": "text/plain"}
        body = b"Hello, World!"
        assert (await http.post("/webhooks/github", content=body, headers=hook)).status_code == 202
        hook["X-Hub-Signature-256"] = "sha256=" + "0" * 64
        assert (await http.post("/webhooks/github", content=body, headers=hook)).status_code == 401

        ops.merge({"policies/fleet.yaml": "kind: [unclosed\n"}, "A broken policy")
        await _until(
            http, lambda f: sample(f, "gitfirm_revisions_refused_total") == 1, "the refusal"
        )
        # The remote goes away for a while: fetches fail and are counted.
        moved = ops.remote.with_name("moved-away")
        shutil.move(ops.remote, moved)
        try:
            await _until(
                http, lambda f: sample(f, "gitfirm_git_fetch_failures_total") > 0, "fetch failure"
            )
        finally:
            shutil.move(moved, ops.remote)

        text = await _scrape(http)
        fams = families(text)
        _assert_shape(fams, text, ops.fleet.names)
        received = "gitfirm_webhooks_received_total"
        assert sample(fams, received, forge="github", result="accepted") == 1
        assert sample(fams, received, forge="github", result="rejected") == 1
        assert sample(fams, received, forge="gitlab", result="rejected") == 0
        assert sample(fams, "gitfirm_reconcile_passes_total", result="failure") >= 1
        # The revision in force is still the good one.
        assert sample(fams, "gitfirm_applied_revision_timestamp_seconds") == committed

        exported = exported_names(fams)
        for expr in [*rule_exprs(), *dashboard_exprs()]:
            names = metric_names(expr)
            assert names, f"names no gitfirm metric: {expr}"
            assert names <= exported, f"{names - exported} not exported: {expr}"
        if shutil.which("promtool") is not None:
            checked = promtool("check", "metrics", stdin=text)
            assert checked.returncode == 0, checked.stdout + checked.stderr
