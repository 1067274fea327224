"""The daemon runs git off the event loop's thread when it applies a revision.

At 10,000 devices every call that blocks the loop stalls every device, probe and request
(docs/scaling.md). Through the real daemon, a real remote and the simulator: no git
command of the mirror runs on the loop's thread while a revision is restored at start and
a new one applied.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from reconciler import daemon as daemon_module
from reconciler.report.snapshot import StatusSnapshot
from reconciler.rollout.model import Transition
from reconciler.source.git import Repository
from tests.support.daemon import wait_for
from tests.support.scheduling import fleet_policy, staged_gitops


async def test_applying_a_revision_runs_git_in_worker_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_thread = threading.get_ident()
    on_loop: list[tuple[str, ...]] = []
    real = Repository.run

    def run(self: Repository, *args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() == loop_thread:
            on_loop.append(tuple(a for a in args if isinstance(a, str)))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Repository, "run", run)
    files = {"policies/fleet.yaml": fleet_policy("1.4.3")}
    async with staged_gitops(tmp_path, files, devices=2, start=False) as stage:
        first = await stage.start()
        head = stage.merge({"policies/fleet.yaml": fleet_policy("1.4.4")}, "Roll to 1.4.4")
        await wait_for(lambda: first.state.verified == head, 30, "the new revision applied")
        await stage.stop()
        again = await stage.start()  # restores the verified revision from the state dir
        assert again.state.verified == head
    assert on_loop == [], on_loop


async def test_the_secrets_are_sorted_when_one_is_added_not_per_transition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every transition hands the daemon's secrets to the sanitizer: with a key per
    device they are 10,000, so they are sorted when one is added, not on each use, and
    the sanitizer gets the same tuple each time (it indexes a large one once)."""
    sorts = [0]

    def counting_sorted(items: Any, **kwargs: Any) -> Any:
        if stage.daemon is not None and items is stage.daemon._secrets:
            sorts[0] += 1
        return sorted(items, **kwargs)

    monkeypatch.setattr(daemon_module, "sorted", counting_sorted, raising=False)
    files = {"policies/fleet.yaml": fleet_policy("1.4.3")}
    async with staged_gitops(tmp_path, files, devices=4, start=False) as stage:
        daemon = await stage.start()
        stage.merge({"policies/fleet.yaml": fleet_policy("1.4.4")}, "Roll to 1.4.4")
        await wait_for(lambda: set(stage.versions().values()) == {"1.4.4"}, 60, "the rollout")
        transitions = sum(1 for e in stage.events() if e.get("event") == "transition")
        assert transitions >= 4 * 6, transitions
        assert sorts[0] <= 3, sorts  # at start and per applied revision, not per transition
        seen = daemon.secrets
        assert daemon.secrets is seen
        daemon._remember("a-new-secret-value")
        assert daemon.secrets is not seen and "a-new-secret-value" in daemon.secrets


async def test_devices_moving_in_one_turn_of_the_loop_make_one_status_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A snapshot covers the whole fleet: 100 devices starting together built 200 of them
    in one turn of the event loop. Transitions in one turn hand the writer one snapshot,
    in the next turn, holding all of them."""
    files = {"policies/fleet.yaml": fleet_policy("1.4.3")}
    async with staged_gitops(tmp_path, files, devices=4) as stage:
        daemon = stage.running
        await wait_for(lambda: daemon.state.plan is not None, 30, "the first pass")
        handed: list[StatusSnapshot] = []
        real = daemon.writer.submit

        def submit(snapshot: StatusSnapshot) -> None:
            handed.append(snapshot)
            real(snapshot)

        monkeypatch.setattr(daemon.writer, "submit", submit)
        names = stage.fleet.names
        revision = daemon.state.verified or ""
        for name in names:
            event = Transition(name, "pending", "precheck", revision, "fleet", daemon.clock.now())
            daemon._on_transition(event)
        assert handed == []
        await asyncio.sleep(0)
        assert len(handed) == 1, len(handed)
        phases = {d.name: d.phase for d in handed[0].devices}
        assert all(phases[name] == "precheck" for name in names), phases


async def test_the_alert_inputs_of_a_plan_are_built_in_a_worker_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each device's wave and advisories, per device of the plan: off the loop's thread."""
    loop_thread = threading.get_ident()
    on_loop: list[bool] = []
    real = daemon_module._alert_inputs

    def alert_inputs(plan: Any) -> Any:
        on_loop.append(threading.get_ident() == loop_thread)
        return real(plan)

    monkeypatch.setattr(daemon_module, "_alert_inputs", alert_inputs)
    files = {"policies/fleet.yaml": fleet_policy("1.4.3")}
    async with staged_gitops(tmp_path, files, devices=2) as stage:
        await wait_for(lambda: stage.running.state.plan is not None, 30, "the first pass")
    assert on_loop and not any(on_loop), on_loop
