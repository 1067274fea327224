"""The chaos suite's invariant checker: pure functions over what one scenario left behind.

A :class:`ChaosRecord` holds plain data: the simulator's normalized event log
(:mod:`reconciler.simulator.events`, wall-clock times), each device's redundancy group,
windows and starting image, its final state, the status branch (phase per device and every
``Device``/``Phase`` trailer pair) and the daemon's ``transition`` log lines. :func:`check`
returns every :class:`Violation` of the safety promises:

- ``double-add``: more than one image add per device, per version (hop), per revision, or an
  add of an image the device already holds. One re-add is allowed per daemon stop that
  lies between a failed add and its re-add: the stopped process may never have seen the
  failure, and the next one rightly tries again;
- ``redundancy``: both members of a redundancy group down (rebooting or dead) at once, or
  both in flight at once (by the daemon's transitions, from ``precheck`` to a terminal
  phase; a device that never reaches one stays in flight, unless a daemon stop finds it
  before its disruptive steps: the next process starts it over);
- ``window``: a disruptive step (a reboot into a new image, or on 1.3/1.4, where the add
  arms the next boot, an image add) outside an allow window or inside a deny window;
- ``failed-gate``: a device that can be rolled back over the API left on the new image
  with its health gate failing;
- ``phase-facts``: a final phase that disagrees with the device (``done`` on the wrong
  image or with its gate failing; still in flight after the fleet went quiet);
- ``missing-transition``: a terminal transition the daemon logged that the status branch
  never recorded (in a commit's ``Device``/``Phase`` trailers, in the events of any
  commit's ``rollouts/<policy>.yaml``, or as the device's current phase);
- ``lost-config``: a saved operator change missing from the device's final configuration
  (unless it was saved on a new image that the device then rolled back from: the old
  image boots its own config);
- ``no-halt``: a device started (``pending->precheck``) in a rollout and revision after
  another device of it failed (the scenarios' policies halt on the first failure).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from reconciler.model.kinds import Window
from reconciler.planning.windows import is_allowed

__all__ = [
    "IN_FLIGHT",
    "ROLLBACK_FAMILIES",
    "ChaosRecord",
    "ConfigMark",
    "DeviceFinal",
    "Violation",
    "check",
]

IN_FLIGHT = frozenset(
    {"precheck", "backup", "stage", "activate", "await-boot", "verify", "health", "rollback",
     "verify-rollback"}
)  # fmt: skip
"""Phases in which the daemon owns the device (DESIGN.md's state machine)."""
TERMINAL = frozenset({"done", "failed"})
UNDISRUPTED = frozenset({"precheck", "backup", "stage"})
"""In-flight phases before any disruptive step; a restarted daemon starts these over."""
ROLLBACK_FAMILIES = frozenset({"1.5"})
"""Families that can set the default boot image back over the API (1.3/1.4 cannot)."""
ARMING_FAMILIES = frozenset({"1.3", "1.4"})
"""Families whose ``/image add`` makes the new image the default boot at once."""
WINDOW_SLACK = 0.25
"""Seconds of clock slack between the daemon's decision and the simulator's record."""
REBOOT_RACE = 2.0
"""A config change this close before a reboot may be lost: nothing can save it in time."""


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken promise, with enough detail to find it in the logs."""

    kind: str
    device: str
    detail: str

    def line(self) -> str:
        """One line for the runner's output."""
        return f"{self.kind} device={self.device} {self.detail}"


@dataclass(frozen=True, slots=True)
class ConfigMark:
    """An operator's saved change: ``set path... value`` then ``save``, at ``wall``."""

    device: str
    path: tuple[str, ...]
    value: str
    wall: float


@dataclass(frozen=True, slots=True)
class DeviceFinal:
    """A device as the simulator left it."""

    running: str
    dead: bool = False
    bgp_down: bool = False
    config: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class ChaosRecord:
    """Everything one scenario left behind (plain data, see the module docstring)."""

    events: list[dict[str, Any]]
    families: dict[str, str]
    """Device -> API family at the start."""
    initial: dict[str, list[str]]
    """Device -> installed images at the start, the running one last."""
    final: dict[str, DeviceFinal]
    groups: dict[str, str] = field(default_factory=dict)
    windows: dict[str, list[Window]] = field(default_factory=dict)
    status_phases: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    """Device -> (phase, desired version) from the status branch's devices/<name>.yaml."""
    status_transitions: set[tuple[str, str]] = field(default_factory=set)
    """(device, phase reached) from every Device/Phase trailer pair on the status branch."""
    status_events: set[tuple[str, str]] = field(default_factory=set)
    """(device, phase reached) from the events of every commit's rollouts/<policy>.yaml."""
    transitions: list[dict[str, Any]] = field(default_factory=list)
    """The daemon's transition log lines: device, phase ("a->b"), revision, wall."""
    stops: list[float] = field(default_factory=list)
    """Wall times at which a daemon process was sent SIGKILL or SIGTERM."""
    marks: list[ConfigMark] = field(default_factory=list)
    boot_seconds: float = math.inf
    """How long a reboot takes in the simulator (its boot events may be recorded late)."""
    quiescent: bool = True
    """Whether the fleet went quiet at the end: no event and no transition for longer than
    any one step takes, while the allow window fits a step (so nothing waits for one)."""


def check(record: ChaosRecord) -> list[Violation]:
    """Every violation in ``record``, grouped by invariant."""
    return [
        *_image_adds(record),
        *_redundancy(record),
        *_windows(record),
        *_failed_gates(record),
        *_phase_facts(record),
        *_missing_transitions(record),
        *_lost_config(record),
        *_halts(record),
    ]


def _by_device(events: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        out[event["device"]].append(event)
    return out


def _revision_at(record: ChaosRecord, device: str, wall: float) -> str:
    """The revision of the device's last transition before ``wall`` ("?" if none)."""
    revision = "?"
    for t in record.transitions:
        if t["device"] == device and t["wall"] <= wall + WINDOW_SLACK:
            revision = str(t["revision"])
    return revision


def _image_adds(record: ChaosRecord) -> list[Violation]:
    found = []
    for device, events in _by_device(record.events).items():
        installed = set(record.initial.get(device, []))
        # Version -> when its add started: still running, or failed since.
        pending: dict[str, float] = {}
        failed: dict[str, float] = {}
        used: set[float] = set()  # stops that already excused a re-add
        per_hop: Counter[tuple[str, str]] = Counter()
        for e in events:
            name = str(e.get("name", ""))
            if e["event"] == "image-installed":
                installed.add(name)
                pending.pop(name, None)
            elif e["event"] == "image-add-failed":
                failed.update(pending)
                pending.clear()
            elif e["event"] == "image-delete":
                installed.discard(name)
            elif e["event"] == "image-add" and (version := e.get("version")):
                revision = _revision_at(record, device, e["wall"])
                stop = _stop_between(record.stops, used, failed.pop(version, None), e["wall"])
                if stop is not None and version not in installed | set(pending):
                    used.add(stop)  # the next process retries an add the stopped one lost
                else:
                    per_hop[version, revision] += 1
                why = (
                    "while it is installed"
                    if version in installed
                    else "while another add of it runs"
                    if version in pending
                    else f"#{per_hop[version, revision]} in revision {revision[:12]}"
                    if per_hop[version, revision] > 1
                    else None
                )
                if why:
                    found.append(Violation("double-add", device, f"add of {version} {why}"))
                pending[version] = e["wall"]
    return found


def _stop_between(
    stops: Sequence[float], used: set[float], since: float | None, until: float
) -> float | None:
    """A daemon stop after ``since`` and before ``until`` not yet used to excuse a re-add."""
    if since is None:
        return None
    return next((s for s in sorted(stops) if since < s < until and s not in used), None)


def _down_spans(events: Sequence[dict[str, Any]], boot: float) -> list[tuple[float, float]]:
    # The simulator records a boot when it next sees the device: at most ``boot`` after it.
    spans, since = [], None
    for e in events:
        if e["event"] in ("reboot", "poweroff") and since is None:
            since = e["wall"]
        if e["event"] == "poweroff" or (e["event"] == "boot-fail" and e.get("outcome") == "never"):
            break
        if e["event"] == "boot-ok" and since is not None:
            spans.append((since, min(e["wall"], since + boot)))
            since = None
    if since is not None:
        spans.append((since, math.inf))
    return spans


def _flight_spans(record: ChaosRecord) -> dict[str, list[tuple[float, float]]]:
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    since: dict[str, float] = {}
    phase: dict[str, str] = {}
    stops = sorted(record.stops)
    for t in sorted(record.transitions, key=lambda t: t["wall"]):
        while stops and stops[0] <= t["wall"]:
            # A stopped daemon drives nothing: a device it left before the disruptive steps
            # starts over (from pending) in the next process, so it is not in flight.
            stop = stops.pop(0)
            for device in [d for d in since if phase.get(d) in UNDISRUPTED]:
                spans[device].append((since.pop(device), stop))
        device, to = str(t["device"]), str(t["phase"]).rpartition("->")[2]
        phase[device] = to
        if to in IN_FLIGHT:
            since.setdefault(device, t["wall"])
        elif device in since:
            spans[device].append((since.pop(device), t["wall"]))
    for device, start in since.items():
        spans[device].append((start, math.inf))
    return spans


def _redundancy(record: ChaosRecord) -> list[Violation]:
    members: dict[str, list[str]] = defaultdict(list)
    for device, group in sorted(record.groups.items()):
        members[group].append(device)
    boot = record.boot_seconds
    down = {d: _down_spans(evs, boot) for d, evs in _by_device(record.events).items()}
    flight = _flight_spans(record)
    found = []
    for group, devices in members.items():
        for i, a in enumerate(devices):
            for b in devices[i + 1 :]:
                for what, spans in (("down", down), ("in flight", flight)):
                    found += [
                        Violation(
                            "redundancy",
                            a,
                            f"{a} and {b} of {group} both {what} from {_clock(max(a0, b0))}",
                        )
                        for a0, a1 in spans.get(a, [])
                        for b0, b1 in spans.get(b, [])
                        if a0 < b1 and b0 < a1
                    ]
    return found


def _clock(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).strftime("%H:%M:%S.%f")[:-3]


def _allowed(windows: Sequence[Window], wall: float) -> bool:
    moments = (wall, wall - WINDOW_SLACK)
    return any(is_allowed(windows, datetime.fromtimestamp(m, UTC)) for m in moments)


def _windows(record: ChaosRecord) -> list[Violation]:
    found = []
    for e in record.events:
        device = e["device"]
        initial = record.initial.get(device, [""])[-1]
        family = record.families.get(device, "")
        if e["event"] == "reboot" and e.get("image") != initial:
            step = f"reboot into {e.get('image')}"
        elif e["event"] == "image-add" and family in ARMING_FAMILIES:
            step = f"image add of {e.get('version')} (arms the next boot on {family})"
        else:
            continue
        if not _allowed(record.windows.get(device, []), e["wall"]):
            found.append(Violation("window", device, f"{step} at {_clock(e['wall'])}"))
    return found


def _failed_gates(record: ChaosRecord) -> list[Violation]:
    found = []
    for device, final in sorted(record.final.items()):
        initial = record.initial.get(device, [""])[-1]
        if record.families.get(device) not in ROLLBACK_FAMILIES or final.dead:
            continue
        if final.running != initial and final.bgp_down:
            found.append(
                Violation(
                    "failed-gate",
                    device,
                    f"left on {final.running} with BGP down (started on {initial})",
                )
            )
    return found


def _phase_facts(record: ChaosRecord) -> list[Violation]:
    found = []
    for device, (phase, desired) in sorted(record.status_phases.items()):
        final = record.final.get(device)
        if final is None:
            continue
        if phase == "done" and desired and final.running != desired:
            found.append(
                Violation("phase-facts", device, f"done for {desired} but runs {final.running}")
            )
        elif phase == "done" and final.bgp_down:
            found.append(
                Violation("phase-facts", device, f"done on {final.running} with its gate failing")
            )
        elif phase in IN_FLIGHT and record.quiescent:
            found.append(
                Violation("phase-facts", device, f"still {phase} after the fleet went quiet")
            )
    return found


def _missing_transitions(record: ChaosRecord) -> list[Violation]:
    found, seen = [], set()
    for t in record.transitions:
        to = str(t["phase"]).rpartition("->")[2]
        key = (str(t["device"]), to)
        if to not in TERMINAL or key in seen:
            continue
        seen.add(key)
        recorded = key in record.status_transitions or key in record.status_events
        current = record.status_phases.get(key[0], ("", None))[0] == to
        if not (recorded or current):
            found.append(
                Violation(
                    "missing-transition",
                    key[0],
                    f"{t['phase']} (revision {str(t['revision'])[:12]}) not on the status branch",
                )
            )
    return found


def _lookup(config: Mapping[str, Any], path: Sequence[str]) -> Any:
    node: Any = config
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _lost_config(record: ChaosRecord) -> list[Violation]:
    events = _by_device(record.events)
    latest: dict[tuple[str, tuple[str, ...]], ConfigMark] = {}
    for mark in sorted(record.marks, key=lambda m: m.wall):
        latest[mark.device, mark.path] = mark
    found = []
    for mark in latest.values():
        final = record.final.get(mark.device)
        if final is None or final.dead:
            continue
        reboots = [e for e in events[mark.device] if e["event"] == "reboot"]
        racing = any(0 <= r["wall"] - mark.wall <= REBOOT_RACE for r in reboots)
        rolled_back = _rolled_back_after(record, events[mark.device], mark.wall)
        if not (racing or rolled_back) and _lookup(final.config, mark.path) != mark.value:
            found.append(
                Violation(
                    "lost-config",
                    mark.device,
                    f"{' '.join(mark.path)} {mark.value} saved at {_clock(mark.wall)} is gone",
                )
            )
    return found


def _rolled_back_after(record: ChaosRecord, events: Sequence[dict[str, Any]], wall: float) -> bool:
    """Whether the device booted, after ``wall``, an image it had run before the one it ran
    at ``wall`` (a rollback from a new image: the old one boots with its own config)."""
    ran = [record.initial.get(events[0]["device"], [""])[-1]] if events else []
    for e in events:
        if e["event"] != "boot-ok":
            continue
        image = str(e.get("image"))
        if e["wall"] > wall:
            if image in ran[: ran.index(ran[-1])]:
                return True
        elif image != ran[-1]:
            ran.append(image)
    return False


def _halts(record: ChaosRecord) -> list[Violation]:
    failed: dict[tuple[str, str], str] = {}
    found = []
    for t in sorted(record.transitions, key=lambda t: t["wall"]):
        run = (str(t.get("rollout", "")), str(t["revision"]))
        if t["phase"] == "pending->precheck" and run in failed:
            found.append(
                Violation(
                    "no-halt",
                    str(t["device"]),
                    f"started in {run[0]} (revision {run[1][:12]}) after {failed[run]} failed",
                )
            )
        elif str(t["phase"]).endswith("->failed"):
            failed.setdefault(run, str(t["device"]))
    return found
