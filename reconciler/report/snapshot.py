"""The plain input of the report stage: what the daemon knows at one instant.

The daemon fills these frozen dataclasses with plain values (strings, numbers, datetimes and
:class:`~reconciler.model.facts.DeviceFacts`); nothing here knows the rollout engine's
types, so a phase is its string value (``"stage"``, ``"done"``...).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from reconciler.alerts.model import Alert
from reconciler.model.facts import DeviceFacts

__all__ = [
    "EVENT_CAP",
    "ComplianceVerdict",
    "CveExposure",
    "DeviceStatus",
    "PhaseChange",
    "Refusal",
    "RolloutEvent",
    "RolloutStatus",
    "StatusSnapshot",
]

EVENT_CAP = 50
"""Recent events kept per rollout: enough to explain a halt, small enough for a diff."""


@dataclass(frozen=True, slots=True)
class PhaseChange:
    """One transition of a device's state machine."""

    from_phase: str
    to_phase: str
    at: datetime


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """What gitfirm knows about one device: observation, intent and progress."""

    name: str
    facts: DeviceFacts | None = None
    """Last observation; ``None`` when the device was never observed."""
    desired_image: str | None = None
    target_version: str | None = None
    phase: str = "pending"
    rollout: str | None = None
    """Name of the RolloutPolicy that selects the device, if any."""
    last_transition: PhaseChange | None = None
    last_error: str | None = None
    """Already sanitized by the caller; the renderer sanitizes it again."""
    tls_insecure: bool = False
    """True when TLS verification is off for this device (an explicit, visible choice)."""
    plaintext: bool = False
    """True when the device's API key may go over plain http:// (``insecurePlaintext``)."""


@dataclass(frozen=True, slots=True)
class RolloutEvent:
    """One line of a rollout's recent history."""

    at: datetime
    message: str
    device: str | None = None


@dataclass(frozen=True, slots=True)
class RolloutStatus:
    """The state of one RolloutPolicy at the desired revision.

    ``events`` keeps only the newest :data:`EVENT_CAP` entries; ``counts`` is derived from
    ``device_phases`` so the two can never disagree.
    """

    policy: str
    revision: str
    target_version: str | None = None
    current_wave: int | None = None
    total_waves: int | None = None
    halted: bool = False
    halt_reason: str | None = None
    waiting_reason: str | None = None
    """Why a rollout that is not halted does not move (devices skipped, a busy peer)."""
    suspended: bool = False
    device_phases: Mapping[str, str] = field(default_factory=dict)
    events: tuple[RolloutEvent, ...] = ()

    def __post_init__(self) -> None:
        phases = {name: str(phase) for name, phase in self.device_phases.items()}
        object.__setattr__(self, "device_phases", MappingProxyType(phases))
        if len(self.events) > EVENT_CAP:
            object.__setattr__(self, "events", tuple(self.events[-EVENT_CAP:]))

    @property
    def counts(self) -> dict[str, int]:
        """Devices per phase."""
        return dict(Counter(self.device_phases.values()))


@dataclass(frozen=True, slots=True)
class CveExposure:
    """One advisory that affects the version a device runs."""

    id: str
    severity: str
    fixed: str | None = None
    """First version that fixes it, when the advisory says."""


@dataclass(frozen=True, slots=True)
class ComplianceVerdict:
    """A device's standing against the CompliancePolicies that select it."""

    device: str
    compliant: bool
    reasons: tuple[str, ...] = ()
    exposures: tuple[CveExposure, ...] = ()
    recommendation: str | None = None
    """The plan's recommended target and why (``1.4.4: ...``), if any."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """A desired revision that was not applied, and why (kept until a later one applies)."""

    revision: str
    reason: str


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    """Everything the status branch shows, at one desired revision."""

    desired_revision: str
    devices: tuple[DeviceStatus, ...] = ()
    rollouts: tuple[RolloutStatus, ...] = ()
    compliance: tuple[ComplianceVerdict, ...] = ()
    refusals: tuple[Refusal, ...] = ()
    """Revisions newer than ``desired_revision`` that were refused (signature, config,
    image), newest last; empty once a revision applies cleanly."""
    refused_builds: tuple[Refusal, ...] = ()
    """Upstream builds an ImageSource offered that failed verification and were not
    proposed (``revision`` holds ``<source>/<file>``), newest last."""
    alerts: tuple[Alert, ...] = ()
    """The alert centre's alerts (``alerts.yaml``): active first, then resolved."""
