"""The alert centre through the real daemon, simulator and git: a halted rollout raises
alerts that ``alerts.yaml`` on the status branch shows as the centre does, and resuming
resolves them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from reconciler.alerts.feed import FeedSettings
from reconciler.report.render import alerts_document
from tests.support.daemon import GitOps, policy_yaml, running_gitops, wait_for
from tests.support.gitrepo import git


def _status_alerts(ops: GitOps) -> dict[str, Any]:
    branches = (
        git(ops.remote, "ls-tree", "--name-only", "status")
        if "status" in git(ops.remote, "branch")
        else ""
    )
    if "alerts.yaml" not in branches.split():
        return {"active": [], "resolved": []}
    doc: dict[str, Any] = yaml.safe_load(git(ops.remote, "show", "status:alerts.yaml"))
    return doc


def _keys(entries: list[dict[str, Any]]) -> set[str]:
    return {f"{e['event']}/{e['subject']}" for e in entries}


async def test_halt_raises_alerts_on_the_status_branch_and_resume_resolves(
    tmp_path: Path,
) -> None:
    async with running_gitops(tmp_path, devices=3) as ops:
        for name in ops.fleet.names:
            ops.fleet.device(name).faults.disk_full = True
        ops.merge({"policies/fleet.yaml": policy_yaml("1.4.4")}, "Roll the fleet to 1.4.4")
        await wait_for(
            lambda: "rollout-halted/fleet" in _keys(_status_alerts(ops)["active"]),
            90,
            "the halt in alerts.yaml",
        )
        active = _keys(_status_alerts(ops)["active"])
        failed = [k for k in active if k.startswith("device-failed/")]
        assert len(failed) == 1, active  # the canary only: the halt stopped the others
        center = ops.daemon.alert_center
        assert {a.key for a in center.active()} >= {"rollout-halted/fleet", *failed}
        halted = center.get("rollout-halted", "fleet")
        assert halted is not None and halted.severity == "critical" and halted.policy == "fleet"

        # The branch shows what the centre holds (once the writer caught up).
        await ops.daemon.writer.flush()
        assert _status_alerts(ops) == alerts_document(center.alerts(), ops.daemon.secrets)

        for name in ops.fleet.names:
            ops.fleet.device(name).faults.disk_full = False
        retry = policy_yaml("1.4.4").replace("selector:", "retryToken: '1'\n  selector:")
        ops.merge({"policies/fleet.yaml": retry}, "Resume the fleet rollout")
        await wait_for(
            lambda: set(ops.versions().values()) == {"1.4.4"}, 120, "the resumed rollout"
        )
        await wait_for(
            lambda: {"rollout-halted/fleet", *failed} <= _keys(_status_alerts(ops)["resolved"]),
            60,
            "the halt and the failure resolved in alerts.yaml",
        )
        resolved = {a.key: a for a in center.alerts() if not a.active}
        assert resolved["rollout-halted/fleet"].resolved_at is not None
        assert "rollout-completed/fleet" in {a.key for a in center.active()}
        waves = center.get("wave-passed", "fleet")
        assert waves is not None and waves.count == 2 and not waves.active  # canary, wave 1
        assert waves.message == "rollout fleet: wave 1 passed (2 of 2)"
        assert ops.fleet.api_key not in git(ops.remote, "show", "status:alerts.yaml")


async def test_conditions_through_the_daemon_raise_once_and_clear(tmp_path: Path) -> None:
    async with running_gitops(tmp_path, devices=2) as ops:
        daemon, center = ops.daemon, ops.daemon.alert_center
        # Thresholds at zero: any unreachable device, any used byte on the store's disk.
        daemon.alert_feed.settings = FeedSettings(unreachable_after=timedelta(0), store_percent=0)
        gone = ops.fleet.names[0]
        ops.fleet.device(gone).faults.unreachable = True
        for _ in range(3):
            await daemon.reconcile(None)
        down = center.get("device-unreachable", gone)
        assert down is not None and down.active and down.count == 1  # once, not per pass
        assert down.site is not None
        store = center.get("store-capacity", "image-store")
        assert store is not None and store.active and store.count == 1

        bad = ops.merge({"policies/fleet.yaml": "kind: [unclosed\n"}, "A broken policy")
        await wait_for(
            lambda: (a := center.get("revision-refused", bad)) is not None and a.active,
            60,
            "the refusal alert",
        )
        ops.fleet.device(gone).faults.unreachable = False
        ops.merge({"policies/fleet.yaml": policy_yaml("1.4.3", maxParallel=1)}, "Fix the policy")
        await wait_for(lambda: not center.get("revision-refused", bad).active, 60, "resolved")  # type: ignore[union-attr]
        await daemon.reconcile(None)
        assert not center.get("device-unreachable", gone).active  # type: ignore[union-attr]
        await daemon.writer.flush()
        doc = _status_alerts(ops)
        assert {f"revision-refused/{bad}", f"device-unreachable/{gone}"} <= _keys(doc["resolved"])
