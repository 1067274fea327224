"""Supervision of the daemon's background work: loops restarted, failures retried, both
with backoff.

A loop that raises (or returns, which a loop never should) is logged and marked down;
it is restarted after a delay that doubles on each death, up to a ceiling, and starts
over from the floor once the loop has stayed up longer than the ceiling. ``/healthz``
reports :attr:`Supervisor.down`. :class:`RetrySchedule` keeps the same doubling per key
for work that fails transiently (an image fetch).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from reconciler.clock import Clock
from reconciler.sanitize import redact

__all__ = ["Loop", "RetrySchedule", "Supervisor", "first_of"]

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


@dataclass(frozen=True, slots=True)
class _Retry:
    failures: int
    at: float


class RetrySchedule:
    """When each failed key may be tried again: ``floor`` seconds after the first failure,
    doubling with each failure in a row, at most ``ceiling``."""

    def __init__(self, clock: Clock, floor: float, ceiling: float) -> None:
        self.clock = clock
        self.floor = floor
        self.ceiling = ceiling
        self._retries: dict[str, _Retry] = {}

    def failed(self, key: str) -> float:
        """Count a failure; the delay before ``key`` is due again."""
        last = self._retries.get(key)
        failures = last.failures + 1 if last else 1
        delay: float = min(self.floor * 2.0 ** (failures - 1), self.ceiling)
        self._retries[key] = _Retry(failures, self.clock.monotonic() + delay)
        return delay

    def succeeded(self, key: str) -> None:
        """Forget ``key``'s failures."""
        self._retries.pop(key, None)

    def clear(self) -> None:
        """Forget every failure."""
        self._retries.clear()

    def waiting(self) -> set[str]:
        """Keys that failed and are not yet tried again successfully."""
        return set(self._retries)

    def due(self, key: str) -> bool:
        """Whether ``key`` may be tried now (never failed, or its delay passed)."""
        retry = self._retries.get(key)
        return retry is None or retry.at <= self.clock.monotonic()

    def next_in(self) -> float | None:
        """Seconds until the soonest retry (0 when one is due), None without failures."""
        if not self._retries:
            return None
        soonest = min(r.at for r in self._retries.values())
        return max(0.0, soonest - self.clock.monotonic())


async def first_of(*waits: Coroutine[Any, Any, object]) -> None:
    """Wait until the first of ``waits`` ends; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
