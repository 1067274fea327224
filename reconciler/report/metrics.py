"""Prometheus metrics of one gitfirm instance, on a registry the instance owns.

Operators alert on these, so every label value is there from the start (a ``failure`` series
at 0 before the first failure), running totals are counters named ``*_total``, and no label
names a device (a fleet of thousands would make thousands of series).
"""

from __future__ import annotations

import platform
from collections import Counter as Tally
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, get_args

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from reconciler.forge.http import FORGE_RESULTS
from reconciler.model.facts import DeviceFacts
from reconciler.model.kinds import AlertEvent
from reconciler.planning.progress import Phase
from reconciler.report.snapshot import StatusSnapshot
from reconciler.report.writer import WriteResult

__all__ = [
    "ROLLOUT_PHASES",
    "ROLLOUT_RESULTS",
    "WEBHOOK_RESULTS",
    "Metrics",
    "ServedCounts",
    "rollout_phase",
]

# Fine around one second, where a status commit of a large fleet lands.
_COMMIT_BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5)
_COMMIT_BUCKETS += (0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0)
# A pass: milliseconds idle, minutes when a big fleet is observed and planned.
_PASS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# A device step: a second for a precheck, many minutes for a stage or a boot.
_STEP_BUCKETS = (0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0)
# A rollout: minutes for a lab, days for a paced fleet.
_ROLLOUT_BUCKETS = (60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0, 604800.0)

WEBHOOK_RESULTS = ("accepted", "rejected", "rate_limited", "too_large", "not_configured")
"""How a webhook delivery ended (``gitfirm_webhooks_received_total{result}``)."""
ROLLOUT_RESULTS = ("complete", "halted", "suspended", "incomplete")
"""How a rollout run ended (``gitfirm_rollout_duration_seconds{result}``)."""
ROLLOUT_PHASES = ("pending", "progressing", "complete", "halted", "suspended")
"""A rollout's phase in ``gitfirm_rollout_info``."""
_FORGES = ("github", "gitlab", "gitea")
_SETTLED = {Phase.DONE, Phase.SKIPPED}


class ServedCounts(Protocol):
    """What the image server reports; any object with these attributes will do."""

    requests: int
    refused: int
    bytes_served: int


def rollout_phase(halted: bool, suspended: bool, phases: Mapping[str, str]) -> str:
    """One word for where a rollout stands (halted and suspended win over progress)."""
    if halted:
        return "halted"
    if suspended:
        return "suspended"
    if phases and all(p in _SETTLED for p in phases.values()):
        return "complete"
    if any(p != Phase.PENDING for p in phases.values()):
        return "progressing"
    return "pending"


@dataclass
class _Live:
    """Values read when ``/metrics`` is scraped rather than pushed by the stages."""

    served: ServedCounts | None = None
    fetch_failures: int = 0
    snapshot: StatusSnapshot | None = None


class _Scraped(Collector):
    """Counters and state gauges built from :class:`_Live` at each scrape."""

    def __init__(self, live: _Live) -> None:
        self.live = live

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        live = self.live
        served = live.served
        counts = (served.requests, served.refused, served.bytes_served) if served else (0, 0, 0)
        yield CounterMetricFamily("gitfirm_image_requests", "Image requests served", counts[0])
        yield CounterMetricFamily(
            "gitfirm_image_requests_refused", "Image requests refused", counts[1]
        )
        yield CounterMetricFamily("gitfirm_image_bytes_served", "Image bytes served", counts[2])
        yield CounterMetricFamily(
            "gitfirm_git_fetch_failures",
            "Failed fetches of the config repository",
            live.fetch_failures,
        )
        yield from _state_gauges(live.snapshot)


