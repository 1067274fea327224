"""The chaos invariant checker on hand-made records: a clean log passes, and each invariant
is detected on its own."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from reconciler.model.kinds import Window
from reconciler.simulator.device import VirtualDevice
from reconciler.simulator.events import fleet_events
from tests.chaos.invariants import ChaosRecord, ConfigMark, DeviceFinal, check

# 2026-12-01 06:00:00 UTC; the always-open window below and a window open 06:00-06:01.
T0 = datetime(2026, 12, 1, 6, 0, tzinfo=UTC).timestamp()
ALWAYS = [Window.model_validate({"schedule": "0 0 * * *", "duration": "24h"})]
SIX_TO_ONE_PAST = [Window.model_validate({"schedule": "0 6 * * *", "duration": "1m"})]
NOTE = ("interfaces", "dummy", "dum0", "description")


def ev(at: float, device: str, event: str, **detail: Any) -> dict[str, Any]:
    return {"at": at, "wall": T0 + at, "device": device, "event": event, **detail}


def upgrade(device: str, at: float, new: str) -> list[dict[str, Any]]:
    """A clean 1.5 upgrade: add, set-default, save, reboot, boot."""
    return [
        ev(at, device, "image-add", version=new),
        ev(at + 1, device, "image-installed", name=new),
        ev(at + 2, device, "set-default", name=new),
        ev(at + 3, device, "config-save", file="/config/config.boot"),
        ev(at + 4, device, "reboot", image=new),
        ev(at + 6, device, "boot-ok", image=new),
    ]


def transition(device: str, at: float, phase: str, revision: str = "rev1") -> dict[str, Any]:
    return {"device": device, "phase": phase, "revision": revision, "wall": T0 + at}


def clean() -> ChaosRecord:
    """Two routers of one pair upgraded one after the other, all recorded."""
    old, new = "2025.01.10-0020-rolling", "2025.02.14-0021-rolling"
    config = {"interfaces": {"dummy": {"dum0": {"description": "chaos-0"}}}}
    return ChaosRecord(
        events=upgrade("r1", 0, new) + upgrade("r2", 10, new),
        families={"r1": "1.5", "r2": "1.5"},
        initial={"r1": [old], "r2": [old]},
        final={"r1": DeviceFinal(new, config=config), "r2": DeviceFinal(new)},
        groups={"r1": "pair-1", "r2": "pair-1"},
        windows={"r1": ALWAYS, "r2": ALWAYS},
        status_phases={"r1": ("done", new), "r2": ("done", new)},
        status_transitions={("r1", "done"), ("r2", "done")},
        transitions=[
            transition("r1", -0.5, "backup->stage"),
            transition("r1", 7, "health->done"),
            transition("r2", 9.5, "backup->stage"),
            transition("r2", 17, "health->done"),
        ],
        marks=[ConfigMark("r1", NOTE, "chaos-0", T0 + 1)],
    )


def kinds(record: ChaosRecord) -> list[str]:
    return [v.kind for v in check(record)]


def test_a_clean_record_passes() -> None:
    assert check(clean()) == []


def test_a_second_add_of_one_hop_in_one_revision_is_caught() -> None:
    record = clean()
    record.events.insert(1, ev(0.01, "r1", "image-add", version="2025.02.14-0021-rolling"))
    assert kinds(record) == ["double-add"]
    assert "another add of it runs" in check(record)[0].detail


def test_an_add_of_an_installed_image_is_caught() -> None:
    record = clean()
    record.events.append(ev(30, "r2", "image-add", version="2025.02.14-0021-rolling"))
    assert kinds(record) == ["double-add"]
    assert "while it is installed" in check(record)[0].detail


def test_a_retried_failed_add_counts_per_revision() -> None:
    record = clean()
    failed = [
        ev(-3, "r1", "image-add", version="2025.02.14-0021-rolling"),
        ev(-2.5, "r1", "image-add-failed", error="no space"),
    ]
    record.events[:0] = failed
    record.transitions.insert(0, transition("r1", -3.5, "backup->stage"))
    assert kinds(record) == ["double-add"]  # both adds in rev1
    record.transitions[1:2] = [transition("r1", -0.5, "backup->stage", revision="rev2")]
    assert check(record) == []  # a retry under a new revision (retryToken, retarget) is fine


def test_one_re_add_after_a_failed_add_and_a_daemon_stop_is_allowed() -> None:
    # r1's add failed while the daemon was being killed; the next process added again.
    new = "2025.02.14-0021-rolling"
    record = clean()
    record.events[:0] = [
        ev(-3, "r1", "image-add", version=new),
        ev(-2.5, "r1", "image-add-failed", error="Download failed: HTTP 503"),
    ]
    record.transitions.insert(0, transition("r1", -3.5, "backup->stage"))
    assert kinds(record) == ["double-add"]  # no stop in between: caught
    record.stops = [T0 - 2]
    assert check(record) == []
    # One stop excuses one re-add: a third add in the revision needs another failure and
    # another stop.
    record.events[2:2] = [
        ev(-1.5, "r1", "image-add", version=new),
        ev(-1, "r1", "image-add-failed", error="no space"),
    ]
    assert kinds(record) == ["double-add"]
    record.stops.append(T0 - 0.5)
    assert check(record) == []


def test_a_stop_excuses_no_re_add_while_the_first_add_runs_or_succeeded() -> None:
    new = "2025.02.14-0021-rolling"
    record = clean()
    record.stops = [T0 + 0.5]
    record.events.insert(1, ev(0.8, "r1", "image-add", version=new))  # the first still runs
    found = check(record)
    assert [v.kind for v in found] == ["double-add"]
    assert "another add of it runs" in found[0].detail
    record = clean()
    record.stops = [T0 + 1.5]
    record.events.insert(2, ev(1.8, "r1", "image-add", version=new))  # already installed
    assert kinds(record) == ["double-add"]


def test_both_members_of_a_pair_down_at_once_is_caught() -> None:
    record = clean()
    record.events += [ev(5, "r2", "reboot", image="2025.01.10-0020-rolling")]
    record.events += [ev(5.5, "r2", "boot-ok", image="2025.01.10-0020-rolling")]
    assert kinds(record) == ["redundancy"]


def test_a_boot_seen_late_counts_from_the_boot_time() -> None:
    record = clean()
    # r1 reboots at 4 and the simulator records its boot when next polled, at 15: after r2
    # went down at 14.
    record.events[5] = ev(15, "r1", "boot-ok", image="2025.02.14-0021-rolling")
    assert kinds(record) == ["redundancy"]
    record.boot_seconds = 2.0  # a boot takes 2 s: r1 was up again at 6
    assert check(record) == []


def test_a_member_that_never_boots_stays_down() -> None:
    record = clean()
    r1 = upgrade("r1", 0, "2025.02.14-0021-rolling")[:5]
    record.events = [*r1, ev(6, "r1", "boot-fail", outcome="never"), *record.events[6:]]
    record.final["r1"] = DeviceFinal("2025.01.10-0020-rolling", dead=True)
    assert "redundancy" in kinds(record)


def test_both_members_of_a_pair_in_flight_at_once_is_caught() -> None:
    record = clean()  # r1 in flight from -0.5 to 7, r2 from 9.5 to 17
    record.transitions.append(transition("r2", 6, "pending->precheck"))
    found = check(record)
    assert [v.kind for v in found] == ["redundancy"]
    assert "both in flight" in found[0].detail


def test_a_daemon_stop_ends_flight_only_before_the_disruptive_steps() -> None:
    # r2 reached backup, then the daemon was killed; the next process started r1 and, after
    # it, r2 over from pending. Had r2 reached await-boot, it would have stayed in flight.
    record = clean()
    record.transitions.append(transition("r2", -3, "precheck->backup"))
    assert [v.kind for v in check(record)] == ["redundancy"]
    record.stops = [T0 - 2]
    assert check(record) == []
    record.transitions.append(transition("r2", -2.5, "activate->await-boot"))
    assert [v.kind for v in check(record)] == ["redundancy"]


def test_a_reboot_outside_the_allow_window_is_caught() -> None:
    record = clean()
    record.windows = {"r1": SIX_TO_ONE_PAST, "r2": SIX_TO_ONE_PAST}
    assert check(record) == []  # everything happens inside 06:00-06:01
    record.events += upgrade("r3", 61, "1.4.4")
    record.initial["r3"], record.families["r3"] = ["1.4.3"], "1.4"
    record.windows["r3"] = SIX_TO_ONE_PAST
    found = check(record)
    assert [v.kind for v in found] == ["window", "window"]  # the arming add and the reboot
    assert "image add" in found[0].detail and "reboot" in found[1].detail


def test_a_reboot_inside_a_deny_window_is_caught() -> None:
    record = clean()
    deny = Window.model_validate({"type": "deny", "schedule": "0 6 * * *", "duration": "5s"})
    record.windows["r1"] = [*ALWAYS, deny]
    assert kinds(record) == ["window"]  # r1 rebooted at 06:00:04


def test_a_rollback_reboot_is_not_an_activation() -> None:
    record = clean()
    record.windows["r1"] = []
    record.events = [e for e in record.events if e["device"] != "r1"]
    record.events.append(ev(1, "r1", "reboot", image="2025.01.10-0020-rolling"))
    record.events.append(ev(2, "r1", "boot-ok", image="2025.01.10-0020-rolling"))
    record.final["r1"] = DeviceFinal("2025.01.10-0020-rolling")
    record.status_phases["r1"] = ("failed", "2025.02.14-0021-rolling")
    record.status_transitions.add(("r1", "failed"))
    record.marks = []
    assert check(record) == []


def test_a_device_left_on_the_new_image_with_its_gate_failing_is_caught() -> None:
    record = clean()
    record.final["r2"] = DeviceFinal("2025.02.14-0021-rolling", bgp_down=True)
    record.status_phases["r2"] = ("failed", "2025.02.14-0021-rolling")
    assert kinds(record) == ["failed-gate"]


def test_done_on_the_wrong_image_or_with_a_failing_gate_is_caught() -> None:
    record = clean()
    record.status_phases["r2"] = ("done", "2025.03.01-0010-rolling")
    assert kinds(record) == ["phase-facts"]
    record = clean()
    record.families["r2"] = "1.4"  # no rollback over the API: failed-gate does not apply
    record.final["r2"] = DeviceFinal("2025.02.14-0021-rolling", bgp_down=True)
    assert kinds(record) == ["phase-facts"]


def test_in_flight_after_the_fleet_went_quiet_is_caught() -> None:
    record = clean()
    record.status_phases["r2"] = ("health", "2025.02.14-0021-rolling")
    assert kinds(record) == ["phase-facts"]
    record.quiescent = False
    assert check(record) == []


def test_a_terminal_transition_missing_from_the_status_branch_is_caught() -> None:
    record = clean()
    record.status_transitions.discard(("r2", "done"))
    assert check(record) == []  # the current phase still says done
    record.status_phases["r2"] = ("pending", "2025.02.14-0021-rolling")
    assert kinds(record) == ["missing-transition"]


def test_a_transition_in_any_rollout_file_of_the_status_branch_counts_as_recorded() -> None:
    # The trailers missed r2's done (the phase moved on before a commit showed it), but an
    # earlier commit's rollouts/<policy>.yaml lists it among its events.
    record = clean()
    record.status_transitions.discard(("r2", "done"))
    record.status_phases["r2"] = ("pending", "2025.03.01-0010-rolling")
    assert kinds(record) == ["missing-transition"]
    record.status_events = {("r2", "failed"), ("r1", "done")}
    assert kinds(record) == ["missing-transition"]  # another phase or device does not count
    record.status_events.add(("r2", "done"))
    assert check(record) == []


def test_lost_config_is_caught_unless_it_raced_the_reboot() -> None:
    record = clean()
    record.final["r1"] = DeviceFinal("2025.02.14-0021-rolling")
    assert kinds(record) == ["lost-config"]
    record.marks = [ConfigMark("r1", NOTE, "chaos-0", T0 + 3.5)]  # 0.5 s before the reboot
    assert check(record) == []


def test_a_change_saved_on_a_new_image_that_was_rolled_back_is_not_lost_config() -> None:
    # r1 booted the new image at 6, the operator saved a change on it at 6.5, the health
    # gate failed and r1 rebooted into its old image (8.7), which boots its own config.
    old, new = "2025.01.10-0020-rolling", "2025.02.14-0021-rolling"
    record = clean()
    rollback = [ev(8.7, "r1", "reboot", image=old), ev(8.9, "r1", "boot-ok", image=old)]
    record.marks = [ConfigMark("r1", NOTE, "chaos-0", T0 + 6.5)]
    record.final["r1"] = DeviceFinal(old)
    record.status_phases["r1"] = ("failed", new)
    record.status_transitions.add(("r1", "failed"))
    record.transitions[1] = transition("r1", 9, "verify-rollback->failed")
    record.events[6:6] = rollback
    assert check(record) == []
    # Without the rollback, a change saved on the new image must be in its final config.
    record = clean()
    record.marks = [ConfigMark("r1", NOTE, "chaos-0", T0 + 6.5)]
    record.final["r1"] = DeviceFinal(new)
    assert kinds(record) == ["lost-config"]
    # A change saved on the old image before the upgrade is no excuse either.
    record.marks = [ConfigMark("r1", NOTE, "chaos-0", T0 + 1)]
    record.events[6:6] = rollback
    record.final["r1"] = DeviceFinal(old)
    record.status_phases["r1"] = ("failed", new)
    record.status_transitions.add(("r1", "failed"))
    record.transitions[1] = transition("r1", 9, "verify-rollback->failed")
    assert kinds(record) == ["lost-config"]


def test_a_device_started_after_a_failure_in_the_same_rollout_is_caught() -> None:
    record = clean()
    record.transitions.insert(1, transition("r1", 6.5, "health->failed"))
    record.status_transitions.add(("r1", "failed"))
    record.transitions.append(transition("r2", 9, "pending->precheck"))
    assert kinds(record) == ["no-halt"]
    record.transitions[-1] = transition("r2", 9, "pending->precheck", revision="rev2")
    assert check(record) == []  # a new revision (retryToken) may start again


def test_fleet_events_normalize_the_simulator_log() -> None:
    dev = VirtualDevice("r1", "amd64", "generic", ["1.4.3"], "1.4.3", "1.4.3")
    dev.record(1.0, "image-add", url="http://127.0.0.1:1/images/t/vyos-1.4.4-generic-amd64.iso")
    dev.record(2.0, "image-installed", name="1.4.4")
    dev.record(3.0, "booted", image="1.4.4")
    dev.record(3.5, "image-set_default", name="1.4.3")
    events = fleet_events([dev], wall_offset=T0)
    assert [e["event"] for e in events] == [
        "image-add",
        "image-installed",
        "boot-ok",
        "set-default",
    ]
    assert events[0]["version"] == "1.4.4" and events[0]["wall"] == T0 + 1.0
