"""A journalled outcome for an older target is not the phase of a newer one.

After a rollout to 1.4.4 finished (or failed) and the policy was retargeted to 1.4.5, the
status branch showed ``phase: done`` beside ``targetVersion: 1.4.5`` while the router still
ran 1.4.4 (found by the chaos suite). The phase of the new target is ``pending`` until the
engine starts it.
"""

from __future__ import annotations

import pytest

from reconciler.planning.planner import plan as make_plan
from reconciler.planning.progress import (
    DeviceProgress,
    Phase,
    PolicyProgress,
    RolloutProgress,
)
from reconciler.statusbook import StatusBook
from tests.support.planning import NOW, desired, device, facts, image, policy


def _phase_after(journalled: Phase, journal_target: str) -> str:
    state = desired(
        [device("r1", labels={"fleet": "all"})],
        images=[image("1.4.4"), image("1.4.5")],
        policies=[policy("fleet", version="1.4.5", match={"fleet": "all"}, waves=(100,))],
    )
    done = DeviceProgress(
        name="r1", phase=journalled, revision="old", target_version=journal_target
    )
    progress = RolloutProgress(
        policies={"fleet": PolicyProgress(policy="fleet", revision="old", devices={"r1": done})}
    )
    observed = {"r1": facts("r1", "1.4.4")}
    book = StatusBook()
    book.desired(state.revision)
    book.observed(observed, state)
    book.planned(make_plan(state, observed, progress, NOW), progress)
    (status,) = book.snapshot(state, ()).devices
    return status.phase


@pytest.mark.parametrize("journalled", [Phase.DONE, Phase.FAILED])
def test_an_outcome_for_an_older_target_is_pending_for_the_new_one(journalled: Phase) -> None:
    assert _phase_after(journalled, "1.4.4") == "pending"


def test_an_outcome_for_the_wanted_target_stands() -> None:
    assert _phase_after(Phase.DONE, "1.4.5") == "done"
