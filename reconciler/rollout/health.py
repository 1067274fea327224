"""Health gates: a policy's ``show``-command checks, evaluated against one device.

Each check waits ``initialDelay``, then probes every ``interval``:

- a probe *passes* when the output matches ``expect`` (if given), not ``reject`` (if
  given), and, with a baseline, its *measure* is at least the baseline's (less
  ``baselineTolerance`` percent); it *fails* otherwise;
- the measure of an output is the sum of the numbers the first group of ``expect``
  captures, or, when ``expect`` has no group, the number of lines it matches (peers
  established, interfaces up); the baseline is the measure taken before the upgrade;
- ``successThreshold`` consecutive passes pass the check, ``failureThreshold``
  consecutive failures fail it;
- a probe that raises a device error is an *error*; up to ``retries`` consecutive errors
  are tolerated, one more decides the check: a device that stopped answering follows
  ``onUnreachable`` (``rollback`` fails the check, ``pause`` makes it inconclusive), any
  other error fails it;
- when ``timeout`` (counted after the initial delay) runs out without a verdict, the
  check fails (or is inconclusive if the device stopped answering and the policy says
  ``pause``).

Checks run concurrently. Any failure fails the gate; otherwise any inconclusive check
makes it inconclusive (the rollout pauses for a human); otherwise it passes.
"""

from __future__ import annotations

import asyncio
import enum
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from reconciler.clock import Clock
from reconciler.errors import DeviceError, DeviceServerError, Unreachable, UpstreamTimeout
from reconciler.model.kinds import HealthCheck

__all__ = ["HealthResult", "ShowFn", "Verdict", "evaluate", "measure", "probe_problem", "run_check"]

ShowFn = Callable[[Sequence[str]], Awaitable[str]]
_NO_ANSWER = (Unreachable, DeviceServerError, UpstreamTimeout)


class Verdict(enum.StrEnum):
    """The outcome of a check or a whole gate."""

    PASS = "pass"  # noqa: S105 - a verdict, not a password
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True, slots=True)
class HealthResult:
    """A verdict and why."""

    verdict: Verdict
    detail: str = ""


def measure(check: HealthCheck, output: str) -> float:
    """The measure of one output (see the module docstring); 0 without ``expect``."""
    if check.expect is None:
        return 0.0
    pattern = re.compile(check.expect, re.MULTILINE)
    found = list(pattern.finditer(output))
    if pattern.groups:
        return float(sum(float(m.group(1)) for m in found if _number(m.group(1))))
    return float(len(found))


def _number(text: str | None) -> bool:
    try:
        float(text or "")
    except ValueError:
        return False
    return True


def probe_problem(check: HealthCheck, output: str, baseline: float | None = None) -> str:
    """Why one output fails the check; empty when it passes."""
    if check.expect is not None and not re.search(check.expect, output, re.MULTILINE):
        return "output did not match"
    if check.reject is not None and re.search(check.reject, output, re.MULTILINE):
        return "output matched reject"
    if baseline is not None and check.baseline:
        floor = baseline * (100 - check.baselineTolerance) / 100
        got = measure(check, output)
        if got < floor:
            return f"measure {got:g} below the baseline {baseline:g}"
    return ""


async def run_check(
    check: HealthCheck,
    show: ShowFn,
    clock: Clock,
    baseline: float | None = None,
    *,
    pause_unreachable: bool = False,
) -> HealthResult:
    """Run one check to its verdict (see the module docstring for the rules)."""
    await clock.sleep(check.initialDelay.total_seconds())
    deadline = clock.monotonic() + check.timeout.total_seconds()
    interval = check.interval.total_seconds()
    passes = fails = errors = 0
    last = "no probe ran"
    silent = False  # the last probe got no answer at all

    def undecided(why: str) -> HealthResult:
        verdict = Verdict.INCONCLUSIVE if silent and pause_unreachable else Verdict.FAIL
        return HealthResult(verdict, f"{check.name}: {why}")

    while True:
        try:
            output = await show(check.show)
        except DeviceError as e:
            errors += 1
            passes = 0
            silent = isinstance(e, _NO_ANSWER)
            last = f"probe error ({e.reason})"
            if errors > check.retries:
                return undecided(last)
        else:
            errors = 0
            silent = False
            why = probe_problem(check, output, baseline)
            if not why:
                passes, fails = passes + 1, 0
                if passes >= check.successThreshold:
                    return HealthResult(Verdict.PASS, check.name)
                last = "passed"
            else:
                passes, fails = 0, fails + 1
                last = why
                if fails >= check.failureThreshold:
                    return HealthResult(Verdict.FAIL, f"{check.name}: {last}")
        if clock.monotonic() + interval > deadline:
            return undecided(f"timed out ({last})")
        await clock.sleep(interval)


async def evaluate(
    checks: Sequence[HealthCheck],
    show: ShowFn,
    clock: Clock,
    baselines: Mapping[str, float] | None = None,
    *,
    pause_unreachable: bool = False,
) -> HealthResult:
    """Run every check concurrently (each against its baseline, by check name, if any)
    and combine their verdicts."""
    if not checks:
        return HealthResult(Verdict.PASS, "no checks")
    base = baselines or {}
    results = await asyncio.gather(
        *(
            run_check(c, show, clock, base.get(c.name), pause_unreachable=pause_unreachable)
            for c in checks
        )
    )
    for wanted in (Verdict.FAIL, Verdict.INCONCLUSIVE):
        bad = [r.detail for r in results if r.verdict is wanted]
        if bad:
            return HealthResult(wanted, "; ".join(bad))
    return HealthResult(Verdict.PASS, ", ".join(r.detail for r in results))
