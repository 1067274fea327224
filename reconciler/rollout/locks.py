"""Device locks shared by every rollout of one daemon: one actor per device, by construction."""

from __future__ import annotations

from collections import Counter

__all__ = ["DeviceLocks"]


class DeviceLocks:
    """Devices some rollout drives now, whatever its policy, and their redundancy groups.

    A device is taken before precheck and given back at a terminal phase (or when its run
    stops before disrupting it). No device is taken twice, and no device is taken while
    another member of its redundancy group is held.
    """

    def __init__(self) -> None:
        self._held: dict[str, str | None] = {}
        self._groups: Counter[str] = Counter()

    def acquire(self, device: str, group: str | None) -> bool:
        """Take ``device``; False when it, or a member of its group, is already held."""
        if device in self._held or (group is not None and self._groups[group]):
            return False
        self._held[device] = group
        if group is not None:
            self._groups[group] += 1
        return True

    def release(self, device: str) -> None:
        """Give ``device`` back (a no-op when it is not held)."""
        if device not in self._held:
            return
        group = self._held.pop(device)
        if group is not None:
            self._groups[group] -= 1
            if not self._groups[group]:
                del self._groups[group]

    def held(self) -> frozenset[str]:
        """The devices held now."""
        return frozenset(self._held)
