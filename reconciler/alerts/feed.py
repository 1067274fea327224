"""Turns what the daemon sees into alerts: it decides what is an alert and when it clears.

The daemon calls one method per kind of news, with plain values (names, phases, reasons);
the feed raises and resolves alerts in the :class:`~reconciler.alerts.center.AlertCenter`.
Conditions (a refused image, an unreachable device, an exposure, a full store) are raised
when they appear or change and resolved when they clear, never again on each pass: a pass
that changes nothing changes no alert, so the status branch gets no heartbeat commits.

Events and their alerts (``event`` names, what resolves them):

- ``rollout-started`` (info): a policy's first device transition of a run; its run ending.
- ``wave-passed`` (info): a wave of the run passed; the run ending.
- ``rollout-halted`` (critical): a run ended halted; a later run that does not halt.
- ``rollout-completed`` (info): every device of the policy is done; the next run starting.
- ``device-failed`` (critical) and ``device-rolled-back`` (warning): a device transition to
  ``failed`` or ``rollback``; the device reaching ``done``.
- ``revision-refused`` (critical): a desired revision was refused; a revision applied.
- ``image-refused`` (critical): an image failed verification; the image verifying.
- ``cve-exposure`` (by severity): an advisory newly affects a device; no device exposed.
- ``device-unreachable`` (warning): unreachable for longer than ``unreachable_after``; an
  observation that reaches it.
- ``store-capacity`` (warning): the image store's file system is fuller than the threshold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import get_args

from reconciler.alerts.center import AlertCenter
from reconciler.alerts.model import Severity
from reconciler.model.kinds import AlertEvent

__all__ = ["EVENTS", "AlertFeed", "FeedSettings"]

EVENTS: tuple[str, ...] = get_args(AlertEvent)
"""Every event type an alert may have (NotificationPolicy filters name these)."""

_STORE = "image-store"
_LISTED = 5  # devices named in an exposure message; the rest are counted


@dataclass(frozen=True, slots=True)
class FeedSettings:
    """Thresholds of the condition alerts."""

    unreachable_after: timedelta = timedelta(minutes=10)
    store_percent: float = 85.0


class AlertFeed:
    """Raises and resolves alerts from the daemon's news."""

    def __init__(self, center: AlertCenter, settings: FeedSettings | None = None) -> None:
        self.center = center
        self.settings = settings or FeedSettings()
        self.sites: dict[str, str] = {}
        """Device -> site, from the desired state in force (alerts carry the site)."""
        self.waves: dict[str, int] = {}
        """Device -> its wave in the plan in force (0 is the canary)."""
        self.wave_labels: dict[str, dict[int, str]] = {}
        """Policy -> wave number -> its label in the plan (``canary``, ``wave 1``...)."""
        self._running: set[str] = set()
        self._announced: dict[str, set[int]] = {}
        self._unreachable_since: dict[str, datetime] = {}
        self._exposed: dict[str, set[str]] = {}

    # --- rollouts and devices -----------------------------------------------------------

    def transition(
        self, device: str, policy: str, to_phase: str, detail: str = "", target: str = ""
    ) -> None:
        """One device changed phase in ``policy``'s rollout."""
        site = self.sites.get(device)
        if policy not in self._running:
            self._running.add(policy)
            self.center.resolve("rollout-completed", policy)
            self.center.raise_alert(
                "rollout-started",
                policy,
                "info",
                f"rollout {policy} started" + (f" (target {target})" if target else ""),
                policy=policy,
            )
        wave = self.waves.get(device)
        if wave:  # waves run in order: a device of wave w moving means wave w-1 passed
            self._wave_passed(policy, wave - 1)
        why = f": {detail}" if detail else ""
        if to_phase == "failed":
            msg = f"{device} failed in rollout {policy}{why}"
            self.center.raise_alert(
                "device-failed", device, "critical", msg, policy=policy, site=site
            )
        elif to_phase == "rollback":
            msg = f"{device} is rolled back in rollout {policy}{why}"
            self.center.raise_alert(
                "device-rolled-back", device, "warning", msg, policy=policy, site=site
            )
        elif to_phase == "done":
            self.center.resolve("device-failed", device)
            self.center.resolve("device-rolled-back", device)

    def rollout_ended(
        self,
        policy: str,
        *,
        halted: bool,
        reason: str,
        complete: bool,
        waves_passed: Iterable[int],
    ) -> None:
        """One run of ``policy``'s rollout ended (halted, complete, or waiting)."""
        for wave in waves_passed:
            self._wave_passed(policy, wave)
        self._announced.pop(policy, None)
        self._running.discard(policy)
        self.center.resolve("rollout-started", policy)
        self.center.resolve("wave-passed", policy)
        if halted:
            msg = f"rollout {policy} halted: {reason or 'halted'}"
            self._hold("rollout-halted", policy, "critical", msg, policy=policy)
        else:
            self.center.resolve("rollout-halted", policy)
        if complete:
            msg = f"rollout {policy} completed"
            self._hold("rollout-completed", policy, "info", msg, policy=policy)

    def _wave_passed(self, policy: str, wave: int) -> None:
        """Announce a wave once per run: live when the next wave starts, else at the end."""
        seen = self._announced.setdefault(policy, set())
        if wave in seen:
            return
        seen.add(wave)
        labels = self.wave_labels.get(policy, {})
        label = labels.get(wave, f"wave {wave}")
        place = f" ({sorted(labels).index(wave) + 1} of {len(labels)})" if wave in labels else ""
        msg = f"rollout {policy}: {label} passed{place}"
        self.center.raise_alert("wave-passed", policy, "info", msg, policy=policy)

    # --- source and images --------------------------------------------------------------

    def revision_refused(self, revision: str, reason: str) -> None:
        """A desired revision was refused (signature, authority, config, unreadable)."""
        msg = f"revision {revision[:12]} refused: {reason}"
        self._hold("revision-refused", revision, "critical", msg)

    def revision_applied(self) -> None:
        """A desired revision is in force: earlier refusals are behind it."""
        self.center.resolve_all("revision-refused")

    def images_refused(self, refused: Mapping[str, str]) -> None:
        """The images refused now (name -> reason); the others are not."""
        for name, reason in refused.items():
            self._hold("image-refused", name, "critical", f"image {name} refused: {reason}")
        self.center.resolve_all("image-refused", keep=frozenset(refused))

    # --- observations -------------------------------------------------------------------

    def observed(self, reachable: Mapping[str, bool], now: datetime) -> None:
        """An observation of the fleet: device -> answered."""
        limit = self.settings.unreachable_after
        for device, up in reachable.items():
            if up:
                self._unreachable_since.pop(device, None)
                self.center.resolve("device-unreachable", device)
                continue
            since = self._unreachable_since.setdefault(device, now)
            if now - since >= limit:
                minutes = int(limit.total_seconds() // 60)
                msg = f"{device} unreachable for more than {minutes} min"
                self._hold(
                    "device-unreachable", device, "warning", msg, site=self.sites.get(device)
                )
        for device in set(self._unreachable_since) - set(reachable):
            del self._unreachable_since[device]  # left desired state
        self.center.resolve_all("device-unreachable", keep=frozenset(self._unreachable_since))

    def exposures(self, advisories: Mapping[str, Iterable[tuple[str, str]]]) -> None:
        """Device -> (advisory id, severity) pairs that affect what it runs now."""
        now: dict[str, set[str]] = {}
        severity: dict[str, str] = {}
        for device, found in advisories.items():
            for advisory, sev in found:
                now.setdefault(advisory, set()).add(device)
                severity[advisory] = sev
        for advisory, devices in sorted(now.items()):
            if devices - self._exposed.get(advisory, set()):
                names = sorted(devices)
                listed = ", ".join(names[:_LISTED])
                more = f" and {len(names) - _LISTED} more" if len(names) > _LISTED else ""
                level: Severity = (
                    "critical" if severity[advisory] in ("high", "critical") else "warning"
                )
                sev = severity[advisory]
                msg = f"{advisory} ({sev}) affects {len(names)} device(s): {listed}{more}"
                self.center.raise_alert("cve-exposure", advisory, level, msg)
        self._exposed = now
        self.center.resolve_all("cve-exposure", keep=frozenset(now))

    def store_usage(self, percent: float) -> None:
        """How full (0-100) the image store's file system is."""
        limit = self.settings.store_percent
        if percent > limit:
            msg = f"image store file system {percent:.0f}% full (threshold {limit:.0f}%)"
            active = self.center.get("store-capacity", _STORE)
            if active is None or not active.active:
                self.center.raise_alert("store-capacity", _STORE, "warning", msg)
        else:
            self.center.resolve("store-capacity", _STORE)

    def _hold(
        self,
        event: str,
        subject: str,
        severity: Severity,
        message: str,
        *,
        policy: str | None = None,
        site: str | None = None,
    ) -> None:
        """Raise a condition unless it is already active with the same message."""
        old = self.center.get(event, subject)
        if old is not None and old.active and old.message == message:
            return
        self.center.raise_alert(event, subject, severity, message, policy=policy, site=site)
