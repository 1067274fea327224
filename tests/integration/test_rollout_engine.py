"""Acceptance tests of the rollout engine on the simulator (see tests/support/rollout.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from reconciler.planning.progress import Phase
from reconciler.rollout import OutcomeStatus, Transition, policy_progress
from tests.support.rollout import (
    OLD,
    TARGET,
    make_device,
    make_plan,
    make_policy,
    rig,
)

BGP_CHECK = {
    "name": "bgp",
    "show": ["ip", "bgp", "summary"],
    "reject": r"\bActive\b",
    "initialDelay": "10s",
    "interval": "10s",
    "timeout": "2m",
    "retries": 2,
    "successThreshold": 2,
    "failureThreshold": 2,
}
_START, _END = "precheck", ("done", "failed", "skipped")


def in_flight_sets(events: Sequence[Transition]) -> list[set[str]]:
    """The set of devices in flight after each event (precheck to a terminal phase)."""
    flying: set[str] = set()
    seen: list[set[str]] = []
    for e in events:
        if e.to_phase == _START and e.hop == 0:
            flying.add(e.device)
        elif e.to_phase in _END:
            flying.discard(e.device)
        seen.append(set(flying))
    return seen


async def test_normal_rollout_canary_three_waves(tmp_path: Path) -> None:
    devices = [make_device(f"r{i:02d}") for i in range(50)]
    names = [d.name for d in devices]
    # Canary, then waves of 10, 20 and 19; pairs r00+r01, r02+r03 ... share a group, and
    # some pairs sit in one wave so the engine itself must keep them apart.
    waves = {
        n: (0 if i == 0 else 1 if i <= 10 else 2 if i <= 30 else 3) for i, n in enumerate(names)
    }
    groups = {n: f"pair-{i // 2}" for i, n in enumerate(names)}
    policy = make_policy(
        strategy={"canary": 1, "waves": [20, 60, 100], "maxParallel": 5, "maxUnavailable": 5,
                  "pause": "5m", "failureThreshold": 1},
        healthChecks=[BGP_CHECK],
    )  # fmt: skip
    async with rig(tmp_path, devices) as r:
        plan = make_plan("rev1", "fleet", devices, waves=waves, groups=groups)
        result = await r.run(policy, plan)
        assert result.complete and not result.halted, result.reason
        assert result.waves_passed == (0, 1, 2, 3)
        for n in names:
            dev = r.device(n)
            assert dev.running == TARGET and dev.default == TARGET
            assert dev.image_ops_max == 1, n  # never two image operations at once
            assert len(r.adds(n)) == 1 and len(r.reboots(n)) == 1
            assert result.outcomes[n].status is OutcomeStatus.DONE
        flying = in_flight_sets(r.events)
        assert max(len(s) for s in flying) == 5  # maxParallel used, never exceeded
        for s in flying:
            assert len({groups[n] for n in s}) == len(s), s  # no two pair members at once
        # Each wave starts only after the previous one passed, plus the 5m pause.
        for wave in (1, 2, 3):
            prev_end = max(e.time for e in r.events if e.to_phase == "done"
                           and waves[e.device] == wave - 1)  # fmt: skip
            start = min(e.time for e in r.events if e.to_phase == "precheck"
                        and waves[e.device] == wave)  # fmt: skip
            assert (start - prev_end).total_seconds() >= 300
        assert not policy_progress(r.journal, "fleet").halted
        # The API key never reaches the journal or the events.
        assert r.fleet.api_key.encode() not in (tmp_path / "journal.sqlite").read_bytes()
        assert all(r.fleet.api_key not in e.detail for e in r.events)


async def test_canary_fails_to_boot_rolls_back_and_halts(tmp_path: Path) -> None:
    devices = [make_device(f"r{i}") for i in range(6)]
    devices[0].faults.boot_failure = "revert"
    waves = {d.name: (0 if i == 0 else 1) for i, d in enumerate(devices)}
    async with rig(tmp_path, devices) as r:
        result = await r.run(make_policy(), make_plan("rev1", "fleet", devices, waves=waves))
        canary = r.device("r0")
        assert canary.running == OLD and canary.default == OLD
        out = result.outcomes["r0"]
        assert out.status is OutcomeStatus.FAILED and out.rolled_back
        assert "did not boot" in (out.error or "")
        assert result.halted and "failureThreshold" in result.reason
        for d in devices[1:]:
            assert r.device(d.name).calls.total() == 0  # nobody else touched
            assert result.outcomes[d.name].status is OutcomeStatus.WAITING
        phases = [e.to_phase for e in r.events if e.device == "r0"]
        assert phases[-3:] == ["rollback", "verify-rollback", "failed"]
        # A second pass under the same revision and token does nothing: still halted.
        again = await r.run(make_policy(), make_plan("rev1", "fleet", devices, waves=waves))
        assert again.halted and r.device("r1").calls.total() == 0


async def test_health_gate_fails_in_wave_two_halts_at_threshold(tmp_path: Path) -> None:
    devices = [make_device(f"r{i}") for i in range(8)]
    waves = {"r0": 0, "r1": 1, "r2": 1, "r3": 2, "r4": 2, "r5": 2, "r6": 3, "r7": 3}
    for bad in ("r3", "r4"):
        r_dev = next(d for d in devices if d.name == bad)
        r_dev.faults.degrade_after_upgrade = True
    policy = make_policy(
        strategy={"canary": 1, "waves": [30, 70, 100], "maxParallel": 1,
                  "maxUnavailable": 1, "pause": "0s", "failureThreshold": 2},
        healthChecks=[BGP_CHECK],
    )  # fmt: skip
    async with rig(tmp_path, devices) as r:
        result = await r.run(policy, make_plan("rev1", "fleet", devices, waves=waves))
        for bad in ("r3", "r4"):
            out = result.outcomes[bad]
            assert out.status is OutcomeStatus.FAILED and out.rolled_back, out
            assert "health check failed" in (out.error or "")
            assert r.device(bad).running == OLD and r.device(bad).default == OLD
            assert len(r.reboots(bad)) == 2  # the upgrade, and the rollback
        assert result.halted and "failureThreshold reached: 2" in result.reason
        for untouched in ("r5", "r6", "r7"):
            assert r.device(untouched).calls.total() == 0
        progress = policy_progress(r.journal, "fleet")
        assert progress.halted and progress.current_wave == 2
        assert "failureThreshold" in (progress.halt_reason or "")
        assert progress.devices["r3"].phase is Phase.FAILED

        # A new retryToken lifts the halt and gives the failed devices another attempt.
        for bad in ("r3", "r4"):
            r.device(bad).faults.degrade_after_upgrade = False
            r.device(bad).bgp_down = False
        retry = make_policy(
            strategy=policy.spec.strategy.model_dump(mode="json"),
            healthChecks=[BGP_CHECK], retryToken="try-2",
        )  # fmt: skip
        result = await r.run(retry, make_plan("rev1", "fleet", devices, waves=waves))
        assert result.complete and not result.halted, result.reason
        assert all(r.device(d.name).running == TARGET for d in devices)
