"""The engine on the planner's own Plan, and the gates a plan cannot show: an inconclusive
health gate pauses the rollout, and unreachable devices use up maxUnavailable."""

from __future__ import annotations

from pathlib import Path

from reconciler.devices.observe import observe_device
from reconciler.model.facts import DeviceFacts
from reconciler.model.kinds import Device
from reconciler.model.state import DesiredState
from reconciler.planning.plan import Action
from reconciler.planning.planner import plan
from reconciler.planning.progress import Phase
from reconciler.rollout import (
    DeviceRecord,
    OutcomeStatus,
    RolloutRecord,
    Transition,
    policy_progress,
    rollout_progress,
)
from tests.integration.test_rollout_engine import in_flight_sets
from tests.support.images import image_doc
from tests.support.rollout import OLD, OLDER, TARGET, Rig, make_device, make_plan, make_policy, rig


def _device_doc(r: Rig, name: str, group: str) -> Device:
    return Device.model_validate({
        "apiVersion": "gitfirm.io/v1", "kind": "Device", "metadata": {"name": name},
        "spec": {"address": r.fleet.url(name), "credentials": {"apiKey": {"env": "SIM_KEY"}},
                 "site": "ams", "redundancyGroup": group},
    })  # fmt: skip


async def _facts(r: Rig) -> dict[str, DeviceFacts]:
    return {n: await observe_device(c, r.clock) for n, c in r.clients.items()}


async def test_engine_runs_the_planners_plan(tmp_path: Path) -> None:
    devices = [make_device(f"r{i}") for i in range(6)]
    groups = {d.name: f"pair-{i // 2}" for i, d in enumerate(devices)}
    policy = make_policy(strategy={"canary": 1, "waves": [50, 100], "maxParallel": 2,
                                   "maxUnavailable": 2, "pause": "0s"})  # fmt: skip
    image = image_doc(f"img-{TARGET}", version=TARGET, sha256="0" * 64, size=1024,
                      url=f"https://images.example/{TARGET}.iso")  # fmt: skip
    async with rig(tmp_path, devices) as r:
        desired = DesiredState(
            devices={d.name: _device_doc(r, d.name, groups[d.name]) for d in devices},
            images={image.name: image},
            rollout_policies={policy.name: policy},
            revision="rev1",
        )  # fmt: skip
        before = plan(desired, await _facts(r), rollout_progress(r.journal, ["fleet"]),
                      r.clock.now())  # fmt: skip
        assert before.counts()["upgrade"] == 6, before.counts()
        result = await r.run(policy, before)
        assert result.complete and not result.halted, result.reason
        assert all(r.device(d.name).running == TARGET for d in devices)
        # No two members of a pair in flight together, whatever waves the planner chose.
        for s in in_flight_sets(r.events):
            assert len({groups[n] for n in s}) == len(s)
        after = plan(desired, await _facts(r), rollout_progress(r.journal, ["fleet"]),
                     r.clock.now())  # fmt: skip
        assert {d.action for d in after.devices} == {Action.NONE}


def _silence_in_health(r: Rig, name: str) -> None:
    """The device stops answering when it enters health, and answers again at rollback."""

    def hook(event: Transition) -> None:
        r.events.append(event)
        if event.device == name and event.to_phase in ("health", "rollback"):
            r.device(name).faults.unreachable = event.to_phase == "health"

    r.engine.events = hook


_BGP = {"name": "bgp", "show": ["ip", "bgp", "summary"], "expect": "Neighbor",
        "initialDelay": "1s", "interval": "1s", "retries": 1}  # fmt: skip


async def test_unreachable_in_health_pauses_until_a_new_retry_token(tmp_path: Path) -> None:
    devices = [make_device("r0"), make_device("r1")]
    policy = make_policy(healthChecks=[_BGP], rollback={"onUnreachable": "pause"})
    plan_ = make_plan("rev1", "fleet", devices, waves={"r0": 0, "r1": 1})
    async with rig(tmp_path, devices) as r:
        _silence_in_health(r, "r0")
        result = await r.run(policy, plan_)
        out = result.outcomes["r0"]
        assert out.status is OutcomeStatus.PAUSED and "inconclusive" in (out.error or "")
        assert result.halted and result.reason.startswith("paused")
        assert r.device("r0").running == TARGET  # not failed, not rolled back
        assert r.device("r1").calls.total() == 0
        assert policy_progress(r.journal, "fleet").devices["r0"].phase is Phase.HEALTH
        # A human brings it back and sets a new retryToken: the gate runs again.
        r.engine.events = r.events.append
        r.device("r0").faults.unreachable = False
        result = await r.run(policy.model_copy(update={"spec": policy.spec.model_copy(
            update={"retryToken": "checked"})}), plan_)  # fmt: skip
        assert result.complete, result.reason
        assert r.device("r1").running == TARGET


async def test_unreachable_after_boot_rolls_back_by_default(tmp_path: Path) -> None:
    devices = [make_device("r0"), make_device("r1")]
    policy = make_policy(healthChecks=[_BGP])
    plan_ = make_plan("rev1", "fleet", devices, waves={"r0": 0, "r1": 1})
    async with rig(tmp_path, devices) as r:
        _silence_in_health(r, "r0")
        result = await r.run(policy, plan_)
        out = result.outcomes["r0"]
        assert out.status is OutcomeStatus.FAILED and out.rolled_back, out
        assert "probe error" in (out.error or "")
        assert r.device("r0").running == OLD
        assert result.halted and r.device("r1").calls.total() == 0


