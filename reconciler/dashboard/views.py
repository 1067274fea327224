"""Page models: a :class:`~reconciler.dashboard.board.Board` turned into what each template
shows. Pure functions of plain data; no I/O, no clock but the board's ``now``."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reconciler.dashboard.board import Board, ImageRow
from reconciler.dashboard.charts import bar_chart
from reconciler.history.stats import Step, build_report, store_forecast
from reconciler.report.snapshot import DeviceStatus
from reconciler.rollout.model import Transition

__all__ = [
    "FLEET_ROWS",
    "Filters",
    "alerts_view",
    "device_view",
    "fleet_view",
    "fmt_time",
    "history_view",
    "images_view",
    "live_summary",
    "rollouts_view",
    "source_view",
]

FLEET_ROWS = 500
"""Device rows on the fleet page; a bigger fleet is narrowed with the filters."""

_DONE = frozenset({"done"})
_FAILED = frozenset({"failed", "rollback", "verify-rollback"})
_IDLE = frozenset({"pending", "skipped"})
_SEVERITY = {"critical": 0, "warning": 1, "info": 2}


@dataclass(frozen=True, slots=True)
class Filters:
    """The fleet page's filters (empty string: any)."""

    site: str = ""
    policy: str = ""
    label: str = ""
    """``key=value``; matched against the device's labels."""

    @property
    def active(self) -> bool:
        """Whether any filter narrows the fleet."""
        return bool(self.site or self.policy or self.label)


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """One line of the fleet table."""

    name: str
    site: str
    labels: Mapping[str, str]
    version: str | None
    reachable: bool | None
    target: str | None
    phase: str
    policy: str | None
    compliant: bool | None
    exposures: int
    error: str | None

    @property
    def running(self) -> str:
        """The version, or why there is none."""
        if self.reachable is None:
            return "never observed"
        if not self.reachable:
            return "unreachable"
        return self.version or "unknown"


def _rows(board: Board) -> list[DeviceRow]:
    desired = board.desired
    verdicts = {v.device: v for v in board.snapshot.compliance}
    rows = []
    for d in board.snapshot.devices:
        doc = desired.devices.get(d.name) if desired else None
        verdict = verdicts.get(d.name)
        facts = d.facts
        rows.append(
            DeviceRow(
                name=d.name,
                site=doc.spec.site if doc else "",
                labels=dict(doc.metadata.labels) if doc else {},
                version=facts.version if facts else None,
                reachable=facts.reachable if facts else None,
                target=d.target_version,
                phase=d.phase,
                policy=d.rollout,
                compliant=verdict.compliant if verdict else None,
                exposures=len(verdict.exposures) if verdict else 0,
                error=d.last_error or (facts.error if facts and not facts.reachable else None),
            )
        )
    return rows


def _matches(row: DeviceRow, f: Filters) -> bool:
    if f.site and row.site != f.site:
        return False
    if f.policy and (row.policy or "") != f.policy:
        return False
    if f.label:
        key, _, value = f.label.partition("=")
        if row.labels.get(key) != value:
            return False
    return True


def fleet_view(board: Board, filters: Filters) -> dict[str, Any]:
    """Versions, reachability, compliance and CVE exposure of the (filtered) fleet."""
    every = _rows(board)
    rows = [r for r in every if _matches(r, filters)]
    versions = Counter(r.running for r in rows)
    version_chart = bar_chart(
        "Running versions",
        (
            (v, n, "bad" if v in ("unreachable", "never observed") else "info")
            for v, n in sorted(versions.items())
        ),
    )
    reach = Counter(
        "never observed" if r.reachable is None else "reachable" if r.reachable else "unreachable"
        for r in rows
    )
    verdicts = {v.device: v for v in board.snapshot.compliance}
    exposure: dict[str, tuple[str, set[str]]] = {}
    for r in rows:
        verdict = verdicts.get(r.name)
        for x in verdict.exposures if verdict else ():
            exposure.setdefault(x.id, (x.severity, set()))[1].add(r.name)
    cves = sorted(
        ((cve, sev, sorted(names)) for cve, (sev, names) in exposure.items()),
        key=lambda c: (-len(c[2]), c[0]),
    )
    return {
        "rows": rows[:FLEET_ROWS],
        "total": len(rows),
        "fleet_total": len(every),
        "filters": filters,
        "sites": sorted({r.site for r in every if r.site}),
        "policies": sorted({r.policy for r in every if r.policy}),
        "labels": sorted({f"{k}={v}" for r in every for k, v in r.labels.items()}),
        "versions": version_chart,
        "reachability": [(k, reach[k]) for k in ("reachable", "unreachable", "never observed")],
        "compliant": sum(1 for r in rows if r.compliant is True),
        "noncompliant": sum(1 for r in rows if r.compliant is False),
        "cves": cves,
        "unreachable": [r for r in rows if r.reachable is False][:50],
    }


