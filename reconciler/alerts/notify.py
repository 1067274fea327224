"""Notifications: the alert centre's changes, filtered per NotificationPolicy, sent with Apprise.

The centre calls :meth:`Notifier.alert_changed` in the daemon's step that raised the alert;
it only filters, de-duplicates and queues, so a slow or dead target never holds a rollout
up. The queue is bounded (:data:`QUEUE_SIZE`): when it is full the oldest notice is dropped
and counted. :meth:`Notifier.run`, a supervised loop, sends one notice at a time with
Apprise in its own thread (Apprise blocks on sockets), retries a failure with backoff, logs
each failure with the target's name (never its URL, which holds secrets), and counts what
was sent, what failed for good and what was dropped.

A target's URL is built when a policy is applied: ``{placeholder}`` parts are replaced by
secrets read from ``NOTIFY_SECRET_*`` environment variables. The built URL lives in memory
only; every secret value is handed to the daemon's sanitizer.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

from reconciler.alerts.center import Change
from reconciler.alerts.model import Alert
from reconciler.clock import Clock
from reconciler.errors import ConfigError
from reconciler.model.kinds import NOTIFY_SECRET_PREFIX, NotificationFilter, NotificationPolicy
from reconciler.sanitize import redact
from reconciler.secrets import SecretPolicy, resolve_secret

__all__ = [
    "QUEUE_SIZE",
    "Notice",
    "Notifier",
    "Route",
    "Sender",
    "Target",
    "apprise_send",
    "build_routes",
    "secret_values",
]

log = logging.getLogger("gitfirm.notify")

QUEUE_SIZE = 256
"""Notices waiting to be sent at most; beyond it the oldest is dropped (and counted)."""
_RANK = {"info": 0, "warning": 1, "critical": 2}
_PLACEHOLDER = re.compile(r"\{([A-Za-z][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class Target:
    """One resolved target: its URL holds secrets and is never logged."""

    policy: str
    name: str
    url: str

    def __repr__(self) -> str:  # a traceback or a debug log must not show the URL
        return f"Target({self.policy}/{self.name})"


@dataclass(frozen=True, slots=True)
class Route:
    """One NotificationPolicy, applied: its filter, window and resolved targets."""

    policy: str
    filter: NotificationFilter
    window: timedelta
    send_resolved: bool
    targets: tuple[Target, ...]

    def wants(self, alert: Alert, change: Change) -> bool:
        """Whether this policy sends a notice for ``alert`` now."""
        f = self.filter
        if change == "resolved" and (not self.send_resolved or alert.severity == "info"):
            return False  # an informational event has nothing to clear
        return (
            _RANK[alert.severity] >= _RANK[f.severity]
            and (not f.events or alert.event in f.events)
            and (not f.policies or alert.policy in f.policies)
            and (not f.sites or alert.site in f.sites)
        )


@dataclass(frozen=True, slots=True)
class Notice:
    """One message for one target."""

    target: Target
    event: str
    title: str
    body: str


Sender = Callable[[str, str, str], bool]
"""(url, title, body) -> delivered; may block and may raise."""


def apprise_send(url: str, title: str, body: str) -> bool:
    """Send one notice with Apprise; False when Apprise refused the URL or the delivery."""
    import apprise  # imported here: loading its plugins costs a second at daemon start

    sender = apprise.Apprise()
    if not sender.add(url):
        return False
    return bool(sender.notify(body=body, title=title))


def build_routes(
    policies: Mapping[str, NotificationPolicy],
    environ: Mapping[str, str],
    denied_env: Iterable[str] = (),
) -> tuple[list[Route], dict[str, str]]:
    """Routes of the policies in force, and the targets skipped (``policy/target`` -> why).

    A target whose secret cannot be resolved is skipped alone, as a device with a bad key
    is; the reason names the variable, never a value.
    """
    secrets = SecretPolicy(env_prefix=NOTIFY_SECRET_PREFIX).deny(env=denied_env)
    routes: list[Route] = []
    skipped: dict[str, str] = {}
    for name, policy in sorted(policies.items()):
        spec = policy.spec
        if spec.suspend:
            continue
        targets: list[Target] = []
        for t in spec.targets:
            try:
                values = {
                    key: resolve_secret(ref, environ=environ, policy=secrets)
                    for key, ref in t.secrets.items()
                }
            except ConfigError as exc:
                skipped[f"{name}/{t.name}"] = str(exc)
                continue
            targets.append(Target(name, t.name, _fill(t.url, values)))
        window, resolved = spec.dedupeWindow, spec.sendResolved
        routes.append(Route(name, spec.filter, window, resolved, tuple(targets)))
    return routes, skipped


def _fill(url: str, values: Mapping[str, str]) -> str:
    """``url`` with each ``{placeholder}`` replaced by its secret, URL-quoted (a URL that is
    one placeholder is the whole secret URL, as given)."""
    whole = _PLACEHOLDER.fullmatch(url)
    if whole is not None:
        return values[whole.group(1)]
    return _PLACEHOLDER.sub(lambda m: quote(values[m.group(1)], safe=""), url)


def secret_values(routes: Iterable[Route], environ: Mapping[str, str]) -> list[str]:
    """Everything the sanitizer must hide: each URL, and each secret as given and quoted."""
    out: list[str] = []
    for route in routes:
        for target in route.targets:
            out.append(target.url)
    for name, value in environ.items():
        if name.startswith(NOTIFY_SECRET_PREFIX) and value:
            out += [value, quote(value, safe="")]
    return out


class Notifier:
    """Filters, de-duplicates, queues and sends notices (see the module docstring)."""

    def __init__(
        self,
        clock: Clock,
        *,
        send: Sender = apprise_send,
        secrets: Callable[[], tuple[str, ...]] = tuple,
        capacity: int = QUEUE_SIZE,
        attempts: int = 4,
        backoff: float = 1.0,
        on_result: Callable[[str, str], None] | None = None,
    ) -> None:
        self._clock = clock
        self._send = send
        self._secrets = secrets
        self._capacity = capacity
        self._attempts = attempts
        self._backoff = backoff
        self._on_result = on_result or (lambda event, result: None)
        self.routes: list[Route] = []
        self._queue: deque[Notice] = deque()
        self._ready = asyncio.Event()
        self._last_sent: dict[tuple[str, str, str, str], datetime] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gitfirm-notify")
        self.sent = 0
        self.failed = 0
        self.dropped = 0

    def configure(self, routes: list[Route]) -> None:
        """The routes of the desired revision now in force."""
        self.routes = routes

    @property
    def pending(self) -> int:
        """Notices waiting in the queue."""
        return len(self._queue)

    def alert_changed(self, alert: Alert, change: Change) -> None:
        """The alert centre's listener: queue a notice per matching target, at once."""
        now = self._clock.now()
        for route in self.routes:
            if not route.wants(alert, change):
                continue
            # Flux's rule: the same subject and message once per window (per policy).
            key = (route.policy, alert.key, change, alert.message)
            last = self._last_sent.get(key)
            if last is not None and now - last < route.window:
                continue
            self._last_sent[key] = now
            title, body = self._text(alert, change)
            for target in route.targets:
                self._put(Notice(target, alert.event, title, body))
        self._forget(now)

    def _text(self, alert: Alert, change: Change) -> tuple[str, str]:
        known = self._secrets()
        state = "RESOLVED" if change == "resolved" else alert.severity.upper()
        title = f"[gitfirm] {state}: {alert.event} {alert.subject}"
        lines = [alert.message, ""]
        lines += [f"policy: {alert.policy}"] if alert.policy else []
        lines += [f"site: {alert.site}"] if alert.site else []
        lines += [f"first seen: {alert.first_seen.isoformat()}", f"count: {alert.count}"]
        if alert.resolved_at is not None:
            lines.append(f"resolved: {alert.resolved_at.isoformat()}")
        return redact(title, known), redact("\n".join(lines), known)

    def _put(self, notice: Notice) -> None:
        if len(self._queue) >= self._capacity:
            self._queue.popleft()
            self.dropped += 1
            self._on_result("", "dropped")
        self._queue.append(notice)
        self._ready.set()

    def _forget(self, now: datetime) -> None:
        # The de-duplication memory is bounded by the longest window.
        longest = max((r.window for r in self.routes), default=timedelta(0))
        if len(self._last_sent) > 4 * self._capacity:
            self._last_sent = {k: t for k, t in self._last_sent.items() if now - t < longest}

    async def run(self) -> None:
        """Send queued notices forever, one at a time (a supervised loop)."""
        while True:
            while not self._queue:
                self._ready.clear()
                await self._ready.wait()
            await self._deliver(self._queue.popleft())

    async def drain(self) -> None:
        """Send every queued notice now (tests, and a clean shutdown)."""
        while self._queue:
            await self._deliver(self._queue.popleft())

    async def _deliver(self, notice: Notice) -> None:
        target = notice.target
        delay = self._backoff
        loop = asyncio.get_running_loop()
        for attempt in range(1, self._attempts + 1):
            why = "the target refused it"
            try:
                call = functools.partial(self._send, target.url, notice.title, notice.body)
                if await loop.run_in_executor(self._executor, call):
                    self.sent += 1
                    self._on_result(notice.event, "sent")
                    return
            except Exception as exc:  # Apprise plugins raise anything; the text may hold the URL
                why = redact(f"{type(exc).__name__}: {exc}", (target.url, *self._secrets()))
            log.warning(
                "notification to %s/%s failed (attempt %d of %d): %s",
                target.policy,
                target.name,
                attempt,
                self._attempts,
                why,
                extra={"event": "notify-failed", "target": f"{target.policy}/{target.name}"},
            )
            if attempt < self._attempts:
                await self._clock.sleep(delay)
                delay *= 2
        self.failed += 1
        self._on_result(notice.event, "failed")

    def close(self) -> None:
        """Stop the sending thread (a send in progress finishes on its own)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
