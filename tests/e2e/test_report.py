"""``gitfirm report`` over what a real daemon journalled and pushed: a rollout on the
simulator with one device whose image add fails (rolled back), read back from the journal
and the status branch of the bare remote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import main
from reconciler.planning.progress import Phase
from tests.support.daemon import policy_yaml, running_gitops, wait_for


def _report(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    assert main(["report", *args]) == 0
    return capsys.readouterr().out


async def test_report_from_the_journal_and_status_branch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_gitops(tmp_path, devices=4) as ops:
        sick = ops.fleet.names[-1]
        ops.fleet.device(sick).faults.disk_full = True
        policy = policy_yaml("1.4.4", failureThreshold=2)
        ops.merge({"policies/fleet.yaml": policy}, "Roll the fleet to 1.4.4")
        healthy = set(ops.fleet.names) - {sick}

        def settled() -> bool:
            record = ops.daemon.journal.device("fleet", sick)
            upgraded = {n for n, v in ops.versions().items() if v == "1.4.4"}
            return upgraded == healthy and record is not None and record.phase == Phase.FAILED

        await wait_for(settled, 120, "three upgrades and one failure")
        await wait_for(lambda: not ops.daemon.rollouts_running(), 60, "the rollout's end")
        await ops.daemon.writer.flush()
        state, remote = str(tmp_path / "state"), str(ops.remote)

        doc: dict[str, Any] = json.loads(
            _report(capsys, "--state-dir", state, "--repo", remote, "--format", "json")
        )
        assert (doc["done"], doc["failed"]) == (3, 1)
        (per_policy,) = doc["successRate"]["policy"]
        assert per_policy == {"name": "fleet", "done": 3, "failed": 1, "rate": 0.75}
        assert [r["done"] + r["failed"] for r in doc["successRate"]["image"]] == [4]
        platforms = doc["successRate"]["platform"]
        assert sum(r["done"] for r in platforms) == 3
        assert all(r["name"] != "unknown" for r in platforms), platforms  # from the status branch
        phases = {p["phase"]: p for p in doc["phaseSeconds"]}
        assert {"precheck", "backup", "stage"} <= set(phases)
        assert phases["precheck"]["count"] == 4  # every device went through precheck once
        assert all(p["p95"] >= p["median"] >= 0 for p in phases.values())
        (rollback,) = doc["rollbacks"]
        assert rollback["device"] == sick and "free drive space" in rollback["detail"]
        assert doc["halted"] == {}
        (today,) = doc["exposure"]  # one status branch day; no advisories in this fleet
        assert today["exposedDevices"] == 0 and today["noncompliant"] == 0, today

        markdown = _report(capsys, "--state-dir", state, "--format", "markdown")
        assert "## Success rate per policy" in markdown and "| fleet | 3 | 1 | 75.0% |" in markdown
        assert f"| {sick} | fleet |" in markdown
        sheet = _report(capsys, "--state-dir", state, "--format", "csv")
        assert "Success rate per policy,fleet,3,1,75.0%" in sheet and f",{sick},fleet," in sheet
        page = _report(capsys, "--state-dir", state, "--format", "html")
        assert "<td>fleet</td><td>3</td><td>1</td><td>75.0%</td>" in page
        assert "<h2>Image store</h2>" in page  # the daemon stored 1.4.4: a forecast
        assert doc["store"]["usedBytes"] > 0 and doc["store"]["bytesPerDay"] > 0
        assert doc["store"]["daysUntilFull"] is not None
        text = _report(capsys, "--state-dir", state)
        assert "3 upgrades done, 1 failed, success 75.0%; 1 rollbacks" in text

        later = _report(
            capsys, "--state-dir", state, "--since", "2999-01-01T00:00:00Z", "--format", "json"
        )
        assert json.loads(later)["events"] == 0
        assert ops.fleet.api_key not in markdown + text


def test_report_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--state-dir", str(tmp_path), "--since", "yesterday"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --since 'yesterday' is not an ISO 8601")
    assert main(["report", "--state-dir", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no journal at" in err[0] and "--state-dir" in err[0]
