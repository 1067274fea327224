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
from typing import Any

import pytest

from reconciler.rollout.model import Transition
from reconciler.simulator import api
from reconciler.simulator.device import VirtualDevice
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


def save_banner(dev: VirtualDevice, text: str) -> None:
    """An operator's `set system login banner ...` then `save`, on the running image."""
    dev.config.setdefault("system", {})["login"] = {"banner": text}
    dev.saved_config = {**dev.saved_config, "system": dict(dev.config["system"])}


@pytest.mark.parametrize("case", list(WHEN))
async def test_config_after_boot(tmp_path: Path, case: str) -> None:
    dev = make_device("r1")

    def operator(event: Transition) -> None:
        if event.to_phase in WHEN[case]:
            save_banner(dev, event.to_phase)

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


async def test_a_change_saved_during_the_backup_before_the_reboot_reaches_the_new_image(
    tmp_path: Path,
) -> None:
    """The operator saves a change while the daemon copies its pre-activation backup to
    the router, after it read the config: in neither the backup nor the add's copy. The
    daemon's last look before the reboot sees it and backs up again (chaos seed 7058 lost a
    change around the reboot; this is the window the daemon can close)."""
    dev = make_device("r1")
    record = dev.record
    changed: list[float] = []

    def operator_during_copy(now: float, event: str, **detail: Any) -> None:
        record(now, event, **detail)
        if event == "config-save" and detail.get("file") != "/config/config.boot" and not changed:
            changed.append(now)
            save_banner(dev, "late")

    dev.record = operator_during_copy  # type: ignore[method-assign]
    async with upgraded(tmp_path, dev) as (_, _, details):
        pass
    assert changed, "the operator's change was never made"
    assert dev.running == TARGET
    assert banner(dev.config) == "late", details
    assert dev.saved_config == dev.config
    copies = [e for e in dev.log if e["event"] == "config-save" and "pre-activation" in e["file"]]
    assert len(copies) == 2, copies  # backed up and copied again after the last look
    assert "config restored" in details["health"], details


async def test_a_change_saved_on_the_new_image_as_the_daemon_compares_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the boot the daemon reads the config, finds the add's stale copy and is about
    to load its backup; the operator saves a change on the new image just after that read.
    A last look before the load sees the change, which is kept (the load would have thrown
    it away)."""
    dev = make_device("r1")
    retrieve = api._HANDLERS["/retrieve"]
    changed: list[str] = []

    async def operator_after_read(sim: Any, device: Any, commands: list[Any]) -> Any:
        answer = await retrieve(sim, device, commands)
        # Booted on the add's stale copy (no banner), and this is the daemon's first read.
        booted = device is dev and dev.running == TARGET and banner(dev.config) is None
        if booted and commands[0]["op"] == "showConfig" and not changed:
            changed.append("on-new-image")
            save_banner(dev, "on-new-image")
        return answer

    monkeypatch.setitem(api._HANDLERS, "/retrieve", operator_after_read)

    def operator(event: Transition) -> None:
        if event.to_phase == "activate":  # after the add: the backup will hold it
            save_banner(dev, "activate")

    async with upgraded(tmp_path, dev, operator) as (_, _, details):
        pass
    assert changed, "the operator's change on the new image was never made"
    assert banner(dev.config) == "on-new-image", details
    assert [e for e in dev.log if e["event"] == "config-load"] == []
    assert "kept it" in details["health"], details
