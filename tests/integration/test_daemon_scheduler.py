"""The scheduler through the whole daemon: real git pushes, the simulator, real wiring.

Each test pushes commits to a bare remote while a :class:`~reconciler.daemon.Daemon` polls
it, and judges by what the simulated routers logged (image adds, reboots) and by the
daemon's own JSON log (transitions, rollout runs). Issue 10, points 1, 2, 5 and 7.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import yaml

from tests.support.daemon import wait_for
from tests.support.gitrepo import git
from tests.support.scheduling import Stage, max_concurrent_runs, staged_gitops
from tests.support.scheduling import fleet_policy as _policy


def _runs_after(stage: Stage, revision: str) -> int:
    """Rollout runs started after ``revision`` was applied (or restored)."""
    events = stage.events()
    applied = [
        i for i, e in enumerate(events)
        if e.get("event") in ("applied", "restored") and e.get("revision") == revision
    ]  # fmt: skip
    if not applied:
        return 0
    return sum(1 for e in events[applied[-1] :] if e.get("event") == "rollout-start")


def _all_upgraded(stage: Stage) -> bool:
    return set(stage.versions().values()) == {"1.4.4"}


@contextlib.asynccontextmanager
async def racing_rollout(tmp_path: Path, until: Callable[[Stage], bool]) -> AsyncIterator[Stage]:
    """8 routers rolled to 1.4.4 while observation (every 0.3 s) races the source loop's
    passes and the rollouts' ends: comment-only commits, each a new revision, land every
    0.15 s until ``until`` holds (or 120 have landed)."""
    files = {"policies/fleet.yaml": _policy("1.4.3")}
    async with staged_gitops(
        tmp_path, files, devices=8, boot_seconds=0.3, observe_interval=0.3
    ) as stage:
        stage.merge({"policies/fleet.yaml": _policy("1.4.4")}, "Roll the fleet to 1.4.4")
        for n in range(1, 120):
            if until(stage):
                break
            stage.merge({"policies/fleet.yaml": _policy("1.4.4", note=f"note {n}")}, f"note {n}")
            await asyncio.sleep(0.15)
        yield stage


async def test_unrelated_commits_during_a_rollout_never_drive_a_device_twice(
    tmp_path: Path,
) -> None:
    async with racing_rollout(tmp_path, _all_upgraded) as stage:
        await wait_for(lambda: _all_upgraded(stage), 90, "the rollout")
        await wait_for(lambda: not stage.running.rollouts_running(), 30, "runs to end")
        for name in stage.fleet.names:
            assert stage.router_events(name, "image-add") == 1, stage.fleet.device(name).log
            assert stage.router_events(name, "reboot") == 1, stage.fleet.device(name).log
        assert max_concurrent_runs(stage.events(), "fleet") == 1


async def test_suspend_stops_starting_devices_before_the_revision_is_observed(
    tmp_path: Path,
) -> None:
    # r0000 (tier core) is outside the policy and answers slowly: every observation of the
    # fleet is long, and only control-first can stop devices from starting during it.
    edge: dict[str, Any] = {"selector": {"tier": "edge"}, "maxParallel": 1}
    files = {"policies/fleet.yaml": _policy("1.4.3", **edge)}
    async with staged_gitops(
        tmp_path, files, devices=10, boot_seconds=0.2, start=False, groups=False
    ) as stage:
        slow = stage.fleet.names[0]
        stage.fleet.device(slow).faults.slow_seconds = 1.5
        daemon = await stage.start()
        stage.merge({"policies/fleet.yaml": _policy("1.4.4", **edge)}, "Roll the edge to 1.4.4")
        await wait_for(lambda: len(stage.starts()) >= 2, 60, "the canary and the next device")
        suspend = stage.merge(
            {"policies/fleet.yaml": _policy("1.4.4", suspend=True, **edge)}, "Suspend"
        )
        await wait_for(lambda: daemon.state.verified == suspend, 30, "the suspend in force")
        await wait_for(
            lambda: daemon.state.plan is not None and daemon.state.plan.revision == suspend,
            60,
            "the suspend revision observed and planned",
        )
        await wait_for(lambda: not daemon.rollouts_running(), 60, "in-flight devices done")
        events = stage.events()
        applied = next(
            i for i, e in enumerate(events)
            if e.get("event") == "applied" and e.get("revision") == suspend
        )  # fmt: skip
        late = [
            e["device"] for e in events[applied:]
            if e.get("event") == "transition" and e["phase"].endswith("->precheck")
        ]  # fmt: skip
        assert late == [], f"started after the suspend was verified: {late}"
        assert slow not in stage.starts()
        # Devices that started before the suspend finished their upgrade.
        for name in stage.starts():
            assert stage.versions()[name] == "1.4.4"
        edge_devices = [
            d.name for d in stage.fleet.device_docs() if d.metadata.labels.get("tier") == "edge"
        ]
        assert any(stage.versions()[n] == "1.4.3" for n in edge_devices), "nothing suspended"


SOAK: dict[str, Any] = {"pause": "1h"}


async def _soaking_canary(stage: Stage) -> list[str]:
    """Roll to 1.4.4 with a 1 h soak pause; once the canary's wave passed, the canary."""
    stage.merge({"policies/fleet.yaml": _policy("1.4.4", **SOAK)}, "Roll to 1.4.4")

    def canary_passed() -> bool:
        record = stage.running.journal.rollout("fleet")
        return record is not None and bool(record.wave_passed_at)

    await wait_for(canary_passed, 60, "the canary wave to pass")
    canary = stage.starts()
    assert len(canary) == 1 and stage.versions()[canary[0]] == "1.4.4"
    return canary


