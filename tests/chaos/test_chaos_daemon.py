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

SEEDS = (102, 103, 106)
"""Fixed seeds. 102: BGP degradation and a corrupt download, a suspend, a SIGKILL; 103: a
router that never boots, degradation, short windows, a SIGTERM; 106: a deny window, a
retarget, faults, SIGKILL and two SIGTERMs."""


@pytest.mark.parametrize("seed", SEEDS)
async def test_chaos_scenario_keeps_every_invariant(seed: int, tmp_path: Path) -> None:
    scenario = make_scenario(seed, duration=10.0)
    result = await run_scenario(scenario, tmp_path)
    lines = [f"seed={seed} {v.line()}" for v in result.violations]
    assert not lines, f"chaos {scenario.describe()} broke {len(lines)} invariant(s):\n" + "\n".join(
        lines
    )
