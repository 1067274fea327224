"""``make chaos``: seeded chaos scenarios through the real daemon process.

``CHAOS_SEED`` (default 1) and ``CHAOS_SCENARIOS`` (default 40) select the run: scenario
*k* uses seed ``CHAOS_SEED + k``, so ``CHAOS_SEED=<seed> CHAOS_SCENARIOS=1`` replays one
(with the same ``CHAOS_DURATION``: the timeline depends on it).
``CHAOS_DURATION`` sets the seconds of chaos per scenario (default 25) and ``CHAOS_KEEP=1``
keeps each scenario's directory (daemon log, event log, git remote) under ``/tmp``.

Progress goes to stderr. Stdout gets one line per violation, naming the scenario's seed,
and last a JSON summary: ``{"chaos": "daemon", "scenarios": N, "seed": S, "violations": V}``.
The exit code is 1 when any invariant was violated.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from tests.chaos.harness import ChaosResult, run_scenario
from tests.chaos.scenario import make_scenario


def run(seed: int, count: int, duration: float, keep: bool) -> list[ChaosResult]:
    """Run ``count`` scenarios from ``seed``; report progress on stderr."""
    results = []
    for k in range(count):
        scenario = make_scenario(seed + k, duration=duration)
        workdir = Path(tempfile.mkdtemp(prefix=f"gitfirm-chaos-{seed + k}-"))
        started = time.monotonic()
        result = asyncio.run(run_scenario(scenario, workdir))
        took = time.monotonic() - started
        print(
            f"scenario {k + 1}/{count} {scenario.describe()}: "
            f"{len(result.violations)} violation(s) in {took:.0f}s"
            + (f" [{'; '.join(result.notes)}]" if result.notes else "")
            + (f" kept in {workdir}" if keep else ""),
            file=sys.stderr,
            flush=True,
        )
        if not keep:
            _remove(workdir)
        results.append(result)
    return results


def _remove(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def main() -> int:
    """Run the scenarios the environment asks for; 1 when any invariant broke."""
    seed = int(os.environ.get("CHAOS_SEED", "1"))
    count = int(os.environ.get("CHAOS_SCENARIOS", "40"))
    duration = float(os.environ.get("CHAOS_DURATION", "25"))
    keep = os.environ.get("CHAOS_KEEP", "") not in ("", "0")
    # A SIGKILLed daemon drops its calls mid-request; the simulator's server logs each one.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    results = run(seed, count, duration, keep)
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
