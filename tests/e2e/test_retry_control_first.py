"""retryToken control-first, through the whole daemon.

The canary's router has no room for the new image (its add fails), so the rollout halts.
A commit changes the policy's ``retryToken``. The halt must be lifted the moment the daemon
takes that revision in (its scheduler's control step), before the revision is observed or
its images are fetched (one router answers slowly, so that takes a while), and the retry
must then carry the rollout to its end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconciler.daemon import Daemon
from reconciler.rollout.journal import RolloutRecord
from tests.support.daemon import wait_for
from tests.support.scheduling import fleet_policy, staged_gitops

STRATEGY: dict[str, Any] = {"selector": {"tier": "edge"}, "maxParallel": 1, "failureThreshold": 1}


async def test_a_retry_lifts_the_halt_before_the_revision_is_observed(tmp_path: Path) -> None:
    files = {"policies/fleet.yaml": fleet_policy("1.4.3", **STRATEGY)}
    async with staged_gitops(
        tmp_path, files, devices=6, boot_seconds=0.2, start=False, groups=False
    ) as stage:
        edge = [d.name for d in stage.fleet.device_docs() if d.metadata.labels["tier"] == "edge"]
        for name in edge:
            stage.fleet.device(name).faults.disk_full = True
        after_control: dict[str, RolloutRecord | None] = {}
        observed: dict[str, bool] = {}

        def prepare(daemon: Daemon) -> None:
            original = daemon.scheduler.control

            def watched(revision: str, *args: Any, **kwargs: Any) -> None:
                original(revision, *args, **kwargs)
                after_control[revision] = daemon.journal.rollout("fleet")
                plan = daemon.state.plan
                observed[revision] = plan is not None and plan.revision == revision

            daemon.scheduler.control = watched  # type: ignore[method-assign]

        stage.prepare = prepare
        daemon = await stage.start()
        stage.merge({"policies/fleet.yaml": fleet_policy("1.4.4", **STRATEGY)}, "To 1.4.4")

        def halted() -> bool:
            roll = daemon.journal.rollout("fleet")
            return roll is not None and roll.halted

        await wait_for(halted, 90, "the halt")
        await wait_for(lambda: not daemon.rollouts_running(), 60, "the halted run to end")
        for name in edge:
            stage.fleet.device(name).faults.disk_full = False
        # Every observation of the fleet is slow from now on (r0000 is not in the policy).
        stage.fleet.device(stage.fleet.names[0]).faults.slow_seconds = 1.5
        retry = stage.merge(
            {"policies/fleet.yaml": fleet_policy("1.4.4", retry_token="1", **STRATEGY)}, "Retry"
        )
        await wait_for(lambda: retry in after_control, 60, "the retry taken in")
        roll = after_control[retry]
        assert not observed[retry]
        assert roll is not None and not roll.halted and roll.retry_token == "1", roll
        lifted = [e for e in stage.events("rollout-retry") if e.get("revision") == retry]
        assert len(lifted) == 1, stage.events("rollout-retry")

        await wait_for(
            lambda: all(stage.versions()[n] == "1.4.4" for n in edge),
            120,
            "the retried rollout",
        )
        await wait_for(lambda: not daemon.rollouts_running(), 60, "the run to end")
        roll = daemon.journal.rollout("fleet")
        assert roll is not None and not roll.halted, roll
        for name in edge:
            boots = [e for e in stage.fleet.device(name).log if e["event"] == "booted"]
            assert len(boots) == 1, (name, stage.fleet.device(name).log)


async def test_a_retry_after_a_reverted_boot_adds_the_image_again_on_1_4(tmp_path: Path) -> None:
    """A boot of the target that reverted leaves it installed but not default. 1.4 has no
    ``set_default`` over the API, so the retry must delete and add it again, not fail."""
    files = {"policies/fleet.yaml": fleet_policy("1.4.3", **STRATEGY)}
    async with staged_gitops(tmp_path, files, devices=4, boot_seconds=0.2, groups=False) as stage:
        daemon = stage.running
        edge = [d.name for d in stage.fleet.device_docs() if d.metadata.labels["tier"] == "edge"]
        for name in edge:
            stage.fleet.device(name).faults.boot_failure = "revert"
        stage.merge({"policies/fleet.yaml": fleet_policy("1.4.4", **STRATEGY)}, "To 1.4.4")

        def halted() -> bool:
            roll = daemon.journal.rollout("fleet")
            return roll is not None and roll.halted

        await wait_for(halted, 90, "the halt")
        await wait_for(lambda: not daemon.rollouts_running(), 60, "the halted run to end")
        reverted = [
            n for n in edge if any(e["event"] == "boot-failed" for e in stage.fleet.device(n).log)
        ]
        assert len(reverted) == 1, "the canary's boot reverted, and only the canary's"
        for name in edge:
            stage.fleet.device(name).faults.boot_failure = "none"
        retry = fleet_policy("1.4.4", retry_token="1", **STRATEGY)
        stage.merge({"policies/fleet.yaml": retry}, "Retry")
        await wait_for(
            lambda: all(stage.versions()[n] == "1.4.4" for n in edge), 120, "the retried rollout"
        )
        canary = stage.fleet.device(reverted[0])
        steps = [e["event"] for e in canary.log if e["event"] in ("image-delete", "image-add")]
        deleted = [e.get("name") for e in canary.log if e["event"] == "image-delete"]
        # add, delete of the reverted target, add again (then perhaps old images' cleanup)
        assert steps[:3] == ["image-add", "image-delete", "image-add"], canary.log
        assert deleted[0] == stage.fleet.device(reverted[0]).running, deleted
