"""A pacing bandwidth limiter shared by fetches and the distribution server."""

from __future__ import annotations

from reconciler.clock import Clock

__all__ = ["Throttle"]


class Throttle:
    """Paces bytes to ``rate`` per second; one instance shared by many streams caps them all.

    ``burst`` seconds of credit let short bursts through without a sleep per chunk.
    """

    def __init__(self, rate: int, clock: Clock, *, burst: float = 0.25) -> None:
        if rate <= 0:
            raise ValueError("a bandwidth limit must be positive")
        self.rate = rate
        self._clock = clock
        self._burst = burst
        self._free_at = clock.monotonic()
        self.consumed = 0
        """Bytes accounted so far: every byte a capped path moved went through here."""

    async def consume(self, nbytes: int) -> None:
        """Account for ``nbytes`` and sleep until they fit within the rate."""
        now = self._clock.monotonic()
        self.consumed += nbytes
        # Reserve the slot before sleeping, so concurrent callers queue behind each other.
        self._free_at = max(self._free_at, now) + nbytes / self.rate
        wait = self._free_at - now - self._burst
        if wait > 0:
            await self._clock.sleep(wait)
