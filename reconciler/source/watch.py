"""Development trigger: watch a local working copy and wake the poller on any change.

Only for a repository given as a local path. A commit updates files under ``.git``, an edit
updates the working tree; either wakes the poller, which then fetches and decides on its own
whether a new commit exists (uncommitted edits are never loaded). Events are debounced, so
saving many files at once gives one wake-up.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import watchfiles

__all__ = ["wake_on_changes", "watch_working_copy"]


async def watch_working_copy(
    path: Path, *, stop: asyncio.Event | None = None, debounce_ms: int = 300
) -> AsyncIterator[set[str]]:
    """Yield the set of changed paths under ``path`` after each debounced burst of changes.

    Ends when ``stop`` is set (checked at least every 200 ms).
    """
    # watch_filter=None: the default filter drops .git, where commits show up.
    async for changes in watchfiles.awatch(
        path, watch_filter=None, debounce=debounce_ms, stop_event=stop, rust_timeout=200
    ):
        yield {changed for _, changed in changes}


async def wake_on_changes(
    path: Path, wake: Callable[[], None], *, stop: asyncio.Event | None = None
) -> None:
    """Call ``wake()`` after every burst of changes under ``path`` until ``stop`` is set."""
    async for _ in watch_working_copy(path, stop=stop):
        wake()