async def test_builtin_gate_wants_the_uptime_reset(tmp_path: Path) -> None:
    # No health checks: the built-in gate. The device says it runs the target, but its
    # uptime says it never went down (a stale answer): that is no proof of a boot.
    devices = [make_device("r0"), make_device("r1")]
    plan_ = make_plan("rev1", "fleet", devices, waves={"r0": 0, "r1": 1})
    async with rig(tmp_path, devices) as r:

        def stale(event: Transition) -> None:
            r.events.append(event)
            if event.device == "r0" and event.to_phase == "verify":
                r.device("r0").booted_at = r.fleet.sim.now() - 86_400

        r.engine.events = stale
        result = await r.run(make_policy(), plan_)
        out = result.outcomes["r0"]
        assert out.status is OutcomeStatus.FAILED and "did not reboot" in (out.error or "")
        assert r.device("r0").running == OLD and out.rolled_back
        assert result.halted and r.device("r1").calls.total() == 0


async def test_a_halted_rollout_still_finishes_a_disrupted_device(tmp_path: Path) -> None:
    # The journal after a crash: the rollout halted (another device failed) while r0 sat
    # in its health gate on the new image, whose BGP is down.
    r0 = make_device("r0", images=(OLDER, OLD, TARGET))
    r0.bgp_down = True
    policy = make_policy(healthChecks=[_BGP | {"expect": r"\s\d+\s+\d+\s+N/A$"}])
    plan_ = make_plan("rev1", "fleet", [r0], waves={"r0": 0}, paths={"r0": [TARGET]})
    async with rig(tmp_path, [r0]) as r:
        r.journal.write_rollout(RolloutRecord("fleet", "rev1", halted=True, reason="r9 failed"))
        r.journal.write_device(DeviceRecord("fleet", "r0", "rev1", phase=Phase.HEALTH,
                                            target=TARGET, previous=OLD, attempts=1))  # fmt: skip
        result = await r.run(policy, plan_)
        assert result.halted and result.outcomes["r0"].status is OutcomeStatus.FAILED
        assert result.outcomes["r0"].rolled_back and r.device("r0").running == OLD


async def test_unreachable_untouched_devices_use_none_of_max_unavailable(tmp_path: Path) -> None:
    # Issue 10 point 7: an unreachable device nobody touched is skipped and reported; it
    # must not eat the budget (with maxUnavailable 1, one such device stalled a policy).
    devices = [make_device(f"r{i}") for i in range(8)]
    down = ["r6", "r7"]
    policy = make_policy(strategy={"canary": 0, "waves": [100], "maxParallel": 5,
                                   "maxUnavailable": 3, "pause": "0s"})  # fmt: skip
    plan_ = make_plan("rev1", "fleet", devices, waves={d.name: 1 for d in devices},
                      unreachable=down)  # fmt: skip
    async with rig(tmp_path, devices) as r:
        result = await r.run(policy, plan_)
        assert result.complete
        assert max(len(s) for s in in_flight_sets(r.events)) == 3
        for n in down:
            assert r.device(n).calls.total() == 0
        assert all(r.device(f"r{i}").running == TARGET for i in range(6))


async def test_pause_between_waves_survives_restarts(tmp_path: Path) -> None:
    devices = [make_device("r0"), make_device("r1"), make_device("r2")]
    groups = {"r1": "pair", "r2": "pair"}
    policy = make_policy(strategy={"canary": 1, "waves": [100], "maxParallel": 2,
                                   "maxUnavailable": 2, "pause": "1h"})  # fmt: skip
    plan_ = make_plan("rev1", "fleet", devices, waves={"r0": 0, "r1": 1, "r2": 1},
                      groups=groups, unreachable=["r2"])  # fmt: skip
    async with rig(tmp_path, devices) as r:
        first = await r.run(policy, plan_, wait=False)
        assert first.waves_passed == (0,) and not first.complete
        record = r.journal.rollout("fleet")
        assert record is not None and record.wave_passed_at
        # A restart re-runs the passed canary wave without restarting the pause clock.
        second = await r.run(policy, plan_, wait=False)
        assert second.waves_passed == (0,)
        again = r.journal.rollout("fleet")
        assert again is not None and again.wave_passed_at == record.wave_passed_at
        assert again.wave == 1  # waiting for wave 1
        assert r.device("r1").calls.total() == 0
        # After the pause, r1 is skipped: its redundancy peer r2 is unreachable.
        third = await r.run(policy, plan_)
        assert third.complete
        assert third.outcomes["r1"].status is OutcomeStatus.SKIPPED
        assert "peer" in (third.outcomes["r1"].error or "")
        assert r.device("r1").calls.total() == 0 and r.device("r2").calls.total() == 0


async def test_a_disrupted_device_finishes_before_its_peer_in_an_earlier_wave_starts(
    tmp_path: Path,
) -> None:
    # Found by chaos (seed 12): SIGKILL while r1 sat in its health gate, then a new
    # revision. r1 is in wave 1, its redundancy peer r0 is the canary: r0 rebooted while r1
    # was still disrupted, because r1 counted as busy only once its wave came.
    r0, r1 = make_device("r0"), make_device("r1", images=(OLDER, OLD, TARGET))
    plan_ = make_plan("rev2", "fleet", [r0, r1], waves={"r0": 0, "r1": 1},
                      groups={"r0": "pair", "r1": "pair"})  # fmt: skip
    async with rig(tmp_path, [r0, r1]) as r:
        r.journal.write_device(DeviceRecord("fleet", "r1", "rev1", phase=Phase.HEALTH,
                                            target=TARGET, previous=OLD, attempts=1))  # fmt: skip
        result = await r.run(make_policy(), plan_)
        assert result.complete
        order = [(e.device, e.to_phase) for e in r.events]
        assert order.index(("r1", "done")) < order.index(("r0", "precheck")), order
        assert r.device("r0").running == TARGET and r.device("r1").running == TARGET
        assert len(r.reboots("r1")) == 0  # it had rebooted before the crash
