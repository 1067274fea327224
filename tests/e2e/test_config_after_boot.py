"""The config a router boots its new image with, through the whole daemon and the simulator.

VyOS copies the saved config into the new image at ``/image add`` time. The daemon saves
and backs the config up again right before the reboot and compares after the boot:

- nothing changed: nothing is loaded, nothing is reported;
- an operator changed (and saved) the config after the add, before the reboot: the image
  booted the add's stale copy, so the backup's copy is loaded and saved, and reported;
- an operator changed (and saved) the config on the new image, after the boot and before
  the daemon's comparison: that change is newer than the backup, so it is kept, and
  reported (chaos seed 32 lost such changes to the restore);
- both: the change on the new image is kept, and the report says the backup holds a
  change made after the add (for a human to merge).
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from reconciler.rollout.model import Transition
from tests.support.daemon import (
    ALWAYS_OPEN,
    config_files,
    free_port,
    make_daemon,
    policy_yaml,
    wait_for,
)
from tests.support.gitrepo import seeded_remote
from tests.support.rollout import OLD, TARGET, make_device
from tests.support.safety import journal_phases
from tests.support.simulator import KEY_ENV, running_simulator

BANNER = ("system", "login", "banner")
WHEN = {
    "unchanged": (),
    "after-add": ("activate",),
    "on-new-image": ("verify",),
    "both": ("activate", "verify"),
}
"""Per case, the phases whose entry the operator's changes land on (after the add and
before the reboot; after the boot and before the comparison)."""


def banner(config: dict[str, object]) -> object:
    """The login banner of a simulated config tree (None if unset)."""
    login = config.get("system", {}).get("login", {})  # type: ignore[attr-defined]
    return login.get("banner") if isinstance(login, dict) else None


@pytest.mark.parametrize("case", list(WHEN))
async def test_config_after_boot(tmp_path: Path, case: str) -> None:
    dev = make_device("r1")
    async with running_simulator(devices=[dev]) as fleet:
        files, _ = config_files(tmp_path / "upstream", fleet, [OLD, TARGET])
        files["policies/fleet.yaml"] = policy_yaml(TARGET, window=ALWAYS_OPEN, maxParallel=1)
        remote, _ = seeded_remote(tmp_path / "git", files)
        state = tmp_path / "state"
        daemon = make_daemon(remote, state, free_port(), {KEY_ENV: fleet.api_key},
                             io.StringIO(), poll_interval=0.2, status_coalesce=0)  # fmt: skip
        details: dict[str, str] = {}

        def operator(event: Transition) -> None:
            details[event.to_phase] = event.detail
            if event.to_phase in WHEN[case]:
                # `set system login banner ...` then `save`, on the running image.
                dev.config.setdefault("system", {})["login"] = {"banner": event.to_phase}
                dev.saved_config = {**dev.saved_config, "system": dict(dev.config["system"])}

        daemon.listeners.append(operator)
        stop = asyncio.Event()
        task = asyncio.create_task(daemon.run(stop))
        try:
            await wait_for(
                lambda: journal_phases(state).get("r1") in ("done", "failed") or task.done(),
                60,
                "the upgrade",
            )
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)
    assert journal_phases(state)["r1"] == "done", details
    assert dev.running == TARGET
    assert dev.saved_config == dev.config
    loads = [e for e in dev.log if e["event"] == "config-load"]
    health = details["health"]
    if case == "unchanged":
        assert banner(dev.config) is None
        assert dev.config == {"system": {"host-name": "r1"}}
        assert loads == [] and "config" not in health, health
    elif case == "after-add":
        # The image booted the add's copy, without the banner; the backup had it.
        assert banner(dev.config) == "activate"
        assert len(loads) == 1 and "config restored" in health, health
    else:
        # The banner was set on the new image; the backup (and a restore) lacks it.
        assert banner(dev.config) == "verify"
        assert loads == [] and "kept it" in health, health
        later = "the backup holds a change made after the image add"
        assert (later in health) == (case == "both"), health
