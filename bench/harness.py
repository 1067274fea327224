"""What every bench shares: JSON lines, loud failure, repeated runs and their min/median/max.

A bench prints one JSON object per run (``"run": 1..RUNS``), then, per figure set, three
lines with ``"stat": "min" | "median" | "max"``. Work that did not complete (an unreachable
device, an unfinished rollout, a failed download) is not a figure: :func:`fail` prints
one ``error:`` line on stderr and exits non-zero.
"""

from __future__ import annotations

import json
import resource
import socket
import statistics
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

__all__ = ["RUNS", "emit", "fail", "free_port", "rss_mb", "summarize"]

RUNS = 3
"""Runs per bench; the summary lines give their min, median and max."""


def emit(record: Mapping[str, Any]) -> None:
    """Print one JSON line at once (a long bench shows progress)."""
    print(json.dumps(dict(record)), flush=True)


def fail(message: str) -> NoReturn:
    """Stop the bench: its work is incomplete, so its figures would mean nothing."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def rss_mb() -> float:
    """This process's peak resident set size, in MB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def summarize(
    runs: Sequence[Mapping[str, Any]], figures: Sequence[str], **fixed: Any
) -> list[dict[str, Any]]:
    """Min, median and max of each of ``figures`` over ``runs``, as three records that also
    carry ``fixed`` (the bench name, its size, any setting that is not a default)."""
    out = []
    for stat, pick in (("min", min), ("median", statistics.median), ("max", max)):
        values = {f: pick(r[f] for r in runs) for f in figures}
        out.append({**fixed, "stat": stat, "runs": len(runs), **values})
    return out
