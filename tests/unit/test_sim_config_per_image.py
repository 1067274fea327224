"""The simulator's per-image config (real VyOS): an install copies the saved config
into the new image; a change saved after the install is not in the image that boots next."""

from __future__ import annotations

from reconciler.simulator.device import VirtualDevice


def device() -> VirtualDevice:
    return VirtualDevice(
        "r1", "amd64", "generic", ["1.4.3"], "1.4.3", "1.4.3",
        config={"system": {"host-name": "r1"}},
    )  # fmt: skip


def save(dev: VirtualDevice, description: str) -> None:
    dev.config = {**dev.config, "description": description}
    dev.saved_config = dict(dev.config)


def reboot(dev: VirtualDevice, now: float) -> None:
    dev.start_reboot(now, 1.0)
    dev.tick(now + 1.0)


def test_a_change_saved_after_the_install_is_lost_at_the_upgrade_and_back_on_rollback() -> None:
    dev = device()
    save(dev, "before-add")
    dev.install("1.4.4")
    save(dev, "after-add")
    reboot(dev, 10.0)
    assert dev.running == "1.4.4"
    assert dev.config["description"] == "before-add"  # the copy taken at install time
    dev.default = "1.4.3"
    reboot(dev, 20.0)
    assert dev.running == "1.4.3"
    assert dev.config["description"] == "after-add"  # the old image kept its own config
