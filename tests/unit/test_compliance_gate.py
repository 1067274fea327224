"""Compliance as a gate, risk-first waves and recommendations, through the planner."""

from __future__ import annotations

import json

from reconciler.planning.plan import Action, Plan, PlannedDevice
from reconciler.planning.planner import plan
from reconciler.planning.render import render_json, render_markdown, render_text
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

IMAGES = [image(v) for v in ("1.4.1", "1.4.2", "1.4.3", "1.4.4")]


def _one(p: Plan, name: str = "r1") -> PlannedDevice:
    found = p.device(name)
    assert found is not None
    return found


def test_a_forbidden_target_is_blocked_and_takes_no_wave() -> None:
    state = desired(
        [device("r1")],
        IMAGES,
        [policy(version="1.4.3")],
        [compliance(forbiddenVersions=["1.4.3"])],
    )
    planned = _one(plan(state, {"r1": facts("r1", "1.4.1")}, None, NOW))
    assert planned.action is Action.BLOCKED
    assert planned.reason is not None
    assert "non-compliant target 1.4.3" in planned.reason
    assert "forbidden version (compliance policy baseline)" in planned.reason
    assert planned.wave is None


def test_a_target_over_the_cve_limit_is_blocked_by_default() -> None:
    state = desired(
        [device("r1")],
        IMAGES,
        [policy(version="1.4.3")],
        [compliance(maxCveSeverity="medium")],
        [advisory("cve-high", "high", ranges=[{"introduced": "0", "fixed": "1.4.4"}])],
    )
    planned = _one(plan(state, {"r1": facts("r1", "1.4.1")}, None, NOW))
    assert planned.action is Action.BLOCKED
    assert "cve-high (high) affects 1.4.3" in (planned.reason or "")


def test_warn_lets_the_upgrade_go_with_a_note() -> None:
    state = desired(
        [device("r1")],
        IMAGES,
        [policy(version="1.4.3")],
        [compliance(forbiddenVersions=["1.4.3"], enforcement="warn")],
    )
    planned = _one(plan(state, {"r1": facts("r1", "1.4.1")}, None, NOW))
    assert planned.action is Action.UPGRADE
    assert any("enforcement: warn" in n for n in planned.notes), planned.notes


def test_a_policy_selecting_other_devices_does_not_block() -> None:
    state = desired(
        [device("r1"), device("r2", labels={"fleet": "all", "env": "prod"})],
        IMAGES,
        [policy(version="1.4.3")],
        [compliance(forbiddenVersions=["1.4.3"], selector={"matchLabels": {"env": "prod"}})],
    )
    p = plan(state, {n: facts(n, "1.4.1") for n in ("r1", "r2")}, None, NOW)
    assert _one(p, "r1").action is Action.UPGRADE
    assert _one(p, "r2").action is Action.BLOCKED


def test_a_path_through_a_forbidden_step_is_blocked() -> None:
    """1.4.4 may only be installed over 1.4.2: the path steps through a forbidden image."""
    images = [image("1.4.1"), image("1.4.2"), image("1.4.4", upgrade_from="1.4.2")]
    state = desired(
        [device("r1")], images, [policy(version="1.4.4")], [compliance(forbiddenVersions=["1.4.2"])]
    )
    planned = _one(plan(state, {"r1": facts("r1", "1.4.1")}, None, NOW))
    assert [h.version for h in planned.path] == ["1.4.2", "1.4.4"]
    assert planned.action is Action.BLOCKED
    assert "step 1.4.2 is a forbidden version" in (planned.reason or "")


def test_exposed_devices_lead_their_wave_after_the_canary() -> None:
    names = [f"r{i:02d}" for i in range(12)]
    exposed = {"r03", "r07", "r10"}
    state = desired(
        [device(n) for n in names],
        IMAGES,
        [policy(version="1.4.4", waves=[100])],
        [],
        [advisory("cve-1", "high", versions=["1.4.1"])],
    )
    # Exposed devices are the most loaded: load order alone would put them last.
    observed = {
        n: facts(n, "1.4.1" if n in exposed else "1.4.2", load1=9.0 if n in exposed else 0.1)
        for n in names
    }
    p = plan(state, observed, None, NOW)
    _canary, wave = p.policies[0].waves
    lead = [n for n in wave.devices if n in exposed]
    assert list(wave.devices[: len(lead)]) == lead, wave.devices
    assert lead, "an exposed device outside the canary"


def test_recommendation_names_the_least_exposed_compliant_target() -> None:
    """1.4.2 is exposed (high), 1.4.3 forbidden; 1.4.4 is clean, reachable and named."""
    state = desired(
        [device("r1")],
        IMAGES,
        [policy(version="1.4.1")],
        [compliance(forbiddenVersions=["1.4.3"], maxCveSeverity="low")],
        [advisory("cve-old", "high", ranges=[{"introduced": "0", "lastAffected": "1.4.2"}])],
    )
    p = plan(state, {"r1": facts("r1", "1.4.1")}, None, NOW)
    planned = _one(p)
    assert planned.action is Action.NON_COMPLIANT
    rec = planned.recommendation
    assert rec is not None
    assert (rec.version, rec.image) == ("1.4.4", "vyos-1.4.4")
    assert "no known advisory" in rec.why and "cve-old (high) affects 1.4.1" in rec.why
    body = json.loads(render_json(p))
    assert body["devices"][0]["recommendation"]["version"] == "1.4.4"
    assert "Recommended targets" in render_markdown(p)
    assert "recommended for r1: 1.4.4 (vyos-1.4.4)" in render_text(p)


def test_no_recommendation_when_nothing_better_is_reachable() -> None:
    state = desired(
        [device("r1")],
        [image("1.4.1"), image("1.4.2")],
        [],
        [compliance(maxCveSeverity="low")],
        [advisory("cve-all", "high", ranges=[{"introduced": "0"}])],
    )
    planned = _one(plan(state, {"r1": facts("r1", "1.4.1")}, None, NOW))
    assert planned.advisories and planned.recommendation is None
