"""The planner: every action kind, targets, compliance, progress gates and waves."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from reconciler.model.kinds import Window
from reconciler.planning.plan import Action, Plan, PlannedDevice
from reconciler.planning.planner import plan
from reconciler.planning.progress import (
    DeviceProgress,
    Phase,
    PolicyProgress,
    RolloutProgress,
    attempt_key,
)
from tests.support.planning import (
    NOW,
    advisory,
    compliance,
    desired,
    device,
    facts,
    image,
    policy,
)

IMAGES = [
    image("1.3.8"),
    image("1.4.2", upgrade_from="1.3.*"),
    image("1.4.3", upgrade_from="1.3.* || 1.4.*"),
    image("1.4.4", upgrade_from="1.4.*", revoked=True),
    image("2025.11.20-0020-rolling", upgrade_from="1.4.*", arches=("amd64", "arm64")),
    image("2025.12.01-0010-rolling", channel="testing", upgrade_from="rolling"),
]
ROLLING = "2025.11.20-0020-rolling"
CLOSED = Window(type="allow", schedule="0 2 1 1 *", duration="1h")  # 1 January only


def _one(running: str | None, **kwargs: Any) -> PlannedDevice:
    """Plan one device 'r1' running ``running`` under one policy built from ``kwargs``."""
    found = _plan_one(running, **kwargs).device("r1")
    assert found is not None
    return found


def _plan_one(
    running: str | None,
    *,
    progress: RolloutProgress | None = None,
    arch: str = "amd64",
    reachable: bool = True,
    **kwargs: Any,
) -> Plan:
    state = desired([device("r1", arch=arch)], IMAGES, [policy(**kwargs)])
    observed = {} if running is None else {"r1": facts("r1", running, reachable=reachable)}
    return plan(state, observed, progress, NOW)


def test_none_when_on_target() -> None:
    d = _one("1.4.3", version="1.4.3")
    assert (d.action, d.path, d.reason) == (Action.NONE, (), None)


def test_upgrade_multi_hop_to_rolling() -> None:
    d = _one("1.3.8", version=ROLLING)
    assert d.action is Action.UPGRADE
    assert [h.version for h in d.path] == ["1.4.3", ROLLING]
    assert d.target_image == f"vyos-{ROLLING}"
    assert d.wave == 0 and d.order == 1


def test_waiting_for_window_names_next_opening() -> None:
    d = _one("1.4.2", version="1.4.3", windows=[CLOSED])
    assert d.action is Action.WAITING
    assert "window opens 2026-01-01T02:00:00+00:00" in d.notes


def test_no_allow_window_waits_forever_and_warns() -> None:
    p = _plan_one("1.4.2", version="1.4.3", windows=[])
    assert p.devices[0].action is Action.WAITING
    assert any("no allow window" in w for w in p.warnings)


def test_rolling_device_waiting_is_staged_early() -> None:
    d = _one(ROLLING, channel="testing", windows=[CLOSED])
    assert d.action is Action.WAITING
    assert "staged early (1.5+)" in d.notes


def test_suspended() -> None:
    assert _one("1.4.2", version="1.4.3", suspend=True).action is Action.SUSPENDED


def test_unreachable_and_not_observed() -> None:
    d = _one("1.4.2", version="1.4.3", reachable=False)
    assert (d.action, d.reason) == (Action.UNREACHABLE, "did not answer")
    d = _one(None, version="1.4.3")
    assert (d.action, d.reason, d.target_version) == (
        Action.UNREACHABLE,
        "not observed yet",
        "1.4.3",
    )
    state = desired([device("r1")], IMAGES, [policy(version="1.4.3")])
    d = plan(state, {}, None, NOW, observed=False).devices[0]
    assert d.reason == "no observation given"


def test_incompatible_platform_and_train_and_unknown_version() -> None:
    d = _one("1.4.2", version="1.4.3", arch="arm64")
    assert d.action is Action.INCOMPATIBLE
    assert d.reason == "no Image of 1.4.3 supports arm64/generic"
    # rolling accepts only 1.4.*: a 1.3 device cannot cross directly, nor via arm64 1.4.
    d = _one("1.3.8", version=ROLLING, arch="arm64")
    assert d.action is Action.INCOMPATIBLE
    assert "crossing from train 1.3 to rolling" in (d.reason or "")
    d = _one("garbage", version="1.4.3")
    assert d.action is Action.INCOMPATIBLE


def test_blocked_revoked_target() -> None:
    d = _one("1.4.2", version="1.4.4")
    assert (d.action, d.reason) == (Action.BLOCKED, "target image vyos-1.4.4 is revoked")


def test_blocked_missing_target() -> None:
    d = _one("1.4.2", version="1.4.9")
    assert (d.action, d.reason) == (Action.BLOCKED, "no Image declares it")


def test_downgrade_blocked_unless_allowed() -> None:
    d = _one("1.4.3", version="1.4.2")
    assert d.action is Action.BLOCKED
    assert d.reason == "downgrade from 1.4.3 to 1.4.2 needs strategy.allowDowngrade"
    d = _one("1.4.3", version="1.4.2", allow_downgrade=True)
    assert d.action is Action.UPGRADE
    assert [h.version for h in d.path] == ["1.4.2"]


def test_blocked_when_halted_until_retry_token_changes() -> None:
    halted = RolloutProgress(
        policies={"fleet": PolicyProgress(policy="fleet", halted=True, halt_reason="canary failed")}
    )
    d = _one("1.4.2", version="1.4.3", progress=halted)
    assert (d.action, d.reason) == (Action.BLOCKED, "rollout halted: canary failed")
    assert _one("1.4.2", version="1.4.3", progress=halted, retry_token="t2").action is (
        Action.UPGRADE
    )


def test_one_attempt_per_revision_and_retry_token() -> None:
    failed = DeviceProgress(
        name="r1",
        phase=Phase.FAILED,
        revision="rev1",
        attempts={attempt_key("rev1", None): 1},
        last_error="health check bgp failed",
    )
    progress = RolloutProgress(
        policies={"fleet": PolicyProgress(policy="fleet", revision="rev1", devices={"r1": failed})}
    )
    d = _one("1.4.2", version="1.4.3", progress=progress)
    assert d.action is Action.BLOCKED
    assert d.reason is not None and d.reason.startswith("already attempted at this revision")
    assert "health check bgp failed" in d.reason
    assert _one("1.4.2", version="1.4.3", progress=progress, retry_token="again").action is (
        Action.UPGRADE
    )


def test_in_flight_device_finishes_even_outside_window() -> None:
    flying = DeviceProgress(name="r1", phase=Phase.AWAIT_BOOT, revision="rev1", hop=1)
    progress = RolloutProgress(
        policies={"fleet": PolicyProgress(policy="fleet", revision="rev1", devices={"r1": flying})}
    )
    d = _one("1.4.3", version=ROLLING, windows=[CLOSED], progress=progress)
    assert d.action is Action.UPGRADE
    assert "in flight: await-boot, hop 2" in d.notes
    # Already on target while the engine still verifies it: still in flight.
    d = _one(ROLLING, version=ROLLING, progress=progress)
    assert d.action is Action.UPGRADE


def test_journal_is_the_truth_for_a_disrupted_device() -> None:
    def progress(phase: Phase) -> RolloutProgress:
        flying = DeviceProgress(
            name="r1", phase=phase, revision="rev1", hop=0, target_version="1.4.3"
        )
        return RolloutProgress(policies={"fleet": PolicyProgress(
            policy="fleet", revision="rev1", devices={"r1": flying})})  # fmt: skip

    # It already runs its hop's target: the hop comes back, so the engine runs its gate.
    d = _one("1.4.3", version="1.4.3", progress=progress(Phase.HEALTH))
    assert d.action is Action.UPGRADE and [h.version for h in d.path] == ["1.4.3"]
    # A later target: the journalled hop first, then on from there.
    d = _one("1.4.3", version=ROLLING, progress=progress(Phase.VERIFY))
    assert [h.version for h in d.path][:1] == ["1.4.3"] and d.path[-1].version == ROLLING
    # Rebooting (no answer): still the engine's, at its hop, not "unreachable".
    d = _one("1.4.2", version="1.4.3", reachable=False, progress=progress(Phase.AWAIT_BOOT))
    assert d.action is Action.UPGRADE and [h.version for h in d.path] == ["1.4.3"]
    assert any(n.startswith("in flight: await-boot, not answering") for n in d.notes)
    # Before the disruption nothing carries over: an unreachable device is unreachable.
    d = _one("1.4.2", version="1.4.3", reachable=False, progress=progress(Phase.BACKUP))
    assert d.action is Action.UNREACHABLE


def test_selected_by_two_policies_is_blocked_and_an_error() -> None:
    state = desired(
        [device("r1")], IMAGES, [policy("a", version="1.4.3"), policy("b", version="1.4.3")]
    )
    p = plan(state, {"r1": facts("r1", "1.4.2")}, None, NOW)
    d = p.devices[0]
    assert (d.action, d.reason, d.policy) == (
        Action.BLOCKED,
        "selected by several policies: a, b",
        None,
    )
    assert p.errors == ("device r1 is selected by several policies: a, b",)


def test_channel_target_is_newest_reachable_for_platform() -> None:
    assert _one("1.4.3", channel="production").target_version == ROLLING
    # The testing build accepts only rolling versions: 1.4.3 reaches it through production.
    d = _one("1.4.3", channel="testing")
    assert [h.version for h in d.path] == [ROLLING, "2025.12.01-0010-rolling"]
    d = _one(ROLLING, channel="testing")
    assert (d.action, d.target_version) == (Action.UPGRADE, "2025.12.01-0010-rolling")
    # arm64 devices cannot take the amd64-only testing build.
    d = _one(ROLLING, channel="testing", arch="arm64")
    assert d.action is Action.INCOMPATIBLE


def test_non_compliant_when_nothing_planned() -> None:
    state = desired(
        [device("r1"), device("r2", labels={"fleet": "other"})],
        IMAGES,
        [policy(version="1.4.2")],
        [compliance(forbiddenVersions=["1.4.2"], minimumVersion=["1.4.3"])],
    )
    p = plan(state, {"r1": facts("r1", "1.4.2"), "r2": facts("r2", "1.4.3")}, None, NOW)
    r1, r2 = p.devices
    assert r1.action is Action.NON_COMPLIANT
    assert len(r1.compliance) == 2 and not r1.compliant
    assert r2.action is Action.NONE and r2.compliant
    assert "no rollout policy selects it" in r2.notes


def test_upgrade_stays_upgrade_and_says_it_fixes_compliance() -> None:
    state = desired(
        [device("r1")],
        IMAGES,
        [policy(version="1.4.3")],
        [compliance(maxCveSeverity="low")],
        [advisory("bgp-crash", "high", ranges=[{"introduced": "1.4.0", "fixed": "1.4.3"}])],
    )
    d = plan(state, {"r1": facts("r1", "1.4.2")}, None, NOW).devices[0]
    assert d.action is Action.UPGRADE
    assert [a.name for a in d.advisories] == ["bgp-crash"]
    assert any("bgp-crash (high)" in c for c in d.compliance)
    assert "the upgrade fixes compliance" in d.notes


def test_channel_not_allowed_and_unapproved_version() -> None:
    state = desired(
        [device("r1"), device("r2")],
        IMAGES,
        [],
        [compliance(allowedChannels=["production"])],
    )
    observed = {"r1": facts("r1", "2025.12.01-0010-rolling"), "r2": facts("r2", "1.4.0")}
    r1, r2 = plan(state, observed, None, NOW).devices
    assert r1.action is Action.NON_COMPLIANT
    assert "comes from channel testing" in r1.compliance[0]
    assert "not approved by any non-revoked Image" in r2.compliance[0]


def test_waves_in_plan_only_for_devices_with_work() -> None:
    devices = [device(f"r{i:02d}") for i in range(30)]
    observed = {d.name: facts(d.name, "1.4.2" if i % 3 else "1.4.3") for i, d in enumerate(devices)}
    p = plan(desired(devices, IMAGES, [policy(version="1.4.3")]), observed, None, NOW)
    for d in p.devices:
        assert (d.wave is None) == (d.action is Action.NONE)
    waves = p.policies[0].waves
    assert waves[0].label == "canary" and len(waves[0].devices) == 1
    assert sum(len(w.devices) for w in waves) == 20
    assert p.has_changes


def test_same_inputs_same_plan() -> None:
    state = desired([device("r1"), device("r2")], IMAGES, [policy(version=ROLLING)])
    observed = {"r1": facts("r1", "1.3.8"), "r2": facts("r2", "1.4.2")}
    assert plan(state, observed, None, NOW) == plan(state, observed, None, NOW)
    later = plan(state, observed, None, NOW + timedelta(days=1))
    assert later.now != NOW
