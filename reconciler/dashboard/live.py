"""The state version: a counter the daemon bumps on every change the dashboard shows.

Pages are cached per version, and ``/ui/events`` streams an update when it moves. Waiting is
bounded (callers pass a timeout) and :meth:`Changes.close` ends every stream, so a daemon
stopping is never held up by an open browser tab.
"""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["Changes"]


class Changes:
    """A monotonic version with a wake-up for waiters."""

    def __init__(self) -> None:
        self.version = 0
        self.closed = False
        self._moved = asyncio.Event()

    def bump(self) -> None:
        """Something visible changed."""
        self.version += 1
        self._moved.set()
        self._moved = asyncio.Event()

    def close(self) -> None:
        """The daemon stops: live streams end."""
        self.closed = True
        self.bump()

    async def wait(self, seen: int | None, seconds: float) -> None:
        """Return when the version differs from ``seen``, or after ``seconds``."""
        if self.version != seen:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._moved.wait(), seconds)