async def _restart_keeps_the_pause(stage: Stage, canary: list[str]) -> None:
    """Stop and start the daemon; the soak pause still holds the next wave."""
    await stage.stop()
    # The pausing run was stopped with the daemon: nothing of it is left running.
    left = [t.get_name() for t in asyncio.all_tasks() if not t.done()]
    assert not [n for n in left if n.startswith(("rollout:", "loop:", "device:"))], left
    runs = len(stage.events("rollout-start"))
    daemon = await stage.start()
    await wait_for(lambda: len(stage.events("rollout-start")) > runs, 30, "a run after restart")
    await daemon.reconcile(None)  # a full pass more: time for a wrong start
    assert stage.starts() == canary, "a restart ended the soak pause"
    assert sorted(stage.versions().values()) == ["1.4.3", "1.4.3", "1.4.3", "1.4.4"]


async def test_soak_pause_holds_across_an_unrelated_commit_and_a_restart(tmp_path: Path) -> None:
    files = {"policies/fleet.yaml": _policy("1.4.3", **SOAK)}
    async with staged_gitops(tmp_path, files, devices=4) as stage:
        canary = await _soaking_canary(stage)
        note = stage.merge({"policies/fleet.yaml": _policy("1.4.4", note="x", **SOAK)}, "note")
        await wait_for(lambda: _runs_after(stage, note) > 0, 30, "a run on the new revision")
        await stage.running.reconcile(None)  # a full pass more: time for a wrong start
        assert stage.starts() == canary, "an unrelated commit ended the soak pause"
        await _restart_keeps_the_pause(stage, canary)


async def test_soak_pause_holds_across_a_restart(tmp_path: Path) -> None:
    files = {"policies/fleet.yaml": _policy("1.4.3", **SOAK)}
    async with staged_gitops(tmp_path, files, devices=4) as stage:
        await _restart_keeps_the_pause(stage, await _soaking_canary(stage))