def _state_gauges(snap: StatusSnapshot | None) -> Iterator[GaugeMetricFamily]:
    info = GaugeMetricFamily(
        "gitfirm_rollout_info",
        "One series per RolloutPolicy at the desired revision, value 1",
        labels=["policy", "phase", "halted", "suspended"],
    )
    by_phase = GaugeMetricFamily(
        "gitfirm_devices_by_phase", "Devices per upgrade phase", labels=["phase"]
    )
    counts: Tally[str] = Tally({str(p): 0 for p in Phase})
    if snap is not None:
        counts.update(d.phase for d in snap.devices)
        for r in snap.rollouts:
            phase = rollout_phase(r.halted, r.suspended, r.device_phases)
            flags = [str(r.halted).lower(), str(r.suspended).lower()]
            info.add_metric([r.policy, phase, *flags], 1)
    for phase, n in sorted(counts.items()):
        by_phase.add_metric([phase], n)
    yield info
    yield by_phase


class Metrics:
    """Counters, histograms and gauges for ``/metrics``; no module-level registry."""

    def __init__(self, version: str = "") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)
        self._live = _Live()
        r.register(_Scraped(self._live))
        build = Gauge(
            "gitfirm_build_info", "The running gitfirm, value 1", ["version", "python"], registry=r
        )
        build.labels(version, platform.python_version()).set(1)
        self.passes = Counter(
            "gitfirm_reconcile_passes", "Reconcile passes by result", ["result"], registry=r
        )
        self.pass_seconds = Histogram(
            "gitfirm_reconcile_pass_seconds",
            "Duration of each reconcile pass",
            buckets=_PASS_BUCKETS,
            registry=r,
        )
        self.last_success = Gauge(
            "gitfirm_last_successful_pass_timestamp_seconds",
            "Unix time of the last reconcile pass that succeeded (0: none yet)",
            registry=r,
        )
        self.applied = Gauge(
            "gitfirm_applied_revision_timestamp_seconds",
            "Commit time of the desired revision in force (0: none yet)",
            registry=r,
        )
        self.refused = Counter("gitfirm_revisions_refused", "Desired revisions refused", registry=r)
        self.webhooks = Counter(
            "gitfirm_webhooks_received",
            "Webhook deliveries by forge and result",
            ["forge", "result"],
            registry=r,
        )
        self.forge_requests = Counter(
            "gitfirm_forge_requests",
            "Requests to the forge API (statuses, comments, pull requests) by forge and result",
            ["forge", "result"],
            registry=r,
        )
        self.transitions = Counter(
            "gitfirm_device_transitions",
            "Device state-machine transitions by rollout and new phase",
            ["rollout", "phase"],
            registry=r,
        )
        self.step_seconds = Histogram(
            "gitfirm_device_step_seconds",
            "Time a device spent in a phase before its next transition",
            ["phase"],
            buckets=_STEP_BUCKETS,
            registry=r,
        )
        self.rollout_seconds = Histogram(
            "gitfirm_rollout_duration_seconds",
            "From a rollout's first device transition to the end of its run",
            ["result"],
            buckets=_ROLLOUT_BUCKETS,
            registry=r,
        )
        self.devices = Gauge(
            "gitfirm_devices", "Devices by reachability", ["reachable"], registry=r
        )
        self.versions = Gauge(
            "gitfirm_devices_by_version", "Devices per running version", ["version"], registry=r
        )
        self.loop_lag = Histogram(
            "gitfirm_event_loop_lag_seconds",
            "How late the event loop woke the loop-lag probe (time it was blocked)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=r,
        )
        self.loop_block_max = Gauge(
            "gitfirm_event_loop_block_max_seconds",
            "Longest event-loop block seen since the process started",
            registry=r,
        )
        self._longest_block = 0.0
        self.status_commits = Histogram(
            "gitfirm_status_commit_seconds",
            "Time of each status write that made a commit (render, commit, push)",
            buckets=_COMMIT_BUCKETS,
            registry=r,
        )
        self.notifications = Counter(
            "gitfirm_notifications_sent",
            "Notifications delivered, by alert event",
            ["event"],
            registry=r,
        )
        self.notifications_failed = Counter(
            "gitfirm_notifications_failed",
            "Notifications given up after their retries, by alert event",
            ["event"],
            registry=r,
        )
        self.notifications_dropped = Counter(
            "gitfirm_notifications_dropped",
            "Notifications dropped because the send queue was full",
            registry=r,
        )
        self._entered: dict[str, datetime] = {}
        """Device -> when it entered its phase (memory only: devices are never labels)."""
        self._started: dict[str, datetime] = {}
        """Policy -> its running rollout's first transition."""
        self._initialise()

    def _initialise(self) -> None:
        """Create every labelled series at zero, so alerts see them before the first event."""
        for result in ("success", "failure"):
            self.passes.labels(result)
        for forge in _FORGES:
            for result in WEBHOOK_RESULTS:
                self.webhooks.labels(forge, result)
            for result in FORGE_RESULTS:
                self.forge_requests.labels(forge, result)
        for phase in Phase:
            self.step_seconds.labels(str(phase))
        for result in ROLLOUT_RESULTS:
            self.rollout_seconds.labels(result)
        for reachable in ("true", "false"):
            self.devices.labels(reachable)
        for event in get_args(AlertEvent):
            self.notifications.labels(event)
            self.notifications_failed.labels(event)

    def pass_done(self, ok: bool, seconds: float, now: datetime) -> None:
        """Count and time one reconcile pass ending at ``now``."""
        self.passes.labels("success" if ok else "failure").inc()
        self.pass_seconds.observe(seconds)
        if ok:
            self.last_success.set(now.timestamp())

    def revision_applied(self, committed: datetime) -> None:
        """A desired revision committed at ``committed`` is in force."""
        self.applied.set(committed.timestamp())

    def revision_refused(self) -> None:
        """Count one refused desired revision."""
        self.refused.inc()

    def webhook(self, forge: str, result: str) -> None:
        """Count one webhook delivery."""
        self.webhooks.labels(forge, result).inc()

    def forge_request(self, forge: str, result: str) -> None:
        """Count one forge API request (``success``, ``failure`` or ``rate_limited``)."""
        self.forge_requests.labels(forge, result).inc()

    def transition(
        self, rollout: str, device: str, from_phase: str, to_phase: str, at: datetime
    ) -> None:
        """Count one device transition and time the phase it leaves."""
        self.transitions.labels(rollout, to_phase).inc()
        self._started.setdefault(rollout, at)
        entered = self._entered.get(device)
        if entered is not None:
            self.step_seconds.labels(from_phase).observe(max(0.0, (at - entered).total_seconds()))
        if to_phase in _SETTLED or to_phase == Phase.FAILED:
            self._entered.pop(device, None)
        else:
            self._entered[device] = at

    def rollout_ended(
        self, policy: str, *, halted: bool, suspended: bool, complete: bool, now: datetime
    ) -> None:
        """Time one rollout run that moved at least one device."""
        outcomes = (("halted", halted), ("suspended", suspended), ("complete", complete))
        result = next((word for word, held in outcomes if held), "incomplete")
        started = self._started.pop(policy, None)
        if started is not None:
            self.rollout_seconds.labels(result).observe(max(0.0, (now - started).total_seconds()))

    def notification(self, event: str, result: str) -> None:
        """Count one notification ``sent``, ``failed`` (after its retries) or ``dropped``."""
        if result == "dropped":
            self.notifications_dropped.inc()
        elif result == "sent":
            self.notifications.labels(event).inc()
        else:
            self.notifications_failed.labels(event).inc()

    def loop_blocked(self, seconds: float) -> None:
        """Record one loop-lag probe reading."""
        self.loop_lag.observe(seconds)
        if seconds > self._longest_block:
            self._longest_block = seconds
            self.loop_block_max.set(seconds)

    def status_written(self, result: WriteResult) -> None:
        """Record one status write; writes that found nothing to commit are not counted."""
        if result.commit is not None:
            self.status_commits.observe(result.seconds)

    def observed(self, facts: Mapping[str, DeviceFacts]) -> None:
        """Refresh the fleet gauges from an observation."""
        reachable = sum(1 for f in facts.values() if f.reachable)
        self.devices.labels("true").set(reachable)
        self.devices.labels("false").set(len(facts) - reachable)
        self.versions.clear()
        for version, n in Tally(f.version for f in facts.values() if f.version).items():
            self.versions.labels(version).set(n)

    def render(
        self, served: ServedCounts, snapshot: StatusSnapshot, fetch_failures: int
    ) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        self._live.served = served
        self._live.snapshot = snapshot
        self._live.fetch_failures = fetch_failures
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
