"""Seeded chaos scenarios: a small fleet, its faults, its windows and a timeline of actions.

:func:`make_scenario` turns one seed into a :class:`Scenario`; the same seed always gives the
same scenario, so a violation's seed replays it (``CHAOS_SEED=<seed> CHAOS_SCENARIOS=1``).
Real timing still varies from run to run: the daemon is a separate process.

Fleets are pairs of 1.4 and pairs of rolling (1.5) routers, one rollout policy per family;
each pair is a redundancy group (a group must lie within one policy).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FAULTS", "KILL_PHASES", "TRAINS", "Action", "Scenario", "make_scenario"]

TRAINS: dict[str, tuple[str, str, str]] = {
    "1.4": ("1.4.3", "1.4.4", "1.4.5"),
    "rolling": ("2025.01.10-0020-rolling", "2025.02.14-0021-rolling", "2025.03.01-0010-rolling"),
}
"""Per release: the version the fleet runs, the first target, the retarget."""

FAULTS: list[dict[str, Any]] = [
    {"boot_failure": "revert"},
    {"boot_failure": "never"},
    {"unreachable": True},
    {"http_status": 500},
    {"http_status": 503},
    {"gateway_timeout": True},
    {"slow_seconds": 0.4},
    {"disk_full": True},
    {"corrupt_download": True},
    {"degrade_after_upgrade": True},
]
"""One fault each, as :class:`reconciler.simulator.device.Faults` fields."""

_TRANSIENT: dict[str, Any] = {"unreachable": False, "http_status": None, "slow_seconds": 0.0}
"""Faults that come and go, and the value that clears each."""
_ACTIONS = (
    ("unrelated", 4),
    ("burst", 2),
    ("webhook", 3),
    ("suspend", 2),
    ("retarget", 1),
    ("new-image", 1),
    ("sigkill", 2),
    ("sigkill-in", 3),
    ("sigterm", 2),
    ("fault", 3),
    ("config", 3),
)
"""Action kinds and their weights. ``burst``: three unrelated commits in a row;
``sigkill-in``: SIGKILL as soon as some device enters the action's ``phase``. Half the
``config`` changes (drawn apart, so each seed keeps its timeline) have phase ``stage``: made
on a device just after it staged its image."""
KILL_PHASES = ("stage", "activate", "await-boot", "health")


@dataclass(frozen=True)
class Action:
    """One thing that happens ``at`` seconds after the rollout commit."""

    at: float
    kind: str
    device: str = ""
    faults: dict[str, Any] = field(default_factory=dict)
    phase: str = ""


@dataclass(frozen=True)
class Scenario:
    """Everything one run is made of."""

    seed: int
    devices: int
    boot_seconds: float
    windows: str
    """``open`` (always), ``short`` (the first 20 s of every minute) or ``deny`` (open,
    with a 20 s freeze every second minute)."""
    pause: str
    faults: dict[str, dict[str, Any]]
    """Per device, faults set before the rollout starts."""
    actions: tuple[Action, ...]
    duration: float
    """Seconds of chaos after the rollout commit; then the fleet is left to settle."""

    def describe(self) -> str:
        """One line: what this scenario does."""
        kinds = ",".join(a.kind + (f"@{a.phase}" if a.phase else "") for a in self.actions)
        faults = ";".join(
            f"{d}:{','.join(f'{k}={v}' for k, v in f.items())}" for d, f in self.faults.items()
        )
        return (
            f"seed={self.seed} devices={self.devices} windows={self.windows} "
            f"pause={self.pause} faults=[{faults}] actions=[{kinds}]"
        )


def _name(i: int) -> str:
    return f"r{i + 1:04d}"


def make_scenario(seed: int, *, duration: float = 25.0) -> Scenario:
    """The scenario of ``seed``: 4-8 devices, 0-3 initial faults, actions through
    ``duration`` seconds."""
    rng = random.Random(seed)
    count = rng.choice([4, 4, 6, 6, 8])
    names = [_name(i) for i in range(count)]
    # Health degradation is the fault whose mishandling hurts most: it weighs double.
    faults = {
        device: dict(rng.choice([*FAULTS, {"degrade_after_upgrade": True}]))
        for device in rng.sample(names, rng.randint(0, 3))
    }
    actions: list[Action] = []
    at = rng.uniform(0.5, 2.0)
    weights = [w for _, w in _ACTIONS]
    staged = random.Random(f"{seed}:config")
    while at < duration:
        kind = rng.choices([k for k, _ in _ACTIONS], weights)[0]
        device = rng.choice(names)
        changes: dict[str, Any] = {}
        if kind == "fault":
            changes = dict(rng.choice(FAULTS))
            clear = {k: _TRANSIENT[k] for k in changes if k in _TRANSIENT}
            if clear:
                # A transient fault clears again a few seconds later.
                actions.append(Action(at + rng.uniform(1.0, 5.0), "fault", device, clear))
        phase = rng.choice(KILL_PHASES) if kind == "sigkill-in" else ""
        if kind == "config" and staged.random() < 0.5:
            phase = "stage"
        actions.append(Action(at, kind, device, changes, phase))
        at += rng.uniform(0.5, 3.0)
    return Scenario(
        seed=seed,
        devices=count,
        boot_seconds=round(rng.uniform(0.3, 1.5), 2),
        windows=rng.choice(["open", "open", "short", "deny"]),
        pause=rng.choice(["0s", "0s", "3s"]),
        faults=faults,
        actions=tuple(sorted(actions, key=lambda a: a.at)),
        duration=duration,
    )
