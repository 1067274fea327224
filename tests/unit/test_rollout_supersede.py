"""Which revisions supersede a running rollout, and which parked devices go back to pending.
(The daemon-level proof is tests/e2e/test_retarget_safety.py.)"""

from __future__ import annotations

import pytest

from reconciler.planning.progress import Phase
from reconciler.rollout.journal import DeviceRecord
from reconciler.rollout.supersede import back_to_pending, superseded
from tests.support.rollout import OLD, make_policy

RUNNING = make_policy().spec
DEVICES = ("r1", "r2")


@pytest.mark.parametrize(
    ("new", "reason"),
    [
        (None, "policy removed"),
        (make_policy(suspend=True), "suspended"),
        (make_policy(target={"version": OLD}), "target changed"),
        (make_policy(selector={"matchLabels": {"tier": "edge"}}), "selector changed"),
        (make_policy(windows=[]), "windows changed"),
        (make_policy(retryToken="again"), ""),
        (make_policy(), ""),
    ],
)
def test_what_supersedes_a_run(new: object, reason: str) -> None:
    assert superseded(RUNNING, DEVICES, new, DEVICES) == reason  # type: ignore[arg-type]


def test_a_removed_device_supersedes_its_run_only() -> None:
    assert superseded(RUNNING, DEVICES, make_policy(), ["r1"]) == "device removed: r2"
    assert superseded(RUNNING, ["r1"], make_policy(), ["r1", "r3"]) == ""


def test_a_suspended_run_is_not_superseded_by_staying_suspended() -> None:
    suspended = make_policy(suspend=True)
    assert superseded(suspended.spec, DEVICES, suspended, DEVICES) == ""


def test_only_devices_parked_before_their_reboot_go_back_to_pending() -> None:
    def rec(device: str, phase: Phase, marker: str = "") -> DeviceRecord:
        return DeviceRecord("fleet", device, "rev1", phase=phase, target="t", marker=marker)

    records = [
        rec("precheck", Phase.PRECHECK),
        rec("backup", Phase.BACKUP),
        rec("staged", Phase.STAGE, "staged"),
        rec("adding", Phase.STAGE, "add-issued"),
        rec("before-reboot", Phase.ACTIVATE),
        rec("rebooting", Phase.ACTIVATE, "reboot-issued"),
        rec("booting", Phase.AWAIT_BOOT),
        rec("health", Phase.HEALTH),
        rec("done", Phase.DONE),
        rec("failed", Phase.FAILED),
    ]
    out = back_to_pending(records, "superseded: target changed", "2026-01-01T00:00:00+00:00")
    assert [r.device for r in out] == ["precheck", "backup", "staged", "before-reboot"]
    for r in out:
        assert r.phase is Phase.PENDING and r.marker == ""
        assert r.last_error == "superseded: target changed"
        assert r.revision == "rev1"  # the attempt it belonged to is not rewritten
