"""One alert as the alert centre, the status branch and the dashboard all see it.

An alert is keyed by what it is about (``event`` and ``subject``), so the same problem seen
again raises ``count`` and ``last_seen`` instead of making a new alert. It is resolved when the
condition clears; a resolved alert is kept for the record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

__all__ = ["Alert", "Severity"]

Severity = Literal["info", "warning", "critical"]


@dataclass(frozen=True, slots=True)
class Alert:
    """An active or resolved alert."""

    event: str
    """The event type, for example ``device-failed`` or ``revision-refused``."""
    subject: str
    """What it is about: a device, a policy, a revision or an image."""
    severity: Severity
    message: str
    first_seen: datetime
    last_seen: datetime
    count: int = 1
    policy: str | None = None
    site: str | None = None
    resolved_at: datetime | None = None

    @property
    def key(self) -> str:
        """The identity that de-duplicates repeats of the same problem."""
        return f"{self.event}/{self.subject}"

    @property
    def active(self) -> bool:
        """Whether the condition still holds."""
        return self.resolved_at is None
