"""The alert centre: every alert raised, with first seen, last seen and count.

One alert per key (``event/subject``): raising it again while active bumps ``count`` and
``last_seen``; raising it after it was resolved makes it active again (a new occurrence,
``count`` still grows). Resolved alerts are kept for the record, newest first, up to a cap.

The centre persists itself to one JSON file in the state dir after every change, so a restart
neither forgets an active alert nor raises it as new (which would notify again). Listeners
(the notifier) are called with each raise and each resolve; a listener never fails a caller.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, cast

from reconciler.alerts.model import Alert, Severity
from reconciler.clock import Clock

__all__ = ["AlertCenter", "Change"]

log = logging.getLogger("gitfirm.alerts")

Change = Literal["raised", "resolved"]
"""What happened to an alert, for listeners."""
Listener = Callable[[Alert, Change], None]

_KEEP_RESOLVED = 200
_SEVERITIES = ("info", "warning", "critical")


class AlertCenter:
    """Active and resolved alerts, keyed by ``event/subject``."""

    def __init__(self, path: Path | None, clock: Clock, *, keep_resolved: int = _KEEP_RESOLVED):
        self._path = path
        self._clock = clock
        self._keep = keep_resolved
        self._alerts: dict[str, Alert] = {}
        self._listed: tuple[Alert, ...] | None = None
        """The last answer of :meth:`alerts`, the same object until a change (the status
        writer renders ``alerts.yaml`` again only for a new one)."""
        self.listeners: list[Listener] = []
        """Called with every raise (also a repeat) and every resolve."""
        if path is not None and path.exists():
            self._alerts = _load(path)

    def raise_alert(
        self,
        event: str,
        subject: str,
        severity: Severity,
        message: str,
        *,
        policy: str | None = None,
        site: str | None = None,
    ) -> Alert:
        """Raise (or raise again) the alert ``event/subject``; returns it as now stored."""
        now = self._clock.now()
        key = f"{event}/{subject}"
        old = self._alerts.get(key)
        if old is None:
            alert = Alert(event, subject, severity, message, now, now, 1, policy, site)
        else:
            alert = replace(
                old,
                severity=severity,
                message=message,
                last_seen=now,
                count=old.count + 1,
                policy=policy,
                site=site,
                resolved_at=None,
            )
        self._alerts[key] = alert
        self._changed(alert, "raised")
        return alert

    def resolve(self, event: str, subject: str) -> Alert | None:
        """Resolve the active alert ``event/subject``; None when there is none."""
        key = f"{event}/{subject}"
        old = self._alerts.get(key)
        if old is None or not old.active:
            return None
        alert = replace(old, resolved_at=self._clock.now())
        self._alerts[key] = alert
        self._changed(alert, "resolved")
        return alert

    def resolve_all(self, event: str, *, keep: frozenset[str] = frozenset()) -> list[Alert]:
        """Resolve every active ``event`` alert whose subject is not in ``keep``."""
        subjects = [a.subject for a in self.active() if a.event == event and a.subject not in keep]
        return [a for s in subjects if (a := self.resolve(event, s)) is not None]

    def get(self, event: str, subject: str) -> Alert | None:
        """The alert ``event/subject``, active or resolved, if known."""
        return self._alerts.get(f"{event}/{subject}")

    def alerts(self) -> tuple[Alert, ...]:
        """Every alert: active ones first, each group most recently changed first."""
        if self._listed is None:
            ordered = sorted(self._alerts.values(), key=_changed_at, reverse=True)
            listed = [a for a in ordered if a.active] + [a for a in ordered if not a.active]
            self._listed = tuple(listed)
        return self._listed

    def active(self) -> tuple[Alert, ...]:
        """The alerts whose condition still holds."""
        return tuple(a for a in self.alerts() if a.active)

    def _changed(self, alert: Alert, change: Change) -> None:
        self._listed = None
        self._prune()
        self._save()
        for listener in list(self.listeners):
            try:
                listener(alert, change)
            except Exception:  # a listener (the notifier) never fails the daemon's step
                log.exception("alert listener failed", extra={"event": "alert-listener"})

    def _prune(self) -> None:
        resolved = sorted((a for a in self._alerts.values() if not a.active), key=_changed_at)
        for alert in resolved[: max(0, len(resolved) - self._keep)]:
            del self._alerts[alert.key]

    def _save(self) -> None:
        if self._path is None:
            return
        data = json.dumps([_to_json(a) for a in self._alerts.values()], indent=1).encode()
        temp = self._path.with_suffix(".tmp")
        temp.write_bytes(data)
        os.replace(temp, self._path)


def _changed_at(alert: Alert) -> datetime:
    return alert.resolved_at or alert.last_seen


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def _to_json(alert: Alert) -> dict[str, Any]:
    out = asdict(alert)
    for name in ("first_seen", "last_seen", "resolved_at"):
        out[name] = _iso(out[name])
    return out


def _load(path: Path) -> dict[str, Alert]:
    # A damaged file loses the record, never the daemon: alerts are raised again as seen.
    try:
        raw = json.loads(path.read_bytes())
        alerts = [_from_json(item) for item in raw]
    except (OSError, ValueError, TypeError, KeyError) as exc:
        log.warning(
            "alert record %s unreadable (%s): starting empty",
            path,
            type(exc).__name__,
            extra={"event": "alerts-unreadable"},
        )
        return {}
    return {a.key: a for a in sorted(alerts, key=_changed_at)}


def _from_json(item: dict[str, Any]) -> Alert:
    severity = item["severity"]
    if severity not in _SEVERITIES:
        raise ValueError(f"unknown severity {severity!r}")
    resolved = item.get("resolved_at")
    return Alert(
        event=str(item["event"]),
        subject=str(item["subject"]),
        severity=cast(Severity, severity),
        message=str(item["message"]),
        first_seen=datetime.fromisoformat(item["first_seen"]),
        last_seen=datetime.fromisoformat(item["last_seen"]),
        count=int(item["count"]),
        policy=item.get("policy"),
        site=item.get("site"),
        resolved_at=None if resolved is None else datetime.fromisoformat(resolved),
    )
