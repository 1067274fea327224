"""Rollout statistics as plain data: success rates, time per phase, rollbacks, halts.

Pure: the caller reads the journal and the status branch and passes plain values in.

- A device's *outcome* is each transition to ``done`` (success) or ``failed``; the success
  rate per image (the target version), policy and platform is done / (done + failed).
- The *time in a phase* is from a device's transition into it to its next transition in the
  same policy; a phase still running is not counted. Median and p95 (nearest rank).
- A *rollback* is each transition to ``rollback``.
- *Exposure over time*: per day, from the newest ``compliance.yaml`` of that day on the status
  branch: devices exposed to at least one advisory, distinct advisories, non-compliant devices.
- The image store's *forecast*: bytes stored per day over the last 30 days (from when each
  image still in the store was stored), and the days its free space lasts at that rate.
"""

from __future__ import annotations

import itertools
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

__all__ = [
    "ExposurePoint",
    "HistoryReport",
    "PhaseTime",
    "Rate",
    "Step",
    "StoreForecast",
    "build_report",
    "exposure_over_time",
    "percentile",
    "store_forecast",
]

DIMENSIONS = ("image", "policy", "platform")


@dataclass(frozen=True, slots=True)
class Step:
    """One journalled device transition."""

    device: str
    policy: str
    from_phase: str
    to_phase: str
    at: datetime
    target: str = ""
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Rate:
    """Outcomes of one image, policy or platform."""

    key: str
    done: int
    failed: int

    @property
    def rate(self) -> float | None:
        """Success rate in 0..1; None without any outcome."""
        total = self.done + self.failed
        return self.done / total if total else None


@dataclass(frozen=True, slots=True)
class PhaseTime:
    """Seconds devices spent in one phase."""

    phase: str
    count: int
    median: float
    p95: float


@dataclass(frozen=True, slots=True)
class ExposurePoint:
    """CVE exposure of the fleet on one day."""

    day: str
    exposed: int
    """Devices exposed to at least one advisory."""
    advisories: int
    """Distinct advisories the fleet is exposed to."""
    noncompliant: int


def exposure_over_time(
    history: Iterable[tuple[datetime, Sequence[Mapping[str, Any]]]],
) -> list[ExposurePoint]:
    """One point per ``(time, compliance documents)`` (one document per shard); a document
    of the wrong shape counts as empty (the status branch is not trusted)."""
    points = []
    for when, docs in history:
        exposed = noncompliant = 0
        advisories: set[str] = set()
        for doc in docs:
            devices = doc.get("devices")
            for verdict in devices.values() if isinstance(devices, Mapping) else ():
                if not isinstance(verdict, Mapping):
                    continue
                found = verdict.get("exposures")
                ids = {str(x.get("id")) for x in found or () if isinstance(x, Mapping)}
                exposed += bool(ids)
                advisories |= ids
                noncompliant += verdict.get("compliant") is False
        points.append(
            ExposurePoint(when.date().isoformat(), exposed, len(advisories), noncompliant)
        )
    return points


@dataclass(frozen=True, slots=True)
class StoreForecast:
    """How fast the image store grows, and how long its free space lasts at that rate."""

    used: int
    free: int
    per_day: float
    """Bytes stored per day over the window."""
    days_left: int | None
    """Days until the file system is full; None when nothing was stored in the window."""
    window_days: int = 30


def store_forecast(
    stored: Iterable[tuple[datetime, int]], used: int, free: int, now: datetime, days: int = 30
) -> StoreForecast:
    """The forecast from ``stored`` (when each stored image was stored, its size)."""
    since = now - timedelta(days=days)
    per_day = sum(size for at, size in stored if at >= since) / days
    days_left = round(free / per_day) if per_day else None
    return StoreForecast(used, free, per_day, days_left, days)


@dataclass(frozen=True, slots=True)
class HistoryReport:
    """Everything ``gitfirm report`` prints."""

    since: datetime | None
    first: datetime | None
    last: datetime | None
    events: int
    rates: dict[str, list[Rate]] = field(default_factory=dict)
    """``image``, ``policy`` and ``platform`` -> one row per key, sorted."""
    phases: list[PhaseTime] = field(default_factory=list)
    rollbacks: list[Step] = field(default_factory=list)
    halted: dict[str, str] = field(default_factory=dict)
    """Policy -> halt reason, from the newest status commit."""
    store: StoreForecast | None = None
    """The image store's growth, when the state dir has a store."""
    exposure: list[ExposurePoint] = field(default_factory=list)
    """CVE exposure per day, oldest first (with the status branch)."""

    @property
    def done(self) -> int:
        """Successful device upgrades."""
        return sum(r.done for r in self.rates.get("policy", []))

    @property
    def failed(self) -> int:
        """Failed device upgrades."""
        return sum(r.failed for r in self.rates.get("policy", []))


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0-100) of ``values`` (not empty)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def build_report(
    steps: Iterable[Step],
    *,
    platforms: Mapping[str, str] | None = None,
    halted: Mapping[str, str] | None = None,
    since: datetime | None = None,
    store: StoreForecast | None = None,
    exposure: Sequence[ExposurePoint] = (),
) -> HistoryReport:
    """The statistics of ``steps`` (oldest first); ``platforms`` maps device -> platform."""
    steps = sorted(steps, key=lambda s: s.at)
    platform_of = platforms or {}
    outcomes: dict[str, Counter[tuple[str, str]]] = {d: Counter() for d in DIMENSIONS}
    for s in steps:
        if s.to_phase not in ("done", "failed"):
            continue
        keys = (s.target or "unknown", s.policy, platform_of.get(s.device, "unknown"))
        for dimension, key in zip(DIMENSIONS, keys, strict=True):
            outcomes[dimension][(key, s.to_phase)] += 1
    rates = {
        dimension: [
            Rate(key, tally[(key, "done")], tally[(key, "failed")])
            for key in sorted({k for k, _ in tally})
        ]
        for dimension, tally in outcomes.items()
    }
    per_device: dict[tuple[str, str], list[Step]] = defaultdict(list)
    for s in steps:
        per_device[(s.policy, s.device)].append(s)
    spent: dict[str, list[float]] = defaultdict(list)
    for seq in per_device.values():
        for here, after in itertools.pairwise(seq):
            spent[here.to_phase].append(max(0.0, (after.at - here.at).total_seconds()))
    phases = [
        PhaseTime(phase, len(v), statistics.median(v), percentile(v, 95))
        for phase, v in sorted(spent.items())
    ]
    return HistoryReport(
        since=since,
        first=steps[0].at if steps else None,
        last=steps[-1].at if steps else None,
        events=len(steps),
        rates=rates,
        phases=phases,
        rollbacks=[s for s in steps if s.to_phase == "rollback"],
        halted=dict(sorted((halted or {}).items())),
        store=store,
        exposure=[p for p in exposure if since is None or p.day >= since.date().isoformat()],
    )
