"""The Plan: what a merge (or one daemon pass) does to every device, as frozen plain data.

The rollout engine reads it; the renderers turn it into text, markdown and json. Field
names are snake_case in Python and camelCase in the json rendering (see
:mod:`reconciler.planning.render`).

Waves are numbered per policy: 0 is the canary wave (when the strategy has a canary), then
1..N are the percentage waves in ``strategy.waves`` order. ``order`` is the 1-based position
inside a wave (see :mod:`reconciler.planning.waves` for how both are chosen).
"""

from __future__ import annotations

import enum
from datetime import datetime

from pydantic import BaseModel, ConfigDict

__all__ = [
    "CHANGE_ACTIONS",
    "PLAN_SCHEMA_VERSION",
    "Action",
    "Advisory",
    "Hop",
    "Plan",
    "PlannedDevice",
    "PlannedPolicy",
    "PlannedWave",
    "Recommendation",
    "WindowInfo",
]

PLAN_SCHEMA_VERSION = 1


class Action(enum.StrEnum):
    """What the plan does to one device.

    - ``none``: it runs its target (or no rollout policy selects it) and is compliant.
    - ``upgrade``: it will be (or is being) moved along ``path`` now.
    - ``waiting-for-window``: it will be upgraded when an allow window opens.
    - ``suspended``: it needs an upgrade but its policy has ``suspend: true``.
    - ``unreachable``: not observed, or it did not answer; nothing can be planned.
    - ``incompatible``: no approved path or image fits its version and platform.
    - ``blocked``: an upgrade is needed but refused; ``reason`` says why.
    - ``non-compliant``: nothing is planned, and a CompliancePolicy is violated.
    """

    NONE = "none"
    UPGRADE = "upgrade"
    WAITING = "waiting-for-window"
    SUSPENDED = "suspended"
    UNREACHABLE = "unreachable"
    INCOMPATIBLE = "incompatible"
    BLOCKED = "blocked"
    NON_COMPLIANT = "non-compliant"


# Actions that mean the plan changes a device (``--detailed-exitcode`` exits 2).
CHANGE_ACTIONS: frozenset[Action] = frozenset({Action.UPGRADE, Action.WAITING})


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Hop(_Frozen):
    """One step of an upgrade path: install ``image`` (an Image name) at ``version``."""

    image: str
    version: str
    channel: str


class Advisory(_Frozen):
    """An advisory affecting a device's running version."""

    name: str
    severity: str
    aliases: tuple[str, ...] = ()


class Recommendation(_Frozen):
    """The lowest-risk compliant target reachable by an approved path, and ``why``
    (see :mod:`reconciler.planning.recommend`)."""

    version: str
    image: str
    path: tuple[Hop, ...]
    why: str


class PlannedDevice(_Frozen):
    """The plan for one device. ``path`` is empty unless there is somewhere to go.

    ``reason`` is set for ``blocked``, ``incompatible`` and ``unreachable``. ``wave`` and
    ``order`` are set for devices that take part in their policy's waves. ``compliance``
    lists every violated rule (empty means compliant, or not evaluated when
    ``compliance_evaluated`` is False); ``advisories`` lists CVE exposure of the running
    version whatever the policy's threshold. ``recommendation`` is set for a non-compliant
    or exposed device when a better target is reachable.
    """

    name: str
    site: str
    policy: str | None
    redundancy_group: str | None
    platform: str
    current_version: str | None
    target_version: str | None
    target_image: str | None
    path: tuple[Hop, ...] = ()
    action: Action
    reason: str | None = None
    wave: int | None = None
    order: int | None = None
    notes: tuple[str, ...] = ()
    compliance_evaluated: bool = False
    compliance: tuple[str, ...] = ()
    advisories: tuple[Advisory, ...] = ()
    recommendation: Recommendation | None = None

    @property
    def compliant(self) -> bool:
        """True when evaluated and no rule is violated."""
        return self.compliance_evaluated and not self.compliance


class WindowInfo(_Frozen):
    """A policy's windows evaluated at the plan's ``now``."""

    allowed: bool
    closes_at: datetime | None
    next_open: datetime | None
    reason: str


class PlannedWave(_Frozen):
    """One wave of a policy: its number, label (``canary`` or ``wave N``) and devices in
    execution order."""

    index: int
    label: str
    devices: tuple[str, ...]


class PlannedPolicy(_Frozen):
    """A rollout policy as planned: its target, state, windows and waves."""

    name: str
    target: str
    devices: int
    suspended: bool
    halted: bool
    halt_reason: str | None
    window: WindowInfo
    waves: tuple[PlannedWave, ...]


class Plan(_Frozen):
    """The whole plan. ``devices`` and ``policies`` are sorted by name. ``errors`` are
    problems in desired state that the planner found (for example a device selected by
    several policies); ``warnings`` are worth a reviewer's eye but block nothing."""

    revision: str
    now: datetime
    observed: bool
    devices: tuple[PlannedDevice, ...]
    policies: tuple[PlannedPolicy, ...]
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def has_changes(self) -> bool:
        """Whether any device would change (``--detailed-exitcode`` exits 2)."""
        return any(d.action in CHANGE_ACTIONS for d in self.devices)

    def counts(self) -> dict[str, int]:
        """Devices per action, every action present (zero included), in Action order."""
        counts = {a.value: 0 for a in Action}
        for d in self.devices:
            counts[d.action.value] += 1
        return counts

    def device(self, name: str) -> PlannedDevice | None:
        """One device's plan, by name."""
        return next((d for d in self.devices if d.name == name), None)
