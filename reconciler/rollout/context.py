"""What one device run needs from its rollout: identity, policy, stores, clock and hooks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from reconciler.clock import Clock
from reconciler.model.kinds import RolloutPolicySpec
from reconciler.planning.windows import (
    CLOSE_HORIZON,
    HORIZON,
    allowed_until,
    is_allowed,
    next_allowed,
)
from reconciler.rollout.backup import BackupStore
from reconciler.rollout.journal import Journal
from reconciler.rollout.marks import HighWaterMarks
from reconciler.rollout.model import EventSink, ImageUrl, RolloutSettings, Transition
from reconciler.sanitize import redact

__all__ = ["RunContext", "Work"]


@dataclass(frozen=True, slots=True)
class Work:
    """One device to upgrade, as the plan gives it.

    ``path`` lists the version of each hop (a device names an installed image after its
    version); ``images`` the Image document of each hop, for the download URL. ``current``
    is the version observed when the plan was made, which precheck insists on. ``flavor``
    is the release flavor the hop images were chosen for (the Device's platform).
    """

    device: str
    current: str
    path: tuple[str, ...]
    images: tuple[str, ...]
    wave: int = 0
    order: int = 0
    group: str | None = None
    channel: str = ""
    """The channel of the final target, whose anti-rollback mark a completed run raises."""
    flavor: str | None = None


def _never_busy(work: Work) -> bool:
    return False


@dataclass
class RunContext:
    """Shared by every device run of one policy in one pass."""

    policy: str
    revision: str
    retry_token: str
    spec: RolloutPolicySpec
    journal: Journal
    backups: BackupStore
    clock: Clock
    settings: RolloutSettings
    image_url: ImageUrl
    events: EventSink | None = None
    secrets: tuple[str, ...] = ()
    peer_busy: Callable[[Work], bool] = field(default=_never_busy)
    marks: HighWaterMarks | None = None
    longest_step: timedelta = timedelta(0)
    """The longest reboot-to-health step measured in this run; a disruptive step starts
    only if the window fits it (or ``maxStepDuration``, whichever is longer)."""
    _span: tuple[datetime, datetime, bool, bool] | None = None
    """The policy's windows as last evaluated: from, until, allowed in between, and whether
    ``until`` is where the allowed state changes (else only the search horizon)."""

    def _window_span(self, now: datetime) -> tuple[datetime, datetime, bool, bool]:
        # The windows are evaluated once per span of one state, not once per device: 100
        # devices reaching activation together cost 100 cron walks (about 2 ms each) in
        # one turn of the event loop. Inside the span the answers are the same.
        span = self._span
        if span is not None and span[0] <= now < span[1]:
            return span
        windows = self.spec.windows
        if is_allowed(windows, now):
            until = allowed_until(windows, now)
            span = (now, until or now + CLOSE_HORIZON, True, until is not None)
        else:
            span = (now, next_allowed(windows, now) or now + HORIZON, False, True)
        self._span = span
        return span

    def window_open(self, now: datetime) -> bool:
        """Whether the policy's windows allow activation at ``now``."""
        return self._window_span(now)[2]

    def window_fits(self, now: datetime, step: timedelta) -> bool:
        """Whether a step of ``step`` may start at ``now`` and end before the allow window
        closes or a deny window opens."""
        _, until, allowed, exact = self._window_span(now)
        if not allowed or now + step <= until:
            return allowed
        if exact:
            return False
        # Allowed past the search horizon from where the span was evaluated: look again
        # from now, as an evaluation at ``now`` would.
        closes = allowed_until(self.spec.windows, now)
        return closes is None or now + step <= closes

    def emit(self, event: Transition) -> None:
        """Hand a transition to the daemon's sink, if any."""
        if self.events is not None:
            self.events(event)

    def redact(self, text: str) -> str:
        """Sanitize text bound for the journal, events or status."""
        return redact(text, self.secrets)
