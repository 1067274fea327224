"""Real-VyOS behaviours through the whole daemon (issue 10, point 12 a and b): a device
whose flavor differs from its images is refused before any ``/image add`` (the real add
would hang until a 504), and ``1.4-rolling`` builds are handled as 1.4 (no early staging,
no ``set_default``)."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.support.daemon import ALWAYS_OPEN, policy_yaml, running_gitops, wait_for
from tests.support.gitrepo import git

# Opens once a year on 1 January: closed whenever these tests run, except that minute.
CLOSED = ("0 0 1 1 *", "1m")


def _status_device(remote: Path, name: str) -> dict[str, object]:
    doc = yaml.safe_load(git(remote, "show", f"status:devices/{name}.yaml"))
    assert isinstance(doc, dict)
    return doc


async def test_flavor_mismatch_is_refused_before_any_image_add(tmp_path: Path) -> None:
    async with running_gitops(tmp_path, devices=2) as ops:
        # The Device says generic (as its images are), the router runs another flavor.
        ops.fleet.device("r0002").flavor = "azure"
        ops.merge(
            {"policies/fleet.yaml": policy_yaml("1.4.4", window=ALWAYS_OPEN)}, "Roll to 1.4.4"
        )
        await wait_for(lambda: ops.versions()["r0001"] == "1.4.4", 60, "r0001 upgraded")
        plan = ops.daemon.state.plan
        assert plan is not None
        refused = next(d for d in plan.devices if d.name == "r0002")
        assert refused.action.value == "incompatible"
        assert refused.reason is not None
        assert "release flavor 'azure'" in refused.reason and "'generic'" in refused.reason
        await wait_for(
            lambda: "azure" in str(_status_device(ops.remote, "r0002")), 30, "reason in status"
        )
        dev = ops.fleet.device("r0002")
        assert dev.calls["/image"] == 0 and dev.running == "1.4.3"
        assert not [e for e in dev.log if e["event"].startswith("image-")]


async def test_14_rolling_builds_are_not_staged_early_and_upgrade_without_set_default(
    tmp_path: Path,
) -> None:
    current, target = "1.4-rolling-202305120317", "1.4-rolling-202306010000"
    async with running_gitops(tmp_path, devices=2, current=current, target=target) as ops:
        for name in ops.fleet.names:
            dev = ops.fleet.device(name)
            dev.images = ["1.4-rolling-202301010000", current]
            dev.running = dev.default = current
        sha = ops.merge(
            {"policies/fleet.yaml": policy_yaml(target, window=CLOSED, stageEarly=True)},
            "Roll to the June build when the window opens",
        )

        def waiting() -> bool:
            plan = ops.daemon.state.plan
            return (
                plan is not None
                and plan.revision == sha
                and all(d.action.value == "waiting-for-window" for d in plan.devices)
            )

        await wait_for(waiting, 60, "devices waiting for the window")
        plan = ops.daemon.state.plan
        assert plan is not None
        # 1.4's API has no set_default, so nothing can be staged before the window.
        assert all("staged early" not in " ".join(d.notes) for d in plan.devices)

        ops.merge(
            {"policies/fleet.yaml": policy_yaml(target, window=ALWAYS_OPEN)}, "Open the window"
        )
        await wait_for(lambda: set(ops.versions().values()) == {target}, 90, "rollout")
        for name in ops.fleet.names:
            events = [e["event"] for e in ops.fleet.device(name).log]
            assert "image-set_default" not in events
            assert events.count("image-add") == 1 and "booted" in events
            # One add, and after the health gate at most the housekeeping delete (keepImages).
            image_ops = events.count("image-add") + events.count("image-delete")
            assert ops.fleet.device(name).calls["/image"] == image_ops
