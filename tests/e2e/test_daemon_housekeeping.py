"""The running daemon prunes its journal and reports how long its event loop was blocked.

A real daemon (real git remote, simulator, sqlite journal, HTTP port) runs; the test plants
journal events, lets a pass run and reads the journal back, and blocks the daemon's own
event loop to see the loop-lag probe's metric report it.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from reconciler.rollout.journal import DeviceRecord
from reconciler.rollout.model import Transition
from tests.support.daemon import running_gitops

POLICY = "housekeeping"

OPERATOR_TOKEN = "operator-token-housekeeping"
OPERATOR_ENV = {"GITFIRM_OPERATOR_TOKEN": OPERATOR_TOKEN}
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


def _plant(ops_journal: object, device: str, age: timedelta) -> None:
    event = Transition(device, "pending", "precheck", "rev", POLICY, datetime.now(UTC) - age)
    ops_journal.write_device(DeviceRecord(POLICY, device, "rev"), event)  # type: ignore[attr-defined]


def _metric(text: str, name: str) -> float:
    line = next(line for line in text.splitlines() if line.startswith(name + " "))
    return float(line.split()[1])


async def test_a_pass_prunes_events_past_retention_and_keeps_the_rest(tmp_path: Path) -> None:
    async with running_gitops(tmp_path, devices=2) as ops:
        journal = ops.daemon.journal
        _plant(journal, "r-old", timedelta(days=91))  # the default retention is 90 days
        _plant(journal, "r-new", timedelta(days=89))
        assert len(journal.events(POLICY)) == 2
        await ops.daemon.reconcile()
        assert [e.device for e in journal.events(POLICY)] == ["r-new"]
        # Device records are current state, whatever their age: never pruned.
        assert journal.device(POLICY, "r-old") is not None


async def test_loop_lag_probe_reports_a_block_of_the_daemon_loop(tmp_path: Path) -> None:
    async with (
        running_gitops(tmp_path, devices=2, environ=OPERATOR_ENV) as ops,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{ops.port}", headers=OPERATOR) as http,
    ):
        name = "gitfirm_event_loop_block_max_seconds"
        block = _metric((await http.get("/metrics")).text, name) + 0.3
        # The test shares the daemon's loop, so holding it blocks the daemon. The probe asks
        # to be woken at most 50 ms after the block starts, so it wakes that much late at
        # least: longer than any block seen so far.
        time.sleep(block)  # blocking the loop is the point
        seen = 0.0
        for _ in range(50):  # a few probe ticks; the block is recorded on the first
            seen = _metric((await http.get("/metrics")).text, name)
            if seen >= block - 0.05:
                break
            await asyncio.sleep(0.05)
        assert seen >= block - 0.05, (seen, block)
        assert _metric((await http.get("/metrics")).text, "gitfirm_event_loop_lag_seconds_count")


async def test_status_commits_are_timed_in_metrics(tmp_path: Path) -> None:
    async with (
        running_gitops(tmp_path, devices=2, environ=OPERATOR_ENV) as ops,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{ops.port}", headers=OPERATOR) as http,
    ):
        name = "gitfirm_status_commit_seconds_count"
        for _ in range(200):  # the first pass's status commit (coalescing is off here)
            if _metric((await http.get("/metrics")).text, name) >= 1:
                break
            await asyncio.sleep(0.05)
        commits = len(ops.status_log("--format=%H").split())
        assert 1 <= _metric((await http.get("/metrics")).text, name) <= commits
