"""Anti-rollback in planning: the whole path is judged by its final target against the
marks of completed upgrades, given as plain data."""

from __future__ import annotations

import pytest

from reconciler.planning.paths import version_of
from reconciler.planning.plan import Action, PlannedDevice
from reconciler.planning.planner import plan
from reconciler.planning.rollback import Marks, rollback_rank, rollback_reason
from tests.support.planning import NOW, desired, device, facts, image, policy

IMAGES = [
    image("1.4.2"),
    image("1.4.3", upgrade_from=">=1.4.2, <1.4.3"),  # 1.4.1 goes through 1.4.2
    image("1.4.5"),
    image("2025.11.20-0020-rolling", upgrade_from="1.4.*"),
]


def _device(running: str, marks: Marks, **kw: object) -> PlannedDevice:
    state = desired([device("r1")], IMAGES, [policy(**kw)])  # type: ignore[arg-type]
    found = plan(state, {"r1": facts("r1", running)}, None, NOW, marks=marks).device("r1")
    assert found is not None
    return found


def test_path_is_judged_by_its_final_target() -> None:
    # 1.4.1 -> 1.4.2 -> 1.4.3 passes a 1.4.3 mark: the device ends on it.
    d = _device("1.4.1", {"production": {"1.4": "1.4.3"}}, version="1.4.3")
    assert d.action is Action.UPGRADE and [h.version for h in d.path] == ["1.4.2", "1.4.3"]


def test_target_below_the_mark_is_blocked_unless_allow_downgrade() -> None:
    marks = {"production": {"1.4": "1.4.5"}}
    d = _device("1.4.1", marks, version="1.4.3")
    assert d.action is Action.BLOCKED and d.reason is not None
    assert d.reason.startswith("rollback: 1.4.3 is older than 1.4.5")
    assert _device("1.4.1", marks, version="1.4.3", allow_downgrade=True).action is Action.UPGRADE
    # Another channel's mark says nothing about production.
    assert _device("1.4.1", {"testing": {"1.4": "1.4.5"}}, version="1.4.3").action is (
        Action.UPGRADE
    )


def test_a_new_train_does_not_escape_the_mark() -> None:
    rolling = {"production": {"rolling": "2025.12.01-0010-rolling"}}
    d = _device("1.4.1", rolling, version="1.4.5")
    assert d.action is Action.BLOCKED and "older than 2025.12.01-0010-rolling" in str(d.reason)
    # An older rolling build with an LTS mark is newer: LTS < rolling.
    lts = {"production": {"1.4": "1.4.5"}}
    assert _device("1.4.3", lts, version="2025.11.20-0020-rolling").action is Action.UPGRADE


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("1.3.8", "1.4.0"),
        ("1.4.0-rc3", "1.4.0"),
        ("1.4.9", "1.5-rolling-202410230007"),
        ("1.5-rolling-202410230007", "2025.01.10-0020-integration"),
        ("2025.01.10-0020-integration", "2025.01.11-0020-rolling"),
    ],
)
def test_rank_orders_across_trains(older: str, newer: str) -> None:
    assert rollback_rank(version_of(older)) < rollback_rank(version_of(newer))


def test_no_marks_or_unparsable_marks_block_nothing() -> None:
    target = IMAGES[1]
    assert rollback_reason(target, {}) is None
    assert rollback_reason(target, {"production": {"x": "not-a-version"}}) is None
