"""Health gates: a policy's ``show``-command checks, evaluated against one device.

Each check waits ``initialDelay``, then probes every ``interval``:

- a probe *passes* when the output matches ``expect`` (if given) and not ``reject``
  (if given), and *fails* otherwise;
- ``successThreshold`` consecutive passes pass the check, ``failureThreshold``
  consecutive failures fail it;
- a probe that raises a device error (unreachable, command error) is an *error*; up to
  ``retries`` consecutive errors are tolerated, one more makes the check inconclusive;
- when ``timeout`` (counted after the initial delay) runs out without a verdict, the
  check is inconclusive.

Checks run concurrently. Any failure fails the gate; otherwise any inconclusive check
makes it inconclusive (the rollout pauses for a human); otherwise it passes.
"""

from __future__ import annotations

import asyncio
import enum
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from reconciler.clock import Clock
from reconciler.errors import DeviceError
from reconciler.model.kinds import HealthCheck

__all__ = ["HealthResult", "ShowFn", "Verdict", "evaluate", "run_check"]

ShowFn = Callable[[Sequence[str]], Awaitable[str]]


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


def _probe_ok(check: HealthCheck, output: str) -> bool:
    if check.expect is not None and not re.search(check.expect, output, re.MULTILINE):
        return False
    return not (check.reject is not None and re.search(check.reject, output, re.MULTILINE))


async def run_check(check: HealthCheck, show: ShowFn, clock: Clock) -> HealthResult:
    """Run one check to its verdict (see the module docstring for the rules)."""
    await clock.sleep(check.initialDelay.total_seconds())
    deadline = clock.monotonic() + check.timeout.total_seconds()
    interval = check.interval.total_seconds()
    passes = fails = errors = 0
    last = "no probe ran"
    while True:
        try:
            output = await show(check.show)
        except DeviceError as e:
            errors += 1
            passes = 0
            last = f"probe error ({e.reason})"
            if errors > check.retries:
                return HealthResult(Verdict.INCONCLUSIVE, f"{check.name}: {last}")
        else:
            errors = 0
            if _probe_ok(check, output):
                passes, fails = passes + 1, 0
                if passes >= check.successThreshold:
                    return HealthResult(Verdict.PASS, check.name)
                last = "passed"
            else:
                passes, fails = 0, fails + 1
                last = "output did not match"
                if fails >= check.failureThreshold:
                    return HealthResult(Verdict.FAIL, f"{check.name}: {last}")
        if clock.monotonic() + interval > deadline:
            return HealthResult(Verdict.INCONCLUSIVE, f"{check.name}: timed out ({last})")
        await clock.sleep(interval)


async def evaluate(checks: Sequence[HealthCheck], show: ShowFn, clock: Clock) -> HealthResult:
    """Run every check concurrently and combine their verdicts."""
    if not checks:
        return HealthResult(Verdict.PASS, "no checks")
    results = await asyncio.gather(*(run_check(c, show, clock) for c in checks))
    for wanted in (Verdict.FAIL, Verdict.INCONCLUSIVE):
        bad = [r.detail for r in results if r.verdict is wanted]
        if bad:
            return HealthResult(wanted, "; ".join(bad))
    return HealthResult(Verdict.PASS, ", ".join(r.detail for r in results))
