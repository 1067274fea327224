"""Wave assignment for one rollout policy: canary first, then percentage waves.

How a device gets its wave (numbering as in :mod:`reconciler.planning.plan`):

1. **Sticky hash.** Each device gets ``h = sha256(policy name + NUL + device name)``, read
   as a fraction ``u`` in ``[0, 1)`` from its first 8 bytes. It depends on nothing else,
   so adding, removing or changing one device never moves another (except that the set
   of canaries can gain or lose the one device whose hash is lowest).
2. **Canary (wave 0).** The ``strategy.canary`` devices with the lowest ``u``, taking at
   most one member of any redundancy group.
3. **Percentage waves (1..N).** ``strategy.waves`` are cumulative percentages of the rest:
   a device goes to the first wave ``i`` with ``u < waves[i] / 100``. Wave sizes are thus
   proportional to the percentages on average, not exact, in exchange for stickiness.
4. **Redundancy groups apart.** Inside a group, members are taken in hash order; a member
   whose wave already holds (or whose group already has a canary in) another member moves
   to the next later free wave, else to the nearest earlier free one. When a group has
   more members than waves the clash stays and is noted (the engine still never runs two
   members at once).
5. **Order inside a wave.** After the canary, risk first: the most exposed devices
   (worst advisory on the running version) lead their wave. Then least loaded
   (``health.load1``), then lowest RTT (``rtt_ms``), then name; devices without a figure
   go after those with one.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from reconciler.model.kinds import RolloutStrategy

__all__ = ["Assignment", "Candidate", "assign_waves", "sticky_fraction"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A device that takes part in a policy's waves, with the figures used for ordering."""

    name: str
    redundancy_group: str | None = None
    load1: float | None = None
    rtt_ms: float | None = None
    exposure: int = 0
    """The severity rank of the worst advisory affecting its running version."""


@dataclass(frozen=True, slots=True)
class Assignment:
    """Where one device goes: ``wave``, 1-based ``order`` inside it, and notes."""

    wave: int
    order: int
    notes: tuple[str, ...] = ()


def sticky_fraction(policy: str, device: str) -> float:
    """The device's stable position in ``[0, 1)`` for this policy."""
    digest = hashlib.sha256(f"{policy}\0{device}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _percentage_wave(fraction: float, waves: Sequence[int]) -> int:
    for index, percent in enumerate(waves, start=1):
        if fraction < percent / 100:
            return index
    return len(waves)


def _free_wave(wanted: int, used: set[int], count: int) -> int | None:
    later = [w for w in range(wanted + 1, count + 1) if w not in used]
    earlier = [w for w in range(wanted - 1, 0, -1) if w not in used]
    choices = later or earlier
    return choices[0] if choices else None


def assign_waves(
    policy: str, strategy: RolloutStrategy, candidates: Sequence[Candidate]
) -> dict[str, Assignment]:
    """Assign every candidate a wave and an order (see the module docstring)."""
    fraction = {c.name: sticky_fraction(policy, c.name) for c in candidates}
    by_hash = sorted(candidates, key=lambda c: (fraction[c.name], c.name))
    percentages = strategy.waves or [100]
    wave: dict[str, int] = {}
    notes: dict[str, list[str]] = defaultdict(list)

    canary_groups: set[str] = set()
    for c in by_hash:
        if sum(1 for w in wave.values() if w == 0) >= strategy.canary:
            break
        if c.redundancy_group is not None:
            if c.redundancy_group in canary_groups:
                continue
            canary_groups.add(c.redundancy_group)
        wave[c.name] = 0
    for c in by_hash:
        wave.setdefault(c.name, _percentage_wave(fraction[c.name], percentages))

    groups: dict[str, list[Candidate]] = defaultdict(list)
    for c in by_hash:
        if c.redundancy_group is not None:
            groups[c.redundancy_group].append(c)
    for group, members in sorted(groups.items()):
        used: set[int] = set()
        for c in members:
            if wave[c.name] in used:
                moved = _free_wave(wave[c.name], used, len(percentages))
                if moved is None:
                    notes[c.name].append(
                        f"shares wave {wave[c.name]} with another member of redundancy group "
                        f"{group}: the group has more members than waves"
                    )
                else:
                    notes[c.name].append(
                        f"moved from wave {wave[c.name]} to {moved} to keep redundancy group "
                        f"{group} apart"
                    )
                    wave[c.name] = moved
            used.add(wave[c.name])

    inf = float("inf")
    ordered = sorted(
        candidates,
        key=lambda c: (
            wave[c.name],
            0 if wave[c.name] == 0 else -c.exposure,
            inf if c.load1 is None else c.load1,
            inf if c.rtt_ms is None else c.rtt_ms,
            c.name,
        ),
    )
    result: dict[str, Assignment] = {}
    position: dict[int, int] = defaultdict(int)
    for c in ordered:
        position[wave[c.name]] += 1
        result[c.name] = Assignment(wave[c.name], position[wave[c.name]], tuple(notes[c.name]))
    return result
