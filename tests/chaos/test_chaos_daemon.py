"""CHAOS (short subset of ``make chaos``): three seeded scenarios through ``gitfirm run``.

Each scenario runs the real daemon process against the simulator with faults, SIGKILL and
SIGTERM, and concurrent commits and webhooks, then checks every invariant of
:mod:`tests.chaos.invariants`. A failure lists each violation with its scenario's seed;
replay one with ``CHAOS_SEED=<seed> CHAOS_SCENARIOS=1 CHAOS_KEEP=1 make chaos``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.harness import run_scenario
from tests.chaos.scenario import make_scenario

SEEDS = (105, 106, 116)
"""Fixed seeds, with always-open windows so settling never waits for one. 105: a corrupt
download, a router answering 503, a burst of unrelated commits, a suspend, SIGKILL while a
router's health gate runs; 106: SIGKILL, a retarget, SIGKILL during a health gate, a new
image, a suspend; 116: a router that loses BGP after its upgrade, one that never boots, a
new image, SIGKILL, an operator's config change right after a router staged its image."""
DURATION = 8.0


@pytest.mark.parametrize("seed", SEEDS)
async def test_chaos_scenario_keeps_every_invariant(seed: int, tmp_path: Path) -> None:
    scenario = make_scenario(seed, duration=DURATION)
    result = await run_scenario(scenario, tmp_path)
    lines = [f"seed={seed} {v.line()}" for v in result.violations]
    assert not lines, (
        f"chaos {scenario.describe()} broke {len(lines)} invariant(s) (daemon.log and "
        f"events.json in {tmp_path}):\n" + "\n".join(lines)
    )
