"""Unit tests of the health-gate evaluator, on a fake clock."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from reconciler.clock import FakeClock
from reconciler.errors import CommandError, Unreachable
from reconciler.model.kinds import HealthCheck
from reconciler.rollout import Verdict, evaluate, run_check
from reconciler.rollout.health import measure, probe_problem


class Script:
    """A show() that answers from a script: strings are outputs, exceptions are raised."""

    def __init__(self, answers: Sequence[str | Exception]) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def __call__(self, path: Sequence[str]) -> str:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        if isinstance(answer, Exception):
            raise answer
        return answer


def check(**kw: object) -> HealthCheck:
    base: dict[str, object] = {
        "name": "bgp",
        "show": ["ip", "bgp", "summary"],
        "expect": r"Established",
        "initialDelay": "5s",
        "interval": "2s",
        "timeout": "30s",
        "retries": 1,
        "successThreshold": 2,
        "failureThreshold": 2,
    }
    return HealthCheck.model_validate(base | kw)


async def test_passes_after_success_threshold_and_waits_initial_delay() -> None:
    clock = FakeClock(autojump=True)
    show = Script(["Idle", "Established", "Established"])
    result = await run_check(check(), show, clock)
    assert result.verdict is Verdict.PASS
    assert show.calls == 3
    assert clock.monotonic() == 5 + 2 * 2


async def test_fails_after_failure_threshold() -> None:
    result = await run_check(check(), Script(["Idle"]), FakeClock(autojump=True))
    assert result.verdict is Verdict.FAIL
    assert "did not match" in result.detail


async def test_reject_regex_fails() -> None:
    c = check(expect=None, reject=r"Idle|Active", failureThreshold=1)
    result = await run_check(c, Script(["peer 1 Active"]), FakeClock(autojump=True))
    assert result.verdict is Verdict.FAIL


async def test_errors_past_retries_fail_the_check() -> None:
    # A router that stops answering after its upgrade is rolled back, not left on it.
    show = Script([Unreachable("down", device="r1"), CommandError("bad", device="r1")])
    result = await run_check(check(), show, FakeClock(autojump=True))
    assert result.verdict is Verdict.FAIL
    assert show.calls == 2  # retries=1 tolerates one error


async def test_no_answer_pauses_only_when_the_policy_says_pause() -> None:
    down = Script([Unreachable("down", device="r1")])
    paused = await run_check(check(), down, FakeClock(autojump=True), pause_unreachable=True)
    assert paused.verdict is Verdict.INCONCLUSIVE
    # A command error is an answer: it fails even under "pause".
    bad = Script([CommandError("bad", device="r1")])
    failed = await run_check(check(), bad, FakeClock(autojump=True), pause_unreachable=True)
    assert failed.verdict is Verdict.FAIL


async def test_timeout_without_verdict_fails() -> None:
    # Alternating answers never reach either threshold; the timeout decides.
    show = Script(["Established", "Idle"] * 40)
    clock = FakeClock(autojump=True)
    result = await run_check(check(), show, clock)
    assert result.verdict is Verdict.FAIL
    assert "timed out" in result.detail
    assert clock.monotonic() <= 5 + 30


BGP = "peer a 4 5 N/A\npeer b 4 {b} N/A\npeer c 4 {c} N/A\n"


async def test_baseline_counts_lines_or_sums_the_first_group() -> None:
    lines = check(expect=r" 4 \d+ N/A$")
    assert measure(lines, BGP.format(b=7, c=8)) == 3
    assert measure(lines, BGP.format(b="Active", c=8)) == 2
    routes = check(expect=r"^Totals\s+(\d+)")
    assert measure(routes, "Totals   812\n") == 812
    assert probe_problem(routes, "Totals   700\n", baseline=812).startswith("measure 700 below")
    assert not probe_problem(check(expect=r"^Totals\s+(\d+)", baselineTolerance=20),
                             "Totals   700\n", baseline=812)  # fmt: skip


async def test_fewer_established_peers_than_before_fail_the_gate() -> None:
    # Each output alone matches expect; only the baseline (3 peers before) tells.
    c = check(expect=r" 4 \d+ N/A$", successThreshold=1, failureThreshold=1)
    degraded = Script([BGP.format(b="Active", c=8)])
    result = await evaluate([c], degraded, FakeClock(autojump=True), {"bgp": 3.0})
    assert result.verdict is Verdict.FAIL and "below the baseline 3" in result.detail
    healthy = Script([BGP.format(b=7, c=8)])
    assert (await evaluate([c], healthy, FakeClock(autojump=True), {"bgp": 3.0})).verdict is (
        Verdict.PASS
    )


async def test_gate_combines_fail_over_inconclusive() -> None:
    clock = FakeClock(autojump=True)
    ok = check(name="ok", expect="up", successThreshold=1)
    bad = check(name="bad", expect="never", failureThreshold=1)

    async def show(path: Sequence[str]) -> str:
        return "up"

    assert (await evaluate([ok], show, clock)).verdict is Verdict.PASS
    assert (await evaluate([], show, clock)).verdict is Verdict.PASS
    both = await evaluate([ok, bad], show, clock)
    assert both.verdict is Verdict.FAIL and "bad" in both.detail
    assert check().timeout == timedelta(seconds=30)
