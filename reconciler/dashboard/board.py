"""What the dashboard shows, as plain values the daemon hands over at one instant.

The daemon fills a :class:`Board` from the status book's snapshot, the plan, the desired
state, the image store, the journal and the alert centre; the dashboard reads nothing else
and calls no stage. ``version`` changes whenever anything on it may have changed, which is
what the page cache and the live updates key on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from reconciler.alerts.model import Alert
from reconciler.model.state import DesiredState
from reconciler.planning.plan import Plan
from reconciler.report.snapshot import StatusSnapshot
from reconciler.rollout.model import Transition

__all__ = ["Backup", "Board", "ImageRow", "SourceState", "StoreCapacity"]


@dataclass(frozen=True, slots=True)
class ImageRow:
    """One image: declared at the desired revision, stored (verified), or both."""

    name: str
    version: str
    channel: str
    sha256: str
    size: int
    declared: bool
    stored_at: str | None = None
    """When verification stored it; ``None`` when not (yet) in the store."""
    signer: str | None = None
    signed_at: datetime | None = None
    revoked: bool = False
    refused: str | None = None


@dataclass(frozen=True, slots=True)
class StoreCapacity:
    """Bytes used by images, free on the store's file system, and used per channel."""

    used: int = 0
    free: int = 0
    per_channel: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SourceState:
    """The config repository as the daemon last saw it."""

    applied: str | None = None
    signer: str | None = None
    """Who signed the applied head, as verification named them; ``None``: not required."""
    verdict: str | None = None
    """The verifier's reason for accepting it (``verified``, ``not-required``)."""
    committed_at: datetime | None = None
    subject: str | None = None
    branch: str = "main"
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class Backup:
    """One stored configuration backup of a device."""

    revision: str
    taken: datetime


@dataclass(frozen=True)
class Board:
    """Everything every page renders from, at state ``version``."""

    version: int
    now: datetime
    snapshot: StatusSnapshot
    desired: DesiredState | None = None
    plan: Plan | None = None
    images: tuple[ImageRow, ...] = ()
    capacity: StoreCapacity = field(default_factory=StoreCapacity)
    history: tuple[Transition, ...] = ()
    """Journal transitions of every policy, oldest first (bounded by the daemon)."""
    source: SourceState = field(default_factory=SourceState)
    alerts: tuple[Alert, ...] = ()
