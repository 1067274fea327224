"""Maintenance windows through the whole daemon: real git, the simulator, real wiring, on a
scaled clock. Issue 10, point 6.

The daemon gets a :class:`~tests.support.rollout.ScaledClock` (one real second is ten
minutes), the engine's production timings (15 min boot timeout, 10 s polls, 1 min window
polls) and the simulator's real boot time of 0.3 s, that is 3 minutes on that clock. The
simulator logs its reboots on the event loop's clock, which the scaled clock maps.
"""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from reconciler.rollout import RolloutSettings, Transition
from tests.support.daemon import config_files, free_port, make_daemon, wait_for
from tests.support.gitrepo import seeded_remote
from tests.support.rollout import OLD, OLDER, TARGET, ScaledClock, make_device
from tests.support.simulator import KEY_ENV, SimFleet, running_simulator

TWO_AM = datetime(2026, 1, 3, 2, 0, tzinfo=UTC)
FREEZE = TWO_AM + timedelta(minutes=3)
THAW = FREEZE + timedelta(minutes=30)


def _two_hop_files(upstream: Path, fleet: SimFleet) -> dict[str, str]:
    """Signed images of OLD and TARGET, where TARGET installs only over OLD or newer, and a
    policy with a 3 h window from 02:00 and a 30 min freeze from 02:03."""
    files, _ = config_files(upstream, fleet, [OLD, TARGET])
    images = list(yaml.safe_load_all(files["images/images.yaml"]))
    for doc in images:
        if doc["spec"]["version"] == TARGET:
            doc["spec"]["upgradeFrom"] = f">={OLD}"
    files["images/images.yaml"] = yaml.safe_dump_all(images, sort_keys=False)
    policy = {
        "apiVersion": "gitfirm.io/v1",
        "kind": "RolloutPolicy",
        "metadata": {"name": "fleet"},
        "spec": {
            "selector": {"matchLabels": {}},
            "target": {"version": TARGET},
            "strategy": {"canary": 1, "waves": [100], "pause": "0s"},
            "windows": [
                {"type": "allow", "schedule": "0 2 * * *", "duration": "3h"},
                {"type": "deny", "schedule": f"{FREEZE.minute} 2 * * *", "duration": "30m"},
            ],
        },
    }
    files["policies/fleet.yaml"] = yaml.safe_dump(policy, sort_keys=False)
    return files


async def test_a_freeze_holds_the_reboot_of_a_later_hop_through_the_daemon(
    tmp_path: Path,
) -> None:
    """One router two hops away (OLDER -> OLD -> TARGET). The window opens at 02:00 and a
    freeze starts at 02:03, three minutes later: each reboot takes 3 minutes, so no step
    (30 min by default) fits before it. No router reboot may land in the freeze, and the
    second hop's reboot comes after it."""
    dev = make_device("mh", images=("1.5-rolling-202409250007", OLDER))
    # From 01:00 the daemon has 6 s (real) to start before the window opens (about 1 s).
    clock = ScaledClock(TWO_AM - timedelta(hours=1), scale=600)
    events: list[Transition] = []
    async with running_simulator(devices=[dev], boot_seconds=0.3) as fleet:
        remote, _ = seeded_remote(tmp_path / "git", _two_hop_files(tmp_path / "up", fleet))
        daemon = make_daemon(
            remote,
            tmp_path / "state",
            free_port(),
            {KEY_ENV: fleet.api_key},
            io.StringIO(),
            clock=clock,
            rollout=RolloutSettings(),  # production timings, on the scaled clock
            poll_interval=600,
            status_coalesce=0,
        )
        daemon.listeners.append(events.append)
        stop = asyncio.Event()
        task = asyncio.create_task(daemon.run(stop))
        try:
            await wait_for(
                lambda: task.done() or any(e.hop == 1 and e.to_phase == "done" for e in events),
                30,
                "the second hop done",
            )
            if task.done():
                task.result()
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)
    assert dev.running == TARGET
    staged = [e.time for e in events if e.to_phase == "stage"]
    assert staged and staged[0] < FREEZE, "the daemon started the device before the freeze"
    reboots = [(e["image"], clock.at(e["at"])) for e in dev.log if e["event"] == "reboot"]
    inside = [(image, t.time()) for image, t in reboots if FREEZE <= t < THAW]
    assert inside == [], "a reboot inside the freeze"
    assert [image for image, _ in reboots] == [OLD, TARGET]
    assert reboots[1][1] >= THAW
