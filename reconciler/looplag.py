"""A loop-lag probe: how long the event loop was blocked, seen from a sleeper it wakes late.

Every ``interval`` the probe asks the loop to wake it; the delay past the asked time is
how long something held the loop (a long callback, CPU-bound code outside a thread). It
measures the process, not the desired state's time, so it uses the loop's own clock and
``asyncio.sleep`` even when the daemon runs on a fake :class:`~reconciler.clock.Clock`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["LoopLag"]


class LoopLag:
    """Reports every wake-up's lateness (seconds) to ``sink`` and keeps the longest."""

    def __init__(self, sink: Callable[[float], None], *, interval: float = 0.05) -> None:
        self._sink = sink
        self._interval = interval
        self.longest = 0.0

    async def run(self) -> None:
        """Probe until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + self._interval
            await asyncio.sleep(self._interval)
            late = max(0.0, loop.time() - asked)
            self.longest = max(self.longest, late)
            self._sink(late)
