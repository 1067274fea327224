"""The alert centre and the feed: keys, counts, resolution, persistence, no heartbeat."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from reconciler.alerts.center import AlertCenter
from reconciler.alerts.feed import AlertFeed, FeedSettings
from reconciler.alerts.model import Alert
from reconciler.clock import FakeClock
from reconciler.report.render import alerts_document


def test_repeat_counts_and_resolve_keeps_the_record(tmp_path: Path) -> None:
    clock = FakeClock()
    center = AlertCenter(tmp_path / "alerts.json", clock)
    first = center.raise_alert("device-failed", "r1", "critical", "r1 failed")
    clock.advance(60)
    again = center.raise_alert("device-failed", "r1", "critical", "r1 failed again")
    assert (again.count, again.first_seen, again.message) == (
        2,
        first.first_seen,
        "r1 failed again",
    )
    assert again.last_seen - first.first_seen == timedelta(seconds=60)
    assert center.resolve("device-failed", "r1") is not None
    assert center.resolve("device-failed", "r1") is None  # already resolved
    (alert,) = center.alerts()
    assert not alert.active and alert.resolved_at == clock.now()
    # Raised again after it cleared: active again, the count goes on.
    back = center.raise_alert("device-failed", "r1", "critical", "r1 failed")
    assert back.active and back.count == 3


def test_persisted_across_restarts_and_active_first(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "alerts.json"
    center = AlertCenter(path, clock)
    center.raise_alert("image-refused", "vyos-1.4.4", "critical", "bad signature")
    clock.advance(5)
    center.raise_alert("rollout-halted", "fleet", "critical", "halted", policy="fleet")
    clock.advance(5)
    center.resolve("rollout-halted", "fleet")
    reopened = AlertCenter(path, clock)
    assert reopened.alerts() == center.alerts()
    assert [a.key for a in reopened.alerts()] == [
        "image-refused/vyos-1.4.4",
        "rollout-halted/fleet",
    ]
    assert reopened.alerts() is reopened.alerts()  # the same tuple until a change


def test_damaged_record_starts_empty(tmp_path: Path) -> None:
    path = tmp_path / "alerts.json"
    path.write_text("[{not json")
    assert AlertCenter(path, FakeClock()).alerts() == ()


def test_resolved_alerts_are_capped(tmp_path: Path) -> None:
    clock = FakeClock()
    center = AlertCenter(None, clock, keep_resolved=3)
    for i in range(10):
        center.raise_alert("device-failed", f"r{i}", "critical", "failed")
        clock.advance(1)
        center.resolve("device-failed", f"r{i}")
    assert [a.subject for a in center.alerts()] == ["r9", "r8", "r7"]


def test_listener_failure_never_reaches_the_caller() -> None:
    center = AlertCenter(None, FakeClock())
    seen: list[tuple[str, str]] = []

    def broken(alert: Alert, change: str) -> None:
        raise RuntimeError("listener bug")

    center.listeners += [broken, lambda a, c: seen.append((a.key, c))]
    center.raise_alert("store-capacity", "image-store", "warning", "full")
    assert seen == [("store-capacity/image-store", "raised")]


def test_feed_rollout_lifecycle() -> None:
    center = AlertCenter(None, FakeClock())
    feed = AlertFeed(center)
    feed.sites = {"r1": "lab"}
    feed.transition("r1", "fleet", "precheck", target="1.4.4")
    feed.transition("r1", "fleet", "failed", detail="disk full")
    active = {a.key: a for a in center.active()}
    assert set(active) == {"rollout-started/fleet", "device-failed/r1"}
    assert (
        active["device-failed/r1"].site == "lab"
        and "disk full" in active["device-failed/r1"].message
    )
    feed.rollout_ended("fleet", halted=True, reason="1 failure", complete=False, waves_passed=())
    assert {a.key for a in center.active()} == {"device-failed/r1", "rollout-halted/fleet"}
    # The halt repeats with the same reason: no new count (no heartbeat on the status branch).
    feed.rollout_ended("fleet", halted=True, reason="1 failure", complete=False, waves_passed=())
    assert center.get("rollout-halted", "fleet").count == 1  # type: ignore[union-attr]
    feed.transition("r1", "fleet", "done")
    feed.rollout_ended("fleet", halted=False, reason="", complete=True, waves_passed=(0, 1))
    assert {a.key for a in center.active()} == {"rollout-completed/fleet"}
    waves = center.get("wave-passed", "fleet")
    assert waves is not None and waves.count == 2 and waves.message.endswith("wave 1 passed")


def test_feed_announces_a_wave_when_the_next_one_starts() -> None:
    center = AlertCenter(None, FakeClock())
    seen: list[str] = []
    center.listeners.append(
        lambda a, c: seen.append(a.message) if (a.event, c) == ("wave-passed", "raised") else None
    )
    feed = AlertFeed(center)
    feed.waves = {"c1": 0, "r1": 1, "r2": 1, "r3": 2}
    feed.wave_labels = {"fleet": {0: "canary", 1: "wave 1", 2: "wave 2"}}
    for device in ("c1", "r1", "r2", "r3"):
        feed.transition(device, "fleet", "precheck")
        feed.transition(device, "fleet", "done")
    assert seen == [
        "rollout fleet: canary passed (1 of 3)",
        "rollout fleet: wave 1 passed (2 of 3)",
    ]  # live, once each
    feed.rollout_ended("fleet", halted=False, reason="", complete=True, waves_passed=(0, 1, 2))
    assert seen[-1] == "rollout fleet: wave 2 passed (3 of 3)" and len(seen) == 3


def test_feed_conditions_raise_once_and_clear() -> None:
    clock = FakeClock()
    center = AlertCenter(None, clock)
    feed = AlertFeed(
        center, FeedSettings(unreachable_after=timedelta(minutes=10), store_percent=80)
    )
    feed.observed({"r1": False, "r2": True}, clock.now())
    assert center.active() == ()  # not yet beyond the threshold
    clock.advance(600)
    feed.observed({"r1": False, "r2": True}, clock.now())
    feed.observed({"r1": False, "r2": True}, clock.now())
    (alert,) = center.active()
    assert (alert.key, alert.count) == ("device-unreachable/r1", 1)
    feed.observed({"r1": True, "r2": True}, clock.now())
    assert center.active() == ()

    feed.exposures({"r1": [("CVE-1", "high")], "r2": []})
    feed.exposures({"r1": [("CVE-1", "high")], "r2": []})
    assert center.get("cve-exposure", "CVE-1").count == 1  # type: ignore[union-attr]
    feed.exposures({"r1": [("CVE-1", "high")], "r2": [("CVE-1", "high")]})  # new exposure
    exposed = center.get("cve-exposure", "CVE-1")
    assert exposed is not None and exposed.count == 2 and exposed.severity == "critical"
    feed.exposures({"r1": [], "r2": []})
    assert not center.get("cve-exposure", "CVE-1").active  # type: ignore[union-attr]

    feed.store_usage(90.0)
    feed.store_usage(91.0)
    assert center.get("store-capacity", "image-store").count == 1  # type: ignore[union-attr]
    feed.store_usage(50.0)
    feed.images_refused({"img": "bad signature"})
    feed.images_refused({})
    feed.revision_refused("a" * 40, "unsigned")
    assert {a.key for a in center.active()} == {f"revision-refused/{'a' * 40}"}
    feed.revision_applied()
    assert center.active() == ()


def test_alerts_document_matches_the_centre() -> None:
    clock = FakeClock()
    center = AlertCenter(None, clock)
    center.raise_alert("device-failed", "r1", "critical", "key s3cr3t leaked", policy="fleet")
    center.raise_alert("image-refused", "img", "critical", "bad")
    center.resolve("image-refused", "img")
    doc = alerts_document(center.alerts(), ("s3cr3t",))
    assert doc["summary"] == {"active": 1, "resolved": 1}
    assert doc["active"][0]["subject"] == "r1" and "s3cr3t" not in str(doc)
    assert doc["resolved"][0]["resolvedAt"] == "2026-01-01T00:00:00Z"