@dataclass(frozen=True, slots=True)
class WaveView:
    """One wave's progress."""

    label: str
    devices: tuple[tuple[str, str], ...]
    done: int
    failed: int
    moving: int

    @property
    def total(self) -> int:
        """Devices in the wave."""
        return len(self.devices)


@dataclass(frozen=True, slots=True)
class RolloutView:
    """One policy's rollout."""

    policy: str
    target: str | None
    state: str
    halt_reason: str | None
    waiting: str | None
    window: Any
    waves: tuple[WaveView, ...]
    current_wave: int | None
    done: int
    total: int
    events: tuple[Any, ...]
    resume: Mapping[str, str] | None = field(default=None)


def _resume(board: Board, policy: str) -> dict[str, str]:
    """The exact change that resumes a halted rollout: a new ``spec.retryToken``."""
    desired = board.desired
    where = desired.location("RolloutPolicy", policy) if desired else None
    file = where.file if where else f"<the file declaring RolloutPolicy {policy}>"
    token = f"resume-{board.now:%Y%m%dT%H%M}"
    rollouts = desired.rollout_policies if desired else {}
    old = rollouts[policy].spec.retryToken if policy in rollouts else None
    branch = board.source.branch
    return {
        "file": file,
        "token": token,
        "old": old or "(unset)",
        "command": (
            f"# in {file}, under 'name: {policy}': set spec.retryToken: {token}\n"
            f"git commit -S -m 'Resume rollout {policy}' -- {file}\n"
            f"git push origin HEAD:{branch}"
        ),
    }


def rollouts_view(board: Board) -> dict[str, Any]:
    """Every policy's waves, devices, window and halt."""
    plan = board.plan
    if plan is None:
        return {"rollouts": []}
    statuses = {r.policy: r for r in board.snapshot.rollouts}
    out = []
    for planned in plan.policies:
        status = statuses.get(planned.name)
        phases = dict(status.device_phases) if status else {}
        waves = []
        for wave in planned.waves:
            devices = tuple((n, phases.get(n, "pending")) for n in wave.devices)
            waves.append(
                WaveView(
                    wave.label,
                    devices,
                    done=sum(1 for _, p in devices if p in _DONE),
                    failed=sum(1 for _, p in devices if p in _FAILED),
                    moving=sum(1 for _, p in devices if p not in _DONE | _FAILED | _IDLE),
                )
            )
        halted = status.halted if status else planned.halted
        state = "halted" if halted else "suspended" if planned.suspended else "active"
        if not halted and not planned.suspended and not planned.window.allowed:
            state = "waiting for window"
        out.append(
            RolloutView(
                policy=planned.name,
                target=status.target_version if status else planned.target,
                state=state,
                halt_reason=(status.halt_reason if status else planned.halt_reason),
                waiting=status.waiting_reason if status else None,
                window=planned.window,
                waves=tuple(waves),
                current_wave=status.current_wave if status else None,
                done=sum(w.done for w in waves),
                total=sum(w.total for w in waves),
                events=tuple(reversed(status.events[-15:])) if status else (),
                resume=_resume(board, planned.name) if halted else None,
            )
        )
    return {"rollouts": out}


def live_summary(board: Board) -> dict[str, Any]:
    """What a live update announces: the state version and each rollout's progress."""
    rollouts = {}
    for r in board.snapshot.rollouts:
        counts = r.counts
        rollouts[r.policy] = {
            "done": counts.get("done", 0),
            "total": len(r.device_phases),
            "halted": r.halted,
            "phases": counts,
        }
    return {"version": board.version, "rollouts": rollouts}


@dataclass(frozen=True, slots=True)
class ImageUse:
    """An image and the devices that run, have staged, or are headed for it."""

    image: ImageRow
    running: tuple[str, ...]
    staged: tuple[str, ...]
    targeted: tuple[str, ...]


def images_view(board: Board) -> dict[str, Any]:
    """The image store by channel, with each image's devices and the store's capacity."""
    running: dict[str, list[str]] = defaultdict(list)
    staged: dict[str, list[str]] = defaultdict(list)
    for d in board.snapshot.devices:
        facts = d.facts
        if facts is None or not facts.reachable:
            continue
        if facts.version:
            running[facts.version].append(d.name)
        for installed in facts.images:
            if not installed.running:
                staged[installed.name].append(d.name)
    targeted: dict[str, list[str]] = defaultdict(list)
    for d in board.snapshot.devices:
        if d.desired_image and (d.facts is None or d.facts.version != d.target_version):
            targeted[d.desired_image].append(d.name)
    channels: dict[str, list[ImageUse]] = defaultdict(list)
    for image in board.images:
        channels[image.channel].append(
            ImageUse(
                image,
                tuple(running.get(image.version, ())),
                tuple(staged.get(image.version, ())),
                tuple(targeted.get(image.name, ())),
            )
        )
    cap = board.capacity
    total = cap.used + cap.free
    return {
        **_growth(board),
        "channels": sorted(channels.items()),
        "capacity": cap,
        "used_percent": round(100 * cap.used / total, 1) if total else 0.0,
        "channel_chart": bar_chart(
            "Store bytes per channel (MiB)",
            ((ch, round(n / 2**20), "info") for ch, n in cap.per_channel.items()),
        ),
    }


