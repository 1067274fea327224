"""Prometheus metrics of one gitfirm instance, on a registry the instance owns."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Mapping
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from reconciler.model.facts import DeviceFacts
from reconciler.report.writer import WriteResult

__all__ = ["Metrics", "ServedCounts"]

# Fine around one second, where a status commit of a large fleet lands.
_COMMIT_BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5)
_COMMIT_BUCKETS += (0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0)


class ServedCounts(Protocol):
    """What the image server reports; any object with these attributes will do."""

    requests: int
    refused: int
    bytes_served: int


class Metrics:
    """Counters and gauges for ``/metrics``; no module-level registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.passes = Counter(
            "gitfirm_reconcile_passes", "Reconcile passes by result", ["result"], registry=r
        )
        self.transitions = Counter(
            "gitfirm_device_transitions",
            "Device state-machine transitions by rollout and new phase",
            ["rollout", "phase"],
            registry=r,
        )
        self.devices = Gauge(
            "gitfirm_devices", "Devices by reachability", ["reachable"], registry=r
        )
        self.versions = Gauge(
            "gitfirm_devices_by_version", "Devices per running version", ["version"], registry=r
        )
        self.image_requests = Gauge("gitfirm_image_requests", "Image requests served", registry=r)
        self.image_refused = Gauge(
            "gitfirm_image_requests_refused", "Image requests refused", registry=r
        )
        self.image_bytes = Gauge("gitfirm_image_bytes_served", "Image bytes served", registry=r)
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

    def pass_done(self, ok: bool) -> None:
        """Count one reconcile pass."""
        self.passes.labels("success" if ok else "failure").inc()

    def transition(self, rollout: str, phase: str) -> None:
        """Count one device transition."""
        self.transitions.labels(rollout, phase).inc()

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

    def render(self, served: ServedCounts) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        self.image_requests.set(served.requests)
        self.image_refused.set(served.refused)
        self.image_bytes.set(served.bytes_served)
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
