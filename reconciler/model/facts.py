"""Observed facts about devices: plain data produced by ``devices`` and read by ``planning``.

They live in ``model`` so the planner can read them without importing an I/O stage.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ApiFeatures", "DeviceFacts", "Health", "InstalledImage"]


class _Plain(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InstalledImage(_Plain):
    """One image installed on a device."""

    name: str
    default: bool = False
    running: bool = False


class Health(_Plain):
    """Health numbers read from the device (None where the release does not say)."""

    uptime_seconds: float | None = None
    load1: float | None = None
    memory_used_percent: float | None = None


class ApiFeatures(_Plain):
    """What the device's API offers; detected, not assumed from the version."""

    info: bool = False
    set_default: bool = False
    reboot: bool = False
    image_show: bool = False


class DeviceFacts(_Plain):
    """Everything observed about one device in one pass. ``reachable`` False is a fact."""

    name: str
    reachable: bool
    observed_at: datetime
    error: str | None = Field(default=None, description="Sanitized reason when unreachable")
    version: str | None = None
    architecture: str | None = None
    flavor: str | None = None
    hostname: str | None = None
    images: tuple[InstalledImage, ...] = ()
    health: Health = Field(default_factory=Health)
    features: ApiFeatures = Field(default_factory=ApiFeatures)
    rtt_ms: float | None = None

    @property
    def running_image(self) -> str | None:
        """Name of the running image, when known."""
        return next((i.name for i in self.images if i.running), None)

    @property
    def default_image(self) -> str | None:
        """Name of the image the device boots next, when known."""
        return next((i.name for i in self.images if i.default), None)
