"""``make chaos``: seeded chaos scenarios through the real daemon process.

``CHAOS_SEED`` (default 1) and ``CHAOS_SCENARIOS`` (default 40) select the run: scenario
*k* uses seed ``CHAOS_SEED + k``, so ``CHAOS_SEED=<seed> CHAOS_SCENARIOS=1`` replays one
(with the same ``CHAOS_DURATION``: the timeline depends on it).
``CHAOS_DURATION`` sets the seconds of chaos per scenario (default 25).

The run's output dir (``CHAOS_OUT``, default a new ``/tmp/gitfirm-chaos-<seed>-*``) gets a
``seed-<n>/`` per scenario with ``record.json`` (seed, faults, actions, violations, notes,
duration) and ``violations.txt``; ``CHAOS_KEEP=1`` keeps the rest too (daemon log, event
log, git remote, state dir). A scenario that broke an invariant keeps the rest anyway: a
seed fixes the scenario, not the timing, so a replay may not show the fault again.

Progress goes to stderr. Stdout gets one line per violation, naming the scenario's seed,
and last a JSON summary: ``{"chaos": "daemon", "scenarios": N, "seed": S, "violations": V}``.
The exit code is 1 when any invariant was violated.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tests.chaos.harness import ChaosResult, run_scenario
from tests.chaos.scenario import make_scenario

KEPT = frozenset({"record.json", "violations.txt"})
"""What a scenario's directory keeps without ``CHAOS_KEEP``."""


def run(seed: int, count: int, duration: float, keep: bool, out: Path) -> list[ChaosResult]:
    """Run ``count`` scenarios from ``seed`` into ``out``; report progress on stderr."""
    results = []
    for k in range(count):
        scenario = make_scenario(seed + k, duration=duration)
        workdir = out / f"seed-{seed + k}"
        workdir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        result = asyncio.run(run_scenario(scenario, workdir))
        took = time.monotonic() - started
        print(
            f"scenario {k + 1}/{count} {scenario.describe()}: "
            f"{len(result.violations)} violation(s) in {took:.0f}s"
            + (f" [{'; '.join(result.notes)}]" if result.notes else "")
            + f" ({workdir / 'record.json'})",
            file=sys.stderr,
            flush=True,
        )
        if not (keep or result.violations):
            _prune(workdir)
        results.append(result)
    return results


def _prune(workdir: Path) -> None:
    """Remove all but :data:`KEPT` from a scenario's directory."""
    for path in workdir.iterdir():
        if path.name in KEPT:
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def main() -> int:
    """Run the scenarios the environment asks for; 1 when any invariant broke."""
    seed = int(os.environ.get("CHAOS_SEED", "1"))
    count = int(os.environ.get("CHAOS_SCENARIOS", "40"))
    duration = float(os.environ.get("CHAOS_DURATION", "25"))
    keep = os.environ.get("CHAOS_KEEP", "") not in ("", "0")
    out = Path(os.environ.get("CHAOS_OUT") or tempfile.mkdtemp(prefix=f"gitfirm-chaos-{seed}-"))
    print(f"chaos: seed {seed}, {count} scenario(s), output in {out}", file=sys.stderr)
    # A SIGKILLed daemon drops its calls mid-request; the simulator's server logs each one.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    results = run(seed, count, duration, keep, out)
    total = 0
    for result in results:
        for violation in result.violations:
            total += 1
            print(f"violation seed={result.scenario.seed} {violation.line()}")
    summary = {"chaos": "daemon", "scenarios": count, "seed": seed, "violations": total}
    print(json.dumps(summary), flush=True)
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
