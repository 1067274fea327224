"""What a rollout says on its commit (pure): state, description and target URL."""

from __future__ import annotations

from datetime import UTC, datetime

from reconciler.forge.statuses import rollout_statuses
from reconciler.model.facts import DeviceFacts
from reconciler.report.snapshot import DeviceStatus, RolloutStatus, StatusSnapshot

SHA = "a" * 40
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _snapshot(*rollouts: RolloutStatus, running: dict[str, str] | None = None) -> StatusSnapshot:
    devices = tuple(
        DeviceStatus(name, facts=DeviceFacts(name=name, reachable=True, observed_at=NOW, version=v))
        for name, v in (running or {}).items()
    )
    return StatusSnapshot(desired_revision=SHA, rollouts=rollouts, devices=devices)


def _rollout(phases: dict[str, str], **kw: object) -> RolloutStatus:
    return RolloutStatus(
        policy=str(kw.pop("policy", "edge")),
        revision=SHA,
        target_version="1.4.4",
        total_waves=3,
        device_phases=phases,
        **kw,  # type: ignore[arg-type]
    )


def test_a_running_rollout_is_pending_and_names_its_wave_and_counts() -> None:
    r = _rollout({"a": "done", "b": "stage", "c": "pending", "d": "pending"}, current_wave=2)
    (status,) = rollout_statuses(_snapshot(r), "https://gitfirm.example/", SHA)
    assert status.sha == SHA and status.context == "gitfirm/edge"
    assert status.state == "pending"
    assert status.description == "edge to 1.4.4: wave 2 (3 waves): 1 done, 1 in flight, 2 pending"
    assert status.target_url == "https://gitfirm.example/ui/rollouts#rollout-edge"


def test_done_is_success_and_halted_is_failure() -> None:
    done = _rollout({"a": "done", "b": "skipped"}, policy="core")
    halted = _rollout({"a": "done", "b": "failed", "c": "pending"}, halted=True,
                      halt_reason="health check failed on b", current_wave=0)  # fmt: skip
    statuses = rollout_statuses(_snapshot(done, halted), "http://x", SHA)
    assert [(s.context, s.state) for s in statuses] == [
        ("gitfirm/core", "success"),
        ("gitfirm/edge", "failure"),
    ]
    assert statuses[0].description == "core to 1.4.4: 2 done in 3 waves"
    assert statuses[1].description == (
        "edge to 1.4.4: halted, canary (3 waves): 1 done, 1 pending, 1 failed (health check failed on b)"
    )


def test_pending_devices_already_on_the_target_count_as_done() -> None:
    r = _rollout({"a": "pending", "b": "pending"})
    (status,) = rollout_statuses(
        _snapshot(r, running={"a": "1.4.4", "b": "1.4.4"}), "http://x", SHA
    )
    assert status.state == "success"
    (other,) = rollout_statuses(_snapshot(r, running={"a": "1.4.4", "b": "1.4.3"}), "http://x", SHA)
    assert other.state == "pending" and "1 done" in other.description


def test_nothing_is_said_before_the_new_revision_is_planned() -> None:
    r = _rollout({"a": "pending"})
    assert rollout_statuses(_snapshot(r), "http://x", "b" * 40) == []
    assert rollout_statuses(_snapshot(r), "http://x", None) == []


def test_a_policy_name_is_escaped_in_the_target_url() -> None:
    r = _rollout({"a": "pending"}, policy="edge/../x")
    (status,) = rollout_statuses(_snapshot(r), "http://x", SHA)
    assert status.target_url == "http://x/ui/rollouts#rollout-edge%2F..%2Fx"
