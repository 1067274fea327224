"""Supervision of the daemon's background loops: log a death, restart with backoff.

A loop that raises (or returns, which a loop never should) is logged and marked down;
it is restarted after a delay that doubles on each death, up to a ceiling, and starts
over from the floor once the loop has stayed up longer than the ceiling. ``/healthz``
reports :attr:`Supervisor.down`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable

from reconciler.clock import Clock
from reconciler.sanitize import redact

__all__ = ["Loop", "Supervisor"]

log = logging.getLogger("gitfirm.daemon")

Loop = Callable[[], Awaitable[None]]


class Supervisor:
    """Runs named loops forever; which are down and how often each died."""

    def __init__(
        self,
        clock: Clock,
        *,
        backoff: float = 1.0,
        ceiling: float = 60.0,
        secrets: Callable[[], tuple[str, ...]] = tuple,
    ) -> None:
        self.clock = clock
        self.backoff = backoff
        self.ceiling = ceiling
        self._secrets = secrets
        self.down: set[str] = set()
        self.deaths: Counter[str] = Counter()

    async def supervise(self, name: str, loop: Loop) -> None:
        """Run ``loop`` until cancelled, restarting it with backoff whenever it ends."""
        delay = self.backoff
        while True:
            started = self.clock.monotonic()
            try:
                await loop()
                why = "returned"
            except Exception as exc:  # whatever kills a loop, the daemon goes on
                why = redact(f"{type(exc).__name__}: {exc}", self._secrets())
            if self.clock.monotonic() - started > self.ceiling:
                delay = self.backoff
            self.down.add(name)
            self.deaths[name] += 1
            log.error(
                "%s loop stopped (%s); restarting in %.1fs",
                name,
                why,
                delay,
                extra={"event": "loop-died", "loop": name, "reason": why},
            )
            await self.clock.sleep(delay)
            delay = min(delay * 2, self.ceiling)
            self.down.discard(name)
            log.info("%s loop restarted", name, extra={"event": "loop-restarted", "loop": name})

    def task(self, name: str, loop: Loop) -> asyncio.Task[None]:
        """:meth:`supervise` as a task named after the loop."""
        return asyncio.create_task(self.supervise(name, loop), name=f"loop:{name}")
