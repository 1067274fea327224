"""The poll loop: the source of truth for "is there a new revision?".

Webhooks get lost, so the poller fetches every ``interval`` seconds (jittered, so a fleet of
daemons does not hit the forge in lock-step) whatever else happens. Webhooks and the
watchfiles watcher only call :meth:`Poller.wake`, which cuts the current wait short; they
never say *what* changed. Each fetch runs in a worker thread, off the event loop.

A fetched head that differs from the last one becomes a :class:`Revision` only when it changes
a desired-state path (:class:`~reconciler.source.paths.PathFilter`); otherwise it is
remembered and skipped. Fetch failures are logged (sanitized) and kept in ``last_error``;
the loop carries on at the next interval.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from reconciler.clock import Clock
from reconciler.errors import ErrorSummary, SourceError, summarize
from reconciler.source.paths import DEFAULT_PATH_FILTER, PathFilter

__all__ = ["PollSettings", "Poller", "Revision", "Syncable"]

log = logging.getLogger("gitfirm.source.poller")


class Syncable(Protocol):
    """What the poller fetches from: a :class:`~reconciler.source.git.Mirror` in practice."""

    def sync(self) -> str:
        """Fetch, and return the branch head SHA."""
        ...

    def changed_files(self, old: str | None, new: str) -> list[str]:
        """Paths that differ between two revisions (all of ``new``'s when ``old`` is None)."""
        ...


@dataclass(frozen=True)
class PollSettings:
    """How often to poll, and what counts as a change."""

    interval: float = 60.0
    """Seconds between fetches. Polling is the source of truth, so it never turns off; a
    minute keeps the forge's load low while webhooks give the fast path."""
    jitter: float = 0.1
    """Each wait is ``interval`` times a random factor in ``[1 - jitter, 1 + jitter]``."""
    path_filter: PathFilter = field(default_factory=lambda: DEFAULT_PATH_FILTER)
    """Which changed paths trigger work (see :mod:`reconciler.source.paths`)."""


@dataclass(frozen=True)
class Revision:
    """A new head that changes desired state.

    ``previous`` is the head seen before (``None`` on the first fetch); ``changed`` lists
    the desired-state paths that differ from it (every one of them on the first fetch).
    """

    sha: str
    previous: str | None
    changed: tuple[str, ...]


class Poller:
    """Fetches on an interval or when woken, and yields new :class:`Revision` values."""

    def __init__(
        self,
        source: Syncable,
        clock: Clock,
        settings: PollSettings | None = None,
        *,
        last: str | None = None,
        rng: random.Random | None = None,
        secrets: tuple[str, ...] = (),
    ) -> None:
        self._source = source
        self._clock = clock
        self.settings = settings or PollSettings()
        self.last = last
        self.last_error: ErrorSummary | None = None
        self.fetches = 0
        self.fetch_failures = 0
        self._rng = rng or random.Random()
        self._secrets = secrets
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Fetch now instead of at the end of the interval (safe to call often)."""
        self._wake.set()

    def next_delay(self) -> float:
        """The next wait: the interval with jitter applied."""
        jitter = self.settings.jitter
        return self.settings.interval * (1.0 + self._rng.uniform(-jitter, jitter))

    async def poll_once(self) -> Revision | None:
        """Fetch once; return a revision when the head moved and changed desired state."""
        self.fetches += 1
        try:
            head = await asyncio.to_thread(self._source.sync)
            if head == self.last:
                self.last_error = None
                return None
            changed = await asyncio.to_thread(self._source.changed_files, self.last, head)
        except SourceError as exc:
            self.fetch_failures += 1
            self.last_error = summarize(exc, self._secrets)
            log.warning("fetch failed: %s", self.last_error.message)
            return None
        self.last_error = None
        previous, self.last = self.last, head
        relevant = tuple(self.settings.path_filter.relevant(changed))
        if previous is not None and not relevant:
            log.info("revision %s changes no desired-state path; skipped", head[:12])
            return None
        return Revision(sha=head, previous=previous, changed=relevant)

    async def revisions(self) -> AsyncIterator[Revision]:
        """Poll forever, yielding each new revision; cancel the consumer to stop."""
        while True:
            revision = await self.poll_once()
            if revision is not None:
                yield revision
            await self._wait()

    async def _wait(self) -> None:
        if not self._wake.is_set():
            sleeper = asyncio.ensure_future(self._clock.sleep(self.next_delay()))
            waker = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (sleeper, waker):
                    task.cancel()
                await asyncio.gather(sleeper, waker, return_exceptions=True)
        self._wake.clear()
