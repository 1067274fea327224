"""The poll loop on a FakeClock against a real bare remote and real pushes."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from reconciler.clock import FakeClock
from reconciler.source.git import Mirror
from reconciler.source.paths import PathFilter
from reconciler.source.poller import Poller, PollSettings, Revision
from tests.support.gitrepo import commit_files, push

INTERVAL = 60.0


class CountingMirror(Mirror):
    """A real mirror that counts fetches, so a test can tell a poll happened."""

    syncs = 0

    def sync(self) -> str:
        self.syncs += 1
        return super().sync()


async def _drive(clock: FakeClock, task: asyncio.Task[Revision], *, step: float) -> Revision:
    """Advance fake time by ``step`` until ``task`` is done (10 s of wall time at most)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10.0
    while not task.done():
        assert loop.time() < deadline, "no revision in time"
        await asyncio.wait({task}, timeout=0.02)
        clock.advance(step)
    return task.result()


async def _until(predicate: object, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_first_poll_then_only_desired_state_changes_trigger(
    tmp_path: Path, source_remote: tuple[Path, Path]
) -> None:
    bare, work = source_remote
    clock = FakeClock()
    mirror = CountingMirror(str(bare), tmp_path / "state")
    poller = Poller(mirror, clock, PollSettings(interval=INTERVAL))
    revisions: AsyncIterator[Revision] = poller.revisions()
    first = await asyncio.wait_for(anext(revisions), 10)
    assert first.previous is None
    assert first.changed == ("fleet/r1.yaml",)

    docs = commit_files(work, {"README.md": "more\n", "docs/x.md": "d\n"}, "docs only")
    push(work)
    pending = asyncio.ensure_future(anext(revisions))
    before = mirror.syncs
    while mirror.syncs < before + 2:  # two polls after the docs push: both stay quiet
        await asyncio.wait({pending}, timeout=0.02)
        clock.advance(INTERVAL * 1.2)
        assert mirror.syncs < before + 100
    assert not pending.done()
    assert poller.last == docs

    change = commit_files(work, {"images/v.yaml": "v: 2\n", "README.md": "x\n"}, "image")
    push(work)
    revision = await _drive(clock, pending, step=INTERVAL * 1.2)
    assert revision == Revision(sha=change, previous=docs, changed=("images/v.yaml",))
    await revisions.aclose()  # type: ignore[attr-defined]


async def test_wake_fetches_without_waiting_for_the_interval(
    tmp_path: Path, source_remote: tuple[Path, Path]
) -> None:
    bare, work = source_remote
    clock = FakeClock()
    poller = Poller(Mirror(str(bare), tmp_path / "state"), clock, PollSettings(interval=3600))
    revisions = poller.revisions()
    await asyncio.wait_for(anext(revisions), 10)
    change = commit_files(work, {"fleet/r2.yaml": "b: 2\n"}, "r2")
    push(work)
    pending = asyncio.ensure_future(anext(revisions))
    await _until(lambda: poller.fetches == 1 and not pending.done())
    poller.wake()
    revision = await asyncio.wait_for(pending, 10)
    assert revision.sha == change
    assert clock.monotonic() == 0.0  # no fake time passed: the wake-up did it
    await revisions.aclose()  # type: ignore[attr-defined]


def test_jitter_stays_within_bounds() -> None:
    settings = PollSettings(interval=60.0, jitter=0.1)
    poller = Poller(Mirror(".", Path("/nonexistent")), FakeClock(), settings, rng=random.Random(7))
    delays = [poller.next_delay() for _ in range(200)]
    assert all(54.0 <= d <= 66.0 for d in delays)
    assert max(delays) - min(delays) > 6.0  # spread, not a constant


async def test_fetch_failure_is_sanitized_and_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    clock = FakeClock()
    url = "https://deploy:tok-5ecret-0451@127.0.0.1:1/fleet.git"
    poller = Poller(Mirror(url, tmp_path / "state", timeout=20), clock, PollSettings())
    assert await poller.poll_once() is None
    assert poller.last_error is not None
    assert poller.last_error.reason == "source-unavailable"
    assert "tok-5ecret-0451" not in poller.last_error.message
    assert "tok-5ecret-0451" not in caplog.text
    assert "fetch failed" in caplog.text
    assert not any("tok-5ecret" in p.read_text(errors="ignore")
                   for p in (tmp_path / "state").rglob("*") if p.is_file())  # fmt: skip


async def test_custom_path_filter(tmp_path: Path, source_remote: tuple[Path, Path]) -> None:
    bare, work = source_remote
    only_fleet = PollSettings(path_filter=PathFilter(prefixes=("fleet/",), suffixes=()))
    poller = Poller(Mirror(str(bare), tmp_path / "state"), FakeClock(), only_fleet)
    assert await poller.poll_once() is not None
    commit_files(work, {"images/v.yaml": "v: 1\n"}, "image")
    push(work)
    assert await poller.poll_once() is None
    commit_files(work, {"fleet/r9.yaml": "v: 1\n"}, "device")
    push(work)
    revision = await poller.poll_once()
    assert revision is not None and revision.changed == ("fleet/r9.yaml",)