def _growth(board: Board) -> dict[str, Any]:
    """Store growth from when each image still in the store was stored, and how long the
    free space lasts at the last 30 days' rate."""
    stored = sorted((i.stored_at, i.size) for i in board.images if i.stored_at)
    per_day: Counter[str] = Counter()
    for at, size in stored:
        per_day[at[:10]] += size
    total, rows = 0, []
    for day, added in sorted(per_day.items()):
        total += added
        rows.append((day, added, total))
    cap = board.capacity
    forecast = store_forecast(
        ((datetime.fromisoformat(at), size) for at, size in stored), cap.used, cap.free, board.now
    )
    return {
        "growth": rows[-30:],
        "growth_chart": bar_chart(
            "Store MiB by day stored (cumulative)",
            ((day, round(cum / 2**20), "info") for day, _, cum in rows[-14:]),
        ),
        "rate_per_day": forecast.per_day,
        "days_left": forecast.days_left,
    }


def _rate(ok: int, bad: int) -> str:
    return f"{100 * ok / (ok + bad):.0f}%" if ok + bad else "-"


def history_view(board: Board) -> dict[str, Any]:
    """Success rates per image, policy and platform; time per phase; rollbacks (the same
    statistics as ``gitfirm report``, from the journal the board carries)."""
    steps = [
        Step(t.device, t.policy, t.from_phase, t.to_phase, t.time, t.target, t.detail)
        for t in board.history
    ]
    platforms = {d.name: d.platform for d in board.plan.devices} if board.plan else {}
    report = build_report(steps, platforms=platforms)
    rates = {
        dimension: [(r.key, r.done, r.failed, _rate(r.done, r.failed)) for r in rows]
        for dimension, rows in report.rates.items()
    }
    phases = [(p.phase, p.count, p.median, p.p95) for p in report.phases]
    return {
        "rates": rates,
        "phases": phases,
        "phase_chart": bar_chart(
            "Median seconds per phase", ((p, round(m), "info") for p, _, m, _ in phases)
        ),
        "rollbacks": list(reversed(report.rollbacks))[:50],
        "rollback_count": len(report.rollbacks),
        "done": report.done,
        "failed": report.failed,
        "overall": _rate(report.done, report.failed),
        "events": report.events,
    }


def alerts_view(board: Board) -> dict[str, Any]:
    """Active alerts (worst and newest first) and resolved ones (newest first)."""
    active = sorted(
        (a for a in board.alerts if a.active),
        key=lambda a: (_SEVERITY.get(a.severity, 3), -a.last_seen.timestamp()),
    )
    resolved = sorted(
        (a for a in board.alerts if not a.active),
        key=lambda a: a.resolved_at or a.last_seen,
        reverse=True,
    )
    return {"active": active, "resolved": resolved[:200]}


def source_view(board: Board) -> dict[str, Any]:
    """The applied revision and signer, refused revisions and refused images."""
    images = [(i.name, i.refused) for i in board.images if i.refused]
    return {
        "source": board.source,
        "refusals": list(reversed(board.snapshot.refusals)),
        "refused_images": images,
    }


def _timeline(history: Iterable[Transition], name: str) -> list[Transition]:
    return list(reversed([t for t in history if t.device == name]))[:100]


def device_view(board: Board, name: str, backups: Sequence[Any]) -> dict[str, Any] | None:
    """One device; ``None`` when it is not in the desired state."""
    status: DeviceStatus | None = next((d for d in board.snapshot.devices if d.name == name), None)
    if status is None:
        return None
    doc = board.desired.devices.get(name) if board.desired else None
    planned = board.plan.device(name) if board.plan else None
    verdict = next((v for v in board.snapshot.compliance if v.device == name), None)
    return {
        "status": status,
        "facts": status.facts,
        "doc": doc,
        "planned": planned,
        "verdict": verdict,
        "timeline": _timeline(board.history, name),
        "backups": backups,
    }


def fmt_time(value: datetime | None) -> str:
    """A timestamp as the dashboard prints it (UTC, to the second)."""
    if value is None:
        return "-"
    return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
