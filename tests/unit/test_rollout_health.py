"""Unit tests of the health-gate evaluator, on a fake clock."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from reconciler.clock import FakeClock
from reconciler.errors import CommandError, Unreachable
from reconciler.model.kinds import HealthCheck
from reconciler.rollout import Verdict, evaluate, run_check


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


async def test_errors_past_retries_are_inconclusive() -> None:
    show = Script([Unreachable("down", device="r1"), CommandError("bad", device="r1")])
    result = await run_check(check(), show, FakeClock(autojump=True))
    assert result.verdict is Verdict.INCONCLUSIVE
    assert show.calls == 2  # retries=1 tolerates one error


async def test_timeout_without_verdict_is_inconclusive() -> None:
    # Alternating answers never reach either threshold; the timeout decides.
    show = Script(["Established", "Idle"] * 40)
    clock = FakeClock(autojump=True)
    result = await run_check(check(), show, clock)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "timed out" in result.detail
    assert clock.monotonic() <= 5 + 30


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
