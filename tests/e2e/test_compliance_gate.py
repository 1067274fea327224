"""Compliance as a gate through the real daemon, git remote and simulator: a target that
violates a blocking CompliancePolicy never starts (no image is added to any device);
the same policy with ``enforcement: warn`` lets the rollout go."""

from __future__ import annotations

from pathlib import Path

import yaml

from reconciler.planning.plan import Action
from tests.support.daemon import GitOps, policy_yaml, running_gitops, wait_for


def _compliance(enforcement: str | None) -> str:
    spec: dict[str, object] = {"forbiddenVersions": ["1.4.4"]}
    if enforcement is not None:
        spec["enforcement"] = enforcement
    doc = {
        "apiVersion": "gitfirm.io/v1",
        "kind": "CompliancePolicy",
        "metadata": {"name": "no-144"},
        "spec": spec,
    }
    return yaml.safe_dump(doc, sort_keys=False)


def _planned(ops: GitOps, revision: str) -> bool:
    plan = ops.daemon.state.plan
    return plan is not None and plan.revision == revision


def _adds(ops: GitOps) -> list[object]:
    return [
        e for n in ops.fleet.names for e in ops.fleet.device(n).log if "image-add" in e["event"]
    ]


async def test_a_blocked_target_never_starts(tmp_path: Path) -> None:
    async with running_gitops(tmp_path) as ops:
        blocked = ops.merge(
            {
                "policies/compliance.yaml": _compliance(None),  # block is the default
                "policies/fleet.yaml": policy_yaml("1.4.4"),
            },
            "Roll the fleet to 1.4.4, which a compliance policy forbids",
        )
        await wait_for(lambda: _planned(ops, blocked), 30, "plan of the blocked revision")
        for _ in range(3):  # passes in which the engine could have started something
            await ops.daemon.reconcile(None)
        plan = ops.daemon.state.plan
        assert plan is not None
        for device in plan.devices:
            assert device.action is Action.BLOCKED, device
            assert "1.4.4 is a forbidden version (compliance policy no-144)" in (
                device.reason or ""
            )
        assert _adds(ops) == []
        assert set(ops.versions().values()) == {"1.4.3"}

        ops.merge({"policies/compliance.yaml": _compliance("warn")}, "Only warn")
        await wait_for(lambda: set(ops.versions().values()) == {"1.4.4"}, 90, "rollout")
        assert _adds(ops), "the same target, merely warned about, was installed"
