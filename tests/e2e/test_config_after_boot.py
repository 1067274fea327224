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

from pathlib import Path

import pytest

from reconciler.rollout.model import Transition
from tests.support.rollout import TARGET, make_device
from tests.support.safety import upgraded

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

    def operator(event: Transition) -> None:
        if event.to_phase in WHEN[case]:
            # `set system login banner ...` then `save`, on the running image.
            dev.config.setdefault("system", {})["login"] = {"banner": event.to_phase}
            dev.saved_config = {**dev.saved_config, "system": dict(dev.config["system"])}

    async with upgraded(tmp_path, dev, operator) as (_, _, details):
        pass
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
