"""Windows, release families, multi-hop paths, suspend, stop and re-derivation from
observation, on the simulator."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler.planning.windows import is_allowed
from reconciler.rollout import Journal, OutcomeStatus, Transition, context
from tests.support.rollout import (
    OLD,
    OLDER,
    TARGET,
    ScaledClock,
    make_device,
    make_plan,
    make_policy,
    rig,
)

TWO_AM = datetime(2026, 1, 3, 2, 0, tzinfo=UTC)
BEFORE = TWO_AM - timedelta(minutes=10)
NIGHTLY = [{"type": "allow", "schedule": "0 2 * * *", "duration": "1h"}]


async def test_window_closes_mid_wave(tmp_path: Path) -> None:
    devices = [make_device(f"r{i}") for i in range(9)]
    windows = [{"type": "allow", "schedule": "*/30 * * * *", "duration": "8m"}]
    policy = make_policy(
        strategy={"canary": 0, "waves": [100], "maxParallel": 3, "maxUnavailable": 3,
                  "pause": "0s", "stageEarly": False, "maxStepDuration": "4m"},
        windows=windows,
    )  # fmt: skip
    clock = ScaledClock(TWO_AM - timedelta(minutes=1), scale=600)
    # Boot takes 0.3 s real = 3 min on the engine's clock: the second batch starts in the
    # window but may not reboot in it (4 min steps), so it waits for the next one.
    async with rig(tmp_path, devices, clock=clock, boot_seconds=0.3) as r:
        plan = make_plan("rev1", "fleet", devices, waves={d.name: 1 for d in devices})
        result = await r.run(policy, plan)
        assert result.complete, result.reason
        assert all(r.device(d.name).running == TARGET for d in devices)
        close = TWO_AM + timedelta(minutes=8)
        reopen = TWO_AM + timedelta(minutes=30)
        starts = {e.device: e.time for e in r.events if e.to_phase == "precheck"}
        ends = {e.device: e.time for e in r.events if e.to_phase == "done"}
        slack = timedelta(seconds=30)  # the start decision precedes its journal entry
        for name, t in starts.items():
            windows_ = policy.spec.windows
            assert is_allowed(windows_, t) or is_allowed(windows_, t - slack), (name, t)
            assert not (close + slack <= t < reopen), (name, t)
        overran = [n for n in starts if starts[n] < close <= ends[n]]
        assert overran, "some device started in the window and finished after it closed"
        for e in r.events:
            if e.to_phase == "await-boot":  # every reboot fits its window
                assert not (close - timedelta(minutes=4) + slack <= e.time < reopen), e
        assert any(t >= reopen for t in starts.values()), "the rest waited for the next window"


async def test_release_families_stage_early_only_on_15(tmp_path: Path) -> None:
    lts = make_device("lts", images=("1.4.2", "1.4.3"))
    rolling = make_device("rolling")
    devices = [lts, rolling]
    policy = make_policy(windows=NIGHTLY, strategy={"canary": 0, "waves": [100],
                         "maxParallel": 2, "maxUnavailable": 2, "pause": "0s"})  # fmt: skip
    plan = make_plan(
        "rev1", "fleet", devices, waves={"lts": 1, "rolling": 1},
        paths={"lts": ["1.4.4"], "rolling": [TARGET]},
    )  # fmt: skip
    async with rig(tmp_path, devices, versions=("1.4.4", TARGET), clock=ScaledClock(BEFORE)) as r:
        result = await r.run(policy, plan)
        assert result.complete, result.reason
        when = {(e.device, e.to_phase): e.time for e in r.events}
        # The 1.5 device was staged an hour early, set back to its running image, and
        # activated inside the window.
        assert when[("rolling", "stage")] < TWO_AM <= when[("rolling", "activate")]
        log = [e["event"] for e in r.device("rolling").log]
        assert log.index("image-set_default") < log.index("reboot")
        # The 1.4 device was not touched before the window opened.
        assert when[("lts", "precheck")] >= TWO_AM
        assert r.device("lts").running == "1.4.4" and r.device("rolling").running == TARGET
        assert len(r.adds("lts")) == len(r.adds("rolling")) == 1


async def test_multi_hop_13_to_14_to_rolling(tmp_path: Path) -> None:
    dev = make_device("old", images=("1.3.7", "1.3.8"))
    plan = make_plan("rev1", "fleet", [dev], waves={"old": 1}, paths={"old": ["1.4.4", TARGET]})
    policy = make_policy(healthChecks=[{"name": "bgp", "show": ["ip", "bgp", "summary"],
                         "reject": "Active", "initialDelay": "5s", "interval": "5s"}])  # fmt: skip
    async with rig(tmp_path, [dev], versions=("1.4.4", TARGET)) as r:
        first = await r.run(policy, plan)
        # 1.3 has no /reboot over the API: staged, then waiting for a human reboot.
        out = first.outcomes["old"]
        assert out.status is OutcomeStatus.WAITING and "reboot-unsupported" in (out.error or "")
        sim_dev = r.device("old")
        assert sim_dev.default == "1.4.4" and sim_dev.running == "1.3.8"
        sim_dev.start_reboot(r.fleet.sim.now(), 0.05)  # the operator reboots it
        await asyncio.sleep(0.1)
        second = await r.run(policy, plan)
        assert second.complete and second.outcomes["old"].status is OutcomeStatus.DONE
        assert sim_dev.running == TARGET
        hops = [(e.hop, e.to_phase) for e in r.events]
        assert hops.index((0, "health")) < hops.index((1, "precheck")) < hops.index((1, "health"))
        urls = [e["url"] for e in r.adds("old")]
        assert len(urls) == 2 and "1.4.4" in urls[0] and TARGET in urls[1]


async def _two_hop_reboots(tmp_path: Path, deny: datetime, **strategy: str) -> list[Transition]:
    """Move one device OLDER -> OLD -> TARGET from TWO_AM, inside a 3 h window with a 1 h
    freeze from ``deny``; boot takes 0.3 s real = 3 min. The reboots (await-boot entries)."""
    dev = make_device("mh", images=("1.5-rolling-202409250007", OLDER))
    plan = make_plan("rev1", "fleet", [dev], waves={"mh": 1}, paths={"mh": [OLD, TARGET]})
    policy = make_policy(
        windows=[{"type": "allow", "schedule": "0 2 * * *", "duration": "3h"},
                 {"type": "deny", "schedule": f"{deny.minute} 2 * * *", "duration": "1h"}],
        strategy={"canary": 0, "waves": [100], "pause": "0s", **strategy},
    )  # fmt: skip
    async with rig(tmp_path, [dev], versions=(OLD, TARGET), clock=ScaledClock(TWO_AM),
                   boot_seconds=0.3) as r:  # fmt: skip
        result = await r.run(policy, plan)
        assert result.complete, result.reason
        assert r.device("mh").running == TARGET
        reboots = [e for e in r.events if e.to_phase == "await-boot"]
    assert [e.hop for e in reboots] == [0, 1]
    return reboots


async def test_deny_window_holds_the_reboot_of_a_later_hop(tmp_path: Path) -> None:
    # The first hop fits before the freeze (12 min steps), the second not.
    deny = TWO_AM + timedelta(minutes=15)
    reboots = await _two_hop_reboots(tmp_path, deny, maxStepDuration="12m")
    slack = timedelta(seconds=30)  # the decision precedes its journal entry
    for e in reboots:  # no reboot could run into the freeze, none inside it
        assert not (deny - timedelta(minutes=12) + slack <= e.time < deny + timedelta(hours=1))
    assert reboots[1].time >= deny + timedelta(hours=1)


async def test_deny_window_holds_a_later_hop_by_the_default_step_duration(
    tmp_path: Path,
) -> None:
    # No maxStepDuration: its default (30 min) keeps every reboot out of a freeze that
    # starts 3 min after the device did; the second hop's reboot would land inside it.
    deny = TWO_AM + timedelta(minutes=3)
    reboots = await _two_hop_reboots(tmp_path, deny)
    inside = [(e.hop, e.time) for e in reboots if deny <= e.time < deny + timedelta(hours=1)]
    assert inside == [], "a reboot inside the freeze"


async def test_suspend_starts_nothing(tmp_path: Path) -> None:
    devices = [make_device("r0")]
    async with rig(tmp_path, devices) as r:
        result = await r.run(make_policy(suspend=True),
                             make_plan("rev1", "fleet", devices, waves={"r0": 0}))  # fmt: skip
        assert result.suspended and not result.complete
        assert r.device("r0").calls.total() == 0


async def test_new_revision_stops_new_work_in_flight_finish(tmp_path: Path) -> None:
    devices = [make_device(f"r{i}") for i in range(6)]
    waves = {d.name: 1 for d in devices}
    policy = make_policy(strategy={"canary": 0, "waves": [100], "maxParallel": 2,
                                   "maxUnavailable": 2, "pause": "0s"})  # fmt: skip
    async with rig(tmp_path, devices, boot_seconds=0.2) as r:
        stop = asyncio.Event()
        task = asyncio.create_task(r.run(policy, make_plan("rev1", "fleet", devices, waves=waves),
                                         stop=stop))  # fmt: skip
        for _ in range(200):  # wait (bounded) until the first devices reboot
            if any(e.to_phase == "await-boot" for e in r.events):
                break
            await asyncio.sleep(0.01)
        stop.set()
        first = await task
        assert not first.complete
        finished = [n for n, o in first.outcomes.items() if o.status is OutcomeStatus.DONE]
        assert len(finished) == 2  # the two in flight finished
        assert all(r.device(n).running == TARGET for n in finished)
        untouched = [d.name for d in devices if d.name not in finished]
        assert all(r.device(n).running == OLD for n in untouched)
        # The next revision re-plans the rest and finishes.
        rest = [d for d in devices if d.name in untouched]
        second = await r.run(policy, make_plan("rev2", "fleet", rest, waves=waves))
        assert second.complete and all(r.device(d.name).running == TARGET for d in devices)


async def test_deleted_journal_is_rederived_and_unreachable_is_skipped(tmp_path: Path) -> None:
    devices = [make_device("r0"), make_device("r1"), make_device("down")]
    devices[2].faults.unreachable = True
    policy = make_policy(windows=NIGHTLY, strategy={"canary": 0, "waves": [100],
                         "maxParallel": 2, "maxUnavailable": 3, "pause": "0s"})  # fmt: skip
    plan = make_plan("rev1", "fleet", devices, waves={d.name: 1 for d in devices})
    async with rig(tmp_path, devices, clock=ScaledClock(BEFORE)) as r:
        early = await r.run(policy, plan, wait=False)  # before the window: stage only
        assert not early.complete
        assert TARGET in r.device("r0").images and r.device("r0").default == OLD
        assert early.outcomes["down"].status is OutcomeStatus.SKIPPED
        # Lose the journal entirely; the next run re-derives everything by observation.
        r.journal.close()
        (tmp_path / "journal.sqlite").unlink()
        r.engine.journal = r.journal = Journal(tmp_path / "journal2.sqlite")
        result = await r.run(policy, plan)
        assert result.outcomes["r0"].status is OutcomeStatus.DONE
        assert result.outcomes["down"].status is OutcomeStatus.SKIPPED
        for name in ("r0", "r1"):
            assert r.device(name).running == TARGET
            assert len(r.adds(name)) == 1 and len(r.reboots(name)) == 1


async def test_lts_health_failure_halts_for_a_human(tmp_path: Path) -> None:
    dev = make_device("lts", images=("1.4.2", "1.4.3"))
    dev.faults.degrade_after_upgrade = True
    check = {"name": "bgp", "show": ["ip", "bgp", "summary"], "reject": "Active",
             "initialDelay": "5s", "interval": "5s", "failureThreshold": 1}  # fmt: skip
    plan = make_plan("rev1", "fleet", [dev], waves={"lts": 0}, paths={"lts": ["1.4.4"]})
    async with rig(tmp_path, [dev], versions=("1.4.4",)) as r:
        result = await r.run(make_policy(healthChecks=[check]), plan)
        out = result.outcomes["lts"]
        # 1.4 has no set_default over the API: no automatic rollback, a halt instead.
        assert out.status is OutcomeStatus.FAILED and not out.rolled_back
        assert "rollback-unsupported" in (out.error or "")
        assert result.halted
        assert r.device("lts").running == "1.4.4" and len(r.reboots("lts")) == 1


async def test_windows_are_evaluated_once_per_span_not_per_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Devices that reach their reboot together share one evaluation of the windows (a
    cron walk each was about 2 ms: 100 devices held the event loop for 0.2 s and more)."""
    devices = [make_device(f"r{i}") for i in range(8)]
    policy = make_policy(
        windows=[{"type": "allow", "schedule": "0 2 * * *", "duration": "3h"}],
        strategy={"canary": 0, "waves": [100], "maxParallel": 8, "maxUnavailable": 8,
                  "pause": "0s", "maxStepDuration": "12m"},
    )  # fmt: skip
    calls: Counter[str] = Counter()
    for name in ("is_allowed", "allowed_until", "next_allowed"):
        real = getattr(context, name)
        monkeypatch.setattr(context, name, _counted(calls, name, real))
    async with rig(tmp_path, devices, clock=ScaledClock(TWO_AM)) as r:
        plan = make_plan("rev1", "fleet", devices, waves={d.name: 1 for d in devices})
        result = await r.run(policy, plan)
        assert result.complete, result.reason
        reboots = [e for e in r.events if e.to_phase == "await-boot"]
        assert len(reboots) == len(devices)
    # One evaluation for the whole run, inside one allow window that closes at 05:00.
    assert calls == Counter({"is_allowed": 1, "allowed_until": 1}), calls


def _counted(calls: Counter[str], name: str, real: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls[name] += 1
        return real(*args, **kwargs)

    return wrapper
