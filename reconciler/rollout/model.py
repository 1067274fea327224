"""Plain data of the rollout engine: phases, the device protocol it needs, settings,
transition events and per-device outcomes."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from reconciler.model.facts import InstalledImage
from reconciler.planning import progress
from reconciler.planning.progress import Phase

__all__ = [
    "ADD_ISSUED",
    "DISRUPTIVE",
    "ClientFactory",
    "DeviceClient",
    "DeviceOutcome",
    "EventSink",
    "ImageUrl",
    "OutcomeStatus",
    "RolloutSettings",
    "Transition",
    "must_finish",
]

# A restart or a new revision finishes these phases before anything else; earlier phases
# can stop at any step boundary and start over. Planning owns the set: the planner resumes
# the same devices at their journalled hop.
DISRUPTIVE = progress.DISRUPTIVE

ADD_ISSUED = "add-issued"
"""The journal marker of a device whose ``/image add`` was sent (it may still run)."""


def must_finish(phase: Phase, marker: str) -> bool:
    """Whether a journalled device is disrupted, so that whatever stops its rollout (a
    suspend, a halt, a restart) it is seen through, health gate included: a disruptive
    phase, or ``stage`` once the add was sent (the add arms the next boot; on 1.3/1.4 for
    good, as the API offers no ``set_default`` there)."""
    return phase in DISRUPTIVE or (phase is Phase.STAGE and marker == ADD_ISSUED)


class DeviceClient(Protocol):
    """The device operations the engine needs; the devices client satisfies it structurally.

    Every method raises a :class:`reconciler.errors.DeviceError` subclass on failure
    (``Unreachable`` when the device does not answer, ``Unsupported`` when the release
    lacks the endpoint).
    """

    async def images(self) -> Sequence[InstalledImage]:
        """The installed images with their default and running flags."""
        ...

    async def image_add(
        self, url: str, *, expected_name: str | None = None, flavor: str | None = None
    ) -> object:
        """``/image add``; blocks until the device installed the image (or, after a 504,
        until ``expected_name`` appears). With ``flavor``, refuses without adding when the
        device runs another release flavor (the real add would hang)."""
        ...

    async def image_set_default(self, name: str) -> object:
        """``/image set_default`` (1.5+ only; ``Unsupported`` before)."""
        ...

    async def reboot(self) -> None:
        """``/reboot now``; a dropped connection is normal; ``Unsupported`` on 1.3."""
        ...

    async def config_file_save(self, file: str | None = None) -> object:
        """``/config-file save`` (to the saved config, or to ``file``)."""
        ...

    async def config_file_load(self, file: str) -> object:
        """``/config-file load``: replace the running config with ``file``."""
        ...

    async def image_delete(self, name: str) -> object:
        """``/image delete``."""
        ...

    async def retrieve(
        self, path: Sequence[str] = (), *, config_format: Literal["json", "raw"] = "json"
    ) -> Any:
        """``/retrieve showConfig``: the config tree (json) or its text (raw)."""
        ...

    async def show(self, path: Sequence[str]) -> str:
        """``/show`` with a path; plain text."""
        ...


ClientFactory = Callable[[str], DeviceClient]
ImageUrl = Callable[[str, str], str]


class RolloutSettings(BaseModel):
    """Timings of the engine. Defaults fit real routers; tests compress them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    boot_timeout: timedelta = Field(
        default=timedelta(minutes=15),
        description="How long a device may take to come back after a reboot; a slow "
        "appliance with a config migration takes several minutes.",
    )
    boot_poll: timedelta = Field(
        default=timedelta(seconds=10),
        description="How often a rebooting device is polled; cheap, and boot takes minutes.",
    )
    stage_timeout: timedelta = Field(
        default=timedelta(minutes=30),
        description="After a crash or a 504 during /image add, how long to watch the image "
        "list for the add that may still run on the device before adding again.",
    )
    stage_poll: timedelta = Field(
        default=timedelta(seconds=15), description="Poll interval while watching an add."
    )
    window_poll: timedelta = Field(
        default=timedelta(minutes=1),
        description="Longest sleep while waiting for a window or a pause, so suspend and new "
        "revisions are noticed promptly.",
    )


@dataclass(frozen=True, slots=True)
class Transition:
    """One state change of one device, announced before its action runs."""

    device: str
    from_phase: str
    to_phase: str
    revision: str
    policy: str
    time: datetime
    hop: int = 0
    target: str = ""
    detail: str = ""


EventSink = Callable[[Transition], None]


class OutcomeStatus(enum.StrEnum):
    """What became of one device in one run."""

    DONE = "done"  # runs the final target, health passed
    FAILED = "failed"  # an attempt failed (rolled back or not); counts toward the threshold
    SKIPPED = "skipped"  # unreachable or changed before its turn; counted apart
    PAUSED = "paused"  # health was inconclusive; the rollout waits for a human
    WAITING = "waiting"  # not started (window, halt, suspend, stop) or staged early only
    UNCHANGED = "unchanged"  # nothing to do


@dataclass(frozen=True, slots=True)
class DeviceOutcome:
    """The value a device's run returns; one device never raises for the fleet."""

    device: str
    status: OutcomeStatus
    phase: Phase
    hop: int = 0
    rolled_back: bool = False
    error: str | None = None