async def test_one_unreachable_device_does_not_stall_its_policy(tmp_path: Path) -> None:
    # maxUnavailable is 1 (the default): an unreachable router that nobody touched must
    # not use it up.
    files = {"policies/fleet.yaml": _policy("1.4.3")}
    async with staged_gitops(tmp_path, files, devices=4) as stage:
        down = stage.fleet.names[-1]
        stage.fleet.device(down).faults.unreachable = True
        daemon = stage.running
        stage.merge({"policies/fleet.yaml": _policy("1.4.4")}, "Roll to 1.4.4")
        others = [n for n in stage.fleet.names if n != down]
        await wait_for(
            lambda: all(stage.versions()[n] == "1.4.4" for n in others), 60, "the reachable ones"
        )
        assert stage.fleet.device(down).log == []
        await wait_for(lambda: not daemon.rollouts_running(), 30, "the first run to end")

        def waiting() -> str:
            try:
                doc = yaml.safe_load(git(stage.remote, "show", "status:rollouts/fleet.yaml"))
            except RuntimeError:  # not written yet
                return ""
            return str(doc.get("waitingReason") or "")

        # The status says why the policy is not done, and names the device.
        await wait_for(lambda: down in waiting(), 30, "the reason in status")
        assert "unreachable" in waiting()
        # Once it answers, a later pass takes it along.
        stage.fleet.device(down).faults.unreachable = False
        await daemon.reconcile(None)
        await wait_for(lambda: stage.versions()[down] == "1.4.4", 60, "the late device")
        assert stage.router_events(down, "image-add") == 1


async def test_an_in_flight_device_keeps_its_image_url_when_a_revision_renames_the_image(
    tmp_path: Path,
) -> None:
    # The new revision names the 1.4.4 Image differently. Devices already going keep the
    # verified, stored image they started with; none fails for a URL the new revision
    # has not verified yet. r0000 (outside the policy) makes every observation slow.
    edge: dict[str, Any] = {"selector": {"tier": "edge"}, "maxParallel": 1}
    files = {"policies/fleet.yaml": _policy("1.4.3", **edge)}
    async with staged_gitops(
        tmp_path, files, devices=10, boot_seconds=0.2, start=False, groups=False
    ) as stage:
        stage.fleet.device(stage.fleet.names[0]).faults.slow_seconds = 1.5
        daemon = await stage.start()
        stage.merge({"policies/fleet.yaml": _policy("1.4.4", **edge)}, "Roll the edge to 1.4.4")
        await wait_for(lambda: len(stage.starts()) >= 2, 60, "the canary and the next device")
        images = (stage.work / "images" / "images.yaml").read_text()
        docs = list(yaml.safe_load_all(images))
        for doc in docs:
            if doc["spec"]["version"] == "1.4.4":
                doc["metadata"]["name"] = "vyos-1-4-4-renamed"
        renamed = stage.merge(
            {"images/images.yaml": yaml.safe_dump_all(docs, sort_keys=False)}, "Rename"
        )
        await wait_for(lambda: daemon.state.verified == renamed, 30, "the rename in force")
        edge_devices = [
            d.name for d in stage.fleet.device_docs() if d.metadata.labels.get("tier") == "edge"
        ]
        await wait_for(
            lambda: all(stage.versions()[n] == "1.4.4" for n in edge_devices), 120, "the rollout"
        )
        failed = [e for e in stage.events("transition") if e["phase"].endswith("->rollback")]
        assert failed == [], failed
        for name in edge_devices:
            assert stage.router_events(name, "image-add") == 1


async def test_a_stop_while_passes_race_leaves_no_rollout_behind(tmp_path: Path) -> None:
    async with racing_rollout(tmp_path, lambda stage: len(stage.starts()) >= 4) as stage:
        await stage.stop()
        # The daemon has returned: none of its rollouts, device steps or loops still runs
        # (a task it lost track of would go on driving routers, on a closed journal).
        left = [
            t.get_coro() for t in asyncio.all_tasks()
            if not t.done() and _daemon_code(t.get_coro())
        ]  # fmt: skip
        assert left == [], f"tasks outlived the daemon: {left}"


def _daemon_code(coro: object) -> bool:
    """Whether a task's coroutine is the daemon's own (not the simulator's or the test's)."""
    code = getattr(coro, "cr_code", None)
    path = code.co_filename if code is not None else ""
    return "/reconciler/" in path and "/reconciler/simulator/" not in path
