"""The status writer: snapshot in, at most one commit per interval out, pushed without loss.

- A commit is made only when the generated files change (a state change), never for a
  heartbeat; :meth:`StatusWriter.submit` plus :meth:`StatusWriter.run` coalesce bursts into
  at most one commit per ``coalesce_seconds`` of the injected clock.
- On a rejected push the writer fetches, resets hard to the remote branch, regenerates its
  own files from the in-memory snapshot, commits and pushes again, with bounded jittered
  retries. Generated text is never merged or rebased; files it does not own survive.
- Rollout outcomes become notes on the desired commit under ``refs/notes/gitfirm``,
  pushed with the same retry rule.

Git runs in a worker thread (``asyncio.to_thread``) so the event loop never blocks on it.
A commit renders and writes only the files whose snapshot entry changed
(:class:`~reconciler.report.tree.StatusTree`); the tree is re-read from disk after every
sync and after any failure, so what it holds is always what the checkout holds.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from reconciler.clock import Clock
from reconciler.errors import ErrorSummary, PushRejected, ReportError, summarize
from reconciler.gitbot import GitIdentity
from reconciler.report.gitstore import GitStore, PushOutcome
from reconciler.report.index import SHARDS_DIR, read_rows, render_index
from reconciler.report.message import commit_message
from reconciler.report.render import render_note
from reconciler.report.snapshot import RolloutStatus, StatusSnapshot
from reconciler.report.tree import StatusTree

__all__ = ["StatusWriter", "WriteResult", "WriterSettings"]


@dataclass(frozen=True, slots=True)
class WriterSettings:
    """Where and how status is written. Defaults suit one daemon per status branch."""

    remote: str
    """URL or path of the config repository (the status branch lives beside ``main``)."""
    workdir: Path
    """The writer's own clone; anything in it may be reset at any time."""
    branch: str = "status"
    """Branch for status files; nothing on it is a trigger."""
    identity: GitIdentity = field(default_factory=GitIdentity)
    """Bot author and committer, and the optional SSH signing key."""
    coalesce_seconds: float = 10.0
    """At most one status commit per this many seconds: bursts of transitions share one."""
    push_attempts: int = 5
    """Pushes tried before :class:`~reconciler.errors.PushRejected`; races are short."""
    retry_base_seconds: float = 0.5
    """First retry delay bound; doubles each attempt, with full jitter, so writers spread."""
    retry_max_seconds: float = 8.0
    """Upper bound of one retry delay."""
    notes_ref: str = "refs/notes/gitfirm"
    """Ref holding rollout-outcome notes on desired commits."""
    git_timeout_seconds: float = 120.0
    """Longest one git command may take before the write fails (and is retried later)."""
    shard: str | None = None
    """With a shard name, files go below ``shards/<shard>/`` and the root README becomes
    the index of every shard (several instances share the branch; see report.index)."""


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one write did: ``commit`` is the new commit (None when nothing changed)."""

    commit: str | None
    pushed: bool
    attempts: int
    error: ErrorSummary | None = None
    seconds: float = 0.0
    """Time the write took on the injected clock (render, commit and every push)."""


ResultSink = Callable[[WriteResult], Awaitable[None] | None]


class StatusWriter:
    """The only writer of one status branch."""

    def __init__(
        self,
        settings: WriterSettings,
        *,
        clock: Clock,
        secrets: Iterable[str] = (),
        rng: random.Random | None = None,
        on_result: ResultSink | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._secrets = tuple(secrets)
        self._rng = rng or random.Random()
        self._on_result = on_result
        self.store = GitStore(
            settings.workdir,
            settings.remote,
            settings.branch,
            settings.identity,
            notes_ref=settings.notes_ref,
            timeout=settings.git_timeout_seconds,
            secrets=self._secrets,
            folder=f"{SHARDS_DIR}/{settings.shard}" if settings.shard else "",
        )
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._pending: StatusSnapshot | None = None
        self._latest: StatusSnapshot | None = None
        self._not_before = float("-inf")
        self._notes: list[tuple[str, str]] = []
        self._opened = False
        self._tree = StatusTree(self._secrets)
        self._tree_fresh = False

    def __repr__(self) -> str:
        return f"StatusWriter(branch={self.settings.branch!r}, workdir={self.store.root!s})"

    async def open(self) -> None:
        """Clone or refresh the status branch (created as an orphan when absent)."""
        async with self._lock:
            await self._open()

    async def _open(self) -> None:
        self._tree_fresh = False
        await asyncio.to_thread(self.store.open)
        self._opened = True

    async def _sync(self) -> None:
        self._tree_fresh = False
        await asyncio.to_thread(self.store.sync)

    # -- coalesced writes ---------------------------------------------------------------------

    def submit(self, snapshot: StatusSnapshot) -> None:
        """Hand over the newest state; :meth:`run` writes it when the interval allows."""
        self._pending = snapshot
        self._wake.set()

    async def run(self) -> None:
        """Write submitted snapshots forever, at most one commit per interval."""
        while True:
            await self._wake.wait()
            delay = self._not_before - self._clock.monotonic()
            if delay > 0:
                await self._clock.sleep(delay)
            await self.flush()

    async def flush(self) -> WriteResult | None:
        """Write the pending snapshot now (also at shutdown); None when nothing is pending."""
        self._wake.clear()
        snapshot, self._pending = self._pending, None
        if snapshot is None:
            return None
        started = self._clock.monotonic()
        try:
            result = await self.write(snapshot)
            result = replace(result, seconds=self._clock.monotonic() - started)
        except ReportError as exc:
            # Keep it pending (unless newer state came in) and try again after an interval.
            if self._pending is None:
                self._pending = snapshot
                self._wake.set()
            self._not_before = self._clock.monotonic() + self.settings.coalesce_seconds
            result = WriteResult(None, False, 0, summarize(exc, self._secrets))
        await self._emit(result)
        return result

    async def drain(self) -> None:
        """Return once every submitted snapshot is written (or failed): for shutdown, so
        the last state is never lost in a write that :meth:`run` had in progress."""
        for _ in range(100):  # bounded: each turn writes or waits out one write
            async with self._lock:
                pass
            if self._pending is None and not self._lock.locked():
                return
            await self.flush()

    async def _emit(self, result: WriteResult) -> None:
        if self._on_result is not None:
            outcome = self._on_result(result)
            if outcome is not None:
                await outcome

    # -- one write ------------------------------------------------------------------------------

    def _commit(self, snapshot: StatusSnapshot) -> str | None:
        """Write the files ``snapshot`` changes and commit them; None when nothing changed."""
        if not self._tree_fresh:
            self._tree.load(self.store.read_owned())
            self._tree_fresh = True
        try:
            change = self._tree.change(snapshot)
            # Links that sync dropped from an untrusted branch leave it in a commit even when
            # every generated file is unchanged.
            if not change.files and not self.store.untrusted:
                return None
            message = commit_message(
                snapshot.desired_revision, change.before, change.after, self._secrets
            )
            self.store.write_files(change.files)
            self._tree.apply(change)
            if self.settings.shard:
                # Regenerated from the branch as it is now, never merged as text.
                self.store.write_top("README.md", render_index(read_rows(self.store)))
            return self.store.commit_if_changed(message, self._clock.now())
        except BaseException:
            self._tree_fresh = False  # the work tree may hold part of the change
            raise

    def _delay(self, attempt: int) -> float:
        cap = min(self.settings.retry_max_seconds, self.settings.retry_base_seconds * 2**attempt)
        return self._rng.uniform(0.0, cap)

    async def write(self, snapshot: StatusSnapshot) -> WriteResult:
        """Commit ``snapshot`` if it changes the branch, and push with regenerate-and-retry.

        Raises :class:`~reconciler.errors.PushRejected` when every attempt lost the race.
        """
        async with self._lock:
            if not self._opened:
                await self._open()
            self._latest = snapshot
            commit = await asyncio.to_thread(self._commit, snapshot)
            attempts = self.settings.push_attempts
            for attempt in range(1, attempts + 1):
                if not await asyncio.to_thread(self.store.ahead):
                    break
                if await asyncio.to_thread(self.store.push) is PushOutcome.PUSHED:
                    self._not_before = self._clock.monotonic() + self.settings.coalesce_seconds
                    return WriteResult(commit, True, attempt)
                if attempt == attempts:
                    raise PushRejected(f"status push rejected {attempts} times; will retry later")
                await self._clock.sleep(self._delay(attempt))
                await self._sync()
                commit = await asyncio.to_thread(self._commit, self._latest)
            return WriteResult(commit, False, 0)

    # -- notes -----------------------------------------------------------------------------------

    def _append_notes(self) -> bool:
        self.store.fetch_notes()
        now = self._clock.now()
        added = [self.store.append_note(rev, text, now) for rev, text in self._notes]
        return any(added)

    async def record_outcome(self, rollout: RolloutStatus) -> None:
        """Append the rollout's outcome as a note on its desired commit, and push the notes.

        Notes not yet pushed are kept in memory and re-applied on the next call.
        """
        self._notes.append((rollout.revision, render_note(rollout, self._secrets)))
        async with self._lock:
            if not self._opened:
                await self._open()
            attempts = self.settings.push_attempts
            for attempt in range(1, attempts + 1):
                if not await asyncio.to_thread(self._append_notes):
                    break  # every note is already on the remote
                if await asyncio.to_thread(self.store.push_notes) is PushOutcome.PUSHED:
                    break
                if attempt == attempts:
                    raise PushRejected(f"notes push rejected {attempts} times; will retry later")
                await self._clock.sleep(self._delay(attempt))
            self._notes.clear()
