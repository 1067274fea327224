"""Renderers: json is stable and documented, markdown fits a PR comment, text has rows."""

from __future__ import annotations

import json
from functools import cache

from reconciler.model.kinds import Window
from reconciler.planning.plan import PLAN_SCHEMA_VERSION, Action, Plan
from reconciler.planning.planner import plan
from reconciler.planning.progress import PolicyProgress, RolloutProgress
from reconciler.planning.render import (
    FORMATS,
    MARKDOWN_LIMIT,
    render,
    render_json,
    render_markdown,
    render_text,
)
from tests.support.planning import NOW, compliance, desired, device, facts, image, policy

IMAGES = [
    image("1.3.8"),
    image("1.4.3", upgrade_from="1.3.*"),
    image("2025.11.20-0020-rolling", upgrade_from="1.4.*"),
]
CLOSED = Window(type="allow", schedule="0 2 1 1 *", duration="1h")


def _small() -> Plan:
    devices = [device("a", group="g"), device("b", group="g"), device("c", arch="arm64")]
    devices.append(device("dx", labels={"fleet": "other"}))
    observed = {
        "a": facts("a", "1.3.8", load1=0.2, rtt_ms=3),
        "b": facts("b", "1.4.3"),
        "c": facts("c", "1.4.3"),
    }
    return plan(
        desired(
            devices,
            IMAGES,
            [
                policy(version="2025.11.20-0020-rolling"),
                policy("other", version="1.4.3", match={"fleet": "other"}, windows=[CLOSED]),
            ],
            [compliance(forbiddenVersions=["1.3.8"])],
        ),
        observed,
        RolloutProgress(
            policies={
                "other": PolicyProgress(policy="other", halted=True, halt_reason="canary failed")
            }
        ),
        NOW,
    )


@cache
def _fleet(n: int) -> Plan:
    """A fleet of ``n`` devices in pairs, a third on each of three versions, some blocked."""
    devices = [device(f"router-{i:05d}", group=f"pair-{i // 2}") for i in range(n)]
    versions = ["1.3.8", "1.4.3", "garbage-version"]
    observed = {
        d.name: facts(d.name, versions[i % 3], load1=(i % 7) / 10, rtt_ms=i % 13)
        for i, d in enumerate(devices)
    }
    return plan(
        desired(
            devices,
            IMAGES,
            [policy(version="2025.11.20-0020-rolling", canary=2)],
            [compliance(forbiddenVersions=["1.3.8"])],
        ),
        observed,
        None,
        NOW,
    )


def test_json_has_schema_version_sorted_keys_and_is_stable() -> None:
    text = render_json(_small())
    body = json.loads(text)
    assert body["schemaVersion"] == PLAN_SCHEMA_VERSION
    assert text == json.dumps(body, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert render_json(_small()) == text
    assert set(body) == {
        "devices",
        "errors",
        "now",
        "observed",
        "policies",
        "revision",
        "schemaVersion",
        "summary",
        "warnings",
    }
    a = next(d for d in body["devices"] if d["name"] == "a")
    assert a["currentVersion"] == "1.3.8"
    assert [h["version"] for h in a["path"]] == ["1.4.3", "2025.11.20-0020-rolling"]
    assert a["action"] == "upgrade" and a["redundancyGroup"] == "g"
    assert a["complianceEvaluated"] is True and a["compliance"]
    assert body["summary"]["actions"]["upgrade"] == 2
    windows = {p["name"]: p["window"]["allowed"] for p in body["policies"]}
    assert windows == {"fleet": True, "other": False}
    assert set(body["summary"]["actions"]) == {a.value for a in Action}


def test_markdown_small_plan_lists_waves_and_attention() -> None:
    text = render_markdown(_small())
    assert text.startswith("### gitfirm plan for `rev1`")
    assert "##### canary (1)" in text
    assert "#### Needs attention" in text
    assert "incompatible" in text  # the arm64 device
    assert "#### Compliance (1 non-compliant)" in text
    assert "**halted: canary failed**" in text
    assert "Truncated" not in text
    assert render_markdown(_small()) == text


def test_markdown_for_ten_thousand_devices_stays_under_limit_with_note() -> None:
    big = _fleet(10_000)
    text = render_markdown(big)
    assert len(text) < MARKDOWN_LIMIT
    assert "_Truncated to stay under 60,000 characters" in text
    assert "**10000 devices**" in text
    assert "#### Needs attention (3333)" in text


def test_markdown_budget_drops_lines_when_even_capped_tables_do_not_fit() -> None:
    text = render_markdown(_fleet(600), limit=3_000)
    assert len(text) < 3_000
    assert "lines not shown" in text
    assert text.startswith("### gitfirm plan")


def test_text_has_a_row_per_device_and_a_summary() -> None:
    text = render_text(_small())
    for name in ("a", "b", "c"):
        assert any(line.startswith(f"│ {name} ") for line in text.splitlines())
    assert "4 devices:" in text
    assert "\x1b[" not in text  # no colour codes


def test_every_format_renders_the_same_bytes_twice() -> None:
    for fmt in FORMATS:
        assert render(_small(), fmt) == render(_small(), fmt)
