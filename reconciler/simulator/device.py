"""The state of one virtual VyOS device: images, configs, health, faults and counters.

The release family (``1.3``, ``1.4`` or ``1.5``) and the API features follow the *running*
image, as on a real router: a 1.4 device rebooted into a rolling image answers like 1.5
from then on.

Time-driven changes (the end of a reboot) are applied lazily by :meth:`VirtualDevice.tick`
with the event loop's monotonic time, so no background task is needed per device.
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from reconciler.model.facts import ApiFeatures
from reconciler.model.features import api_features
from reconciler.model.versions import parse_version

__all__ = ["BootFailure", "Faults", "VirtualDevice", "family_of"]

BootFailure = Literal["none", "revert", "never"]


def family_of(version: str) -> str:
    """The API family (``1.3``, ``1.4`` or ``1.5``) of a version string."""
    return parse_version(version).family


@dataclass
class Faults:
    """Faults injected into one device; every field defaults to a healthy device."""

    unreachable: bool = False
    """Drop every connection without an answer."""
    hang: bool = False
    """Accept calls and never answer (until the client gives up)."""
    slow_seconds: float = 0.0
    """Extra latency added to every call."""
    http_status: int | None = None
    """Answer every API call with this 5xx status."""
    gateway_timeout: bool = False
    """``/image add`` answers 504 at once while the install carries on."""
    boot_failure: BootFailure = "none"
    """After a reboot into a new image: ``revert`` comes back on the previous image,
    ``never`` never comes back."""
    degrade_after_upgrade: bool = False
    """BGP sessions stay down on an image first booted while this is set; a rollback to an
    image that ran before brings them back (clearing the fault heals every image)."""
    disk_full: bool = False
    """``/image add`` fails for lack of space."""
    corrupt_download: bool = False
    """The downloaded ISO arrives corrupted."""

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a partial update (from the control API); unknown names raise ``KeyError``."""
        known = {f.name for f in fields(self)}
        for name, value in changes.items():
            if name not in known:
                raise KeyError(name)
            setattr(self, name, value)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the control API."""
        return asdict(self)


@dataclass
class VirtualDevice:
    """One simulated router. Tests may read and change it directly in-process."""

    name: str
    arch: str
    flavor: str
    images: list[str]
    default: str
    running: str
    config: dict[str, Any] = field(default_factory=dict)
    bgp_peers: list[tuple[str, int]] = field(default_factory=list)
    memory_total_mb: int = 2048
    memory_used_mb: int = 512
    load1: float = 0.05
    faults: Faults = field(default_factory=Faults)
    custom_names: dict[str, str] = field(default_factory=dict)
    """Images installed under a name of their own (the installer asks for one): name ->
    the version the image holds. Other images are named after their version."""
    # Dynamic state.
    saved_config: dict[str, Any] = field(default_factory=dict)
    image_configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The saved config each image boots with: an add copies the saved config into the new
    image, so later saves do not reach it (as on VyOS, where /config is per image)."""
    booted_at: float = 0.0
    down_until: float | None = None
    dead: bool = False
    bgp_down: bool = False
    degraded: set[str] = field(default_factory=set)
    """Images first booted while ``degrade_after_upgrade`` was set: BGP is down whenever
    one of them boots while the fault is still set."""
    ran: set[str] = field(default_factory=set)
    """Every image this device has run."""
    pending_previous: str | None = None
    # Counters for tests.
    calls: Counter[str] = field(default_factory=Counter)
    image_ops_active: int = 0
    image_ops_max: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.saved_config:
            self.saved_config = copy.deepcopy(self.config)

    @property
    def release(self) -> str:
        """The version of the running image."""
        return self.custom_names.get(self.running, self.running)

    @property
    def family(self) -> str:
        """The API family of the running image."""
        return family_of(self.release)

    @property
    def features(self) -> ApiFeatures:
        """What the API of the running image offers (by branch and build date)."""
        return api_features(self.release)

    @property
    def hostname(self) -> str:
        """The host name the device reports (its name)."""
        return self.name

    def reachable(self, now: float) -> bool:
        """Whether the device answers at ``now`` (after applying a finished reboot)."""
        self.tick(now)
        return not (self.dead or self.faults.unreachable or self.down_until is not None)

    def record(self, now: float, event: str, **detail: Any) -> None:
        """Append an event (reboot, image operation) to the device's log."""
        self.log.append({"at": round(now, 3), "event": event, **detail})

    def begin_image_op(self) -> None:
        """Count an image operation in flight, remembering the highest overlap."""
        self.image_ops_active += 1
        self.image_ops_max = max(self.image_ops_max, self.image_ops_active)

    def end_image_op(self) -> None:
        """Count an image operation as finished."""
        self.image_ops_active -= 1

    def install(self, name: str) -> None:
        """Add an installed image; like VyOS, it becomes the default boot at once."""
        self.images.append(name)
        self.default = name
        self.image_configs[name] = copy.deepcopy(self.saved_config)

    def start_reboot(self, now: float, boot_seconds: float) -> None:
        """Go down for ``boot_seconds``; :meth:`tick` brings the device back."""
        self.pending_previous = self.running
        self.down_until = now + boot_seconds
        self.record(now, "reboot", image=self.default)

    def tick(self, now: float) -> None:
        """Finish a reboot whose boot time has passed."""
        if self.down_until is None or now < self.down_until:
            return
        previous = self.pending_previous or self.running
        self.down_until = None
        self.pending_previous = None
        target = self.default
        if target != previous and self.faults.boot_failure == "never":
            self.dead = True
            self.record(now, "boot-failed", image=target, outcome="never")
            return
        if target != previous and self.faults.boot_failure == "revert":
            self.default = previous
            self.record(now, "boot-failed", image=target, outcome="revert", running=previous)
            target = previous
        if target != previous:
            self.image_configs[previous] = copy.deepcopy(self.saved_config)
            self.saved_config = copy.deepcopy(self.image_configs.get(target, self.saved_config))
        self.running = target
        self.booted_at = now
        self.config = copy.deepcopy(self.saved_config)
        degrade = self.faults.degrade_after_upgrade
        self.ran.add(previous)
        if degrade and target not in self.ran:
            self.degraded.add(target)  # the new image breaks BGP; the old one did not
        self.ran.add(target)
        self.bgp_down = degrade and target in self.degraded
        self.record(now, "booted", image=target)

    def uptime(self, now: float) -> float:
        """Seconds since boot."""
        return max(0.0, now - self.booted_at)

    def snapshot(self, now: float) -> dict[str, Any]:
        """Everything a test may want to assert on, as plain data."""
        self.tick(now)
        return {
            "name": self.name,
            "family": self.family,
            "arch": self.arch,
            "flavor": self.flavor,
            "images": list(self.images),
            "default": self.default,
            "running": self.running,
            "reachable": self.reachable(now),
            "rebooting": self.down_until is not None,
            "dead": self.dead,
            "bgp_down": self.bgp_down,
            "config": self.config,
            "saved_config": self.saved_config,
            "faults": self.faults.as_dict(),
            "calls": dict(self.calls),
            "total_calls": sum(self.calls.values()),
            "image_ops_active": self.image_ops_active,
            "image_ops_max": self.image_ops_max,
            "log": list(self.log),
        }
