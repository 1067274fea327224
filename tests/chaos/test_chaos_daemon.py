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

SEEDS = (102, 104, 107)
"""Fixed seeds. 102: two routers lose BGP after their upgrade, a suspend, SIGKILL during an
activation; 104: a slow router, bursts of unrelated commits, SIGKILL while a router boots;
107: a router that never boots, a corrupt download, short windows, SIGKILL while a router
boots, a SIGTERM."""


@pytest.mark.parametrize("seed", SEEDS)
async def test_chaos_scenario_keeps_every_invariant(seed: int, tmp_path: Path) -> None:
    scenario = make_scenario(seed, duration=10.0)
    result = await run_scenario(scenario, tmp_path)
    lines = [f"seed={seed} {v.line()}" for v in result.violations]
    assert not lines, (
        f"chaos {scenario.describe()} broke {len(lines)} invariant(s) (daemon.log and "
        f"events.json in {tmp_path}):\n" + "\n".join(lines)
    )
