"""The status writer against real git: bare remotes, real clones and pushes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from reconciler.clock import FakeClock
from reconciler.report.writer import StatusWriter, WriteResult, WriterSettings
from tests.support.gitrepo import clone, commit_files, git, push
from tests.support.report import TWO_DEVICE_FILES, ConfigRemote, show, snapshot


def _writer(remote: ConfigRemote, tmp: Path, clock: FakeClock) -> StatusWriter:
    settings = WriterSettings(remote=str(remote.path), workdir=tmp / "status-clone")
    return StatusWriter(settings, clock=clock)


def _commits(remote: ConfigRemote) -> list[str]:
    return git(remote.path, "rev-list", "status").split()


async def test_files_trailers_and_device_history(remote: ConfigRemote, tmp_path: Path) -> None:
    clock = FakeClock()
    writer = _writer(remote, tmp_path, clock)
    await writer.open()
    rev = remote.revision
    first = await writer.write(snapshot(rev, {"r1": "pending", "r2": "pending"}))
    assert first.commit and first.pushed
    await writer.write(snapshot(rev, {"r1": "stage", "r2": "pending"}))
    await writer.write(snapshot(rev, {"r1": "done", "r2": "stage"}, versions={"r1": "1.4.3"}))

    tree = git(remote.path, "ls-tree", "-r", "--name-only", "status").split()
    assert tree == TWO_DEVICE_FILES
    # An orphan branch: no history shared with main.
    assert git(remote.path, "rev-list", "--max-parents=0", "status").strip() == first.commit
    assert remote.revision not in git(remote.path, "rev-list", "status")

    head = git(remote.path, "log", "-1", "--format=%B", "status")
    assert f"Desired-Revision: {rev}" in head
    assert "Rollout: core" in head
    assert "Device: r1\nPhase: stage->done" in head
    assert "Device: r2\nPhase: pending->stage" in head
    trailers = git(remote.path, "log", "-1", "--format=%(trailers:key=Device,valueonly)", "status")
    assert trailers.split() == ["r1", "r2"]

    history = git(remote.path, "log", "--format=%s", "--grep=^Device: r1$", "status").splitlines()
    assert len(history) == 3
    assert history[0] == "status: r1 stage->done, r2 pending->stage"

    doc = yaml.safe_load(show(remote.path, "status", "devices/r1.yaml"))
    assert doc["phase"] == "done" and doc["observed"]["version"] == "1.4.3"
    author = git(remote.path, "log", "-1", "--format=%an <%ae> %cI", "status").strip()
    assert author == "gitfirm <gitfirm@localhost> 2026-01-01T00:00:00+00:00"


async def test_idle_passes_make_no_commit(remote: ConfigRemote, tmp_path: Path) -> None:
    clock = FakeClock()
    writer = _writer(remote, tmp_path, clock)
    await writer.open()
    snap = snapshot(remote.revision, {"r1": "stage"})
    await writer.write(snap)
    before = _commits(remote)
    for _ in range(3):
        clock.advance(300)
        result = await writer.write(snap)
        assert result == WriteResult(None, False, 0)
    assert _commits(remote) == before
    # A restarted writer (fresh clone) also finds nothing to commit.
    again = _writer(remote, tmp_path / "restart", clock)
    await again.open()
    assert (await again.write(snap)).commit is None
    assert _commits(remote) == before


async def test_removed_devices_go_and_foreign_files_stay(
    remote: ConfigRemote, tmp_path: Path
) -> None:
    writer = _writer(remote, tmp_path, FakeClock())
    await writer.open()
    await writer.write(snapshot(remote.revision, {"r1": "stage", "r2": "stage"}))
    other = clone(remote.path, tmp_path / "other", branch="status")
    git(other, "reset", "--quiet", "--hard", "origin/status")
    commit_files(other, {"shards/eu/NOTES.md": "hand-written\n"}, "add notes")
    push(other, "status")
    await writer.open()
    result = await writer.write(snapshot(remote.revision, {"r1": "done"}))
    assert result.pushed
    tree = git(remote.path, "ls-tree", "-r", "--name-only", "status").split()
    assert "devices/r2.yaml" not in tree and "shards/eu/NOTES.md" in tree
    assert "Device: r2\nPhase: stage->none" in git(
        remote.path, "log", "-1", "--format=%B", "status"
    )


async def test_coalescing_one_commit_per_interval(remote: ConfigRemote, tmp_path: Path) -> None:
    clock = FakeClock()
    results: asyncio.Queue[WriteResult] = asyncio.Queue()
    settings = WriterSettings(remote=str(remote.path), workdir=tmp_path / "clone")
    writer = StatusWriter(settings, clock=clock, on_result=results.put_nowait)
    await writer.open()
    task = asyncio.create_task(writer.run())
    try:
        rev = remote.revision
        writer.submit(snapshot(rev, {"r1": "precheck"}))
        first = await asyncio.wait_for(results.get(), 30)
        assert first.commit is not None
        # A burst inside the interval: only the last state gets written, once, at t=10 s.
        for phase in ("backup", "stage", "activate"):
            clock.advance(1)
            writer.submit(snapshot(rev, {"r1": phase}))
            await asyncio.sleep(0.05)
        assert results.empty()
        assert len(_commits(remote)) == 1
        clock.advance(7)
        second = await asyncio.wait_for(results.get(), 30)
        assert second.commit is not None
        assert len(_commits(remote)) == 2
        message = git(remote.path, "log", "-1", "--format=%B", "status")
        assert "Phase: precheck->activate" in message
        assert git(remote.path, "log", "-1", "--format=%cI", "status").strip() == (
            "2026-01-01T00:00:10+00:00"
        )
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_drain_waits_for_a_write_in_progress(remote: ConfigRemote, tmp_path: Path) -> None:
    clock = FakeClock()
    writer = _writer(remote, tmp_path, clock)
    runner = asyncio.create_task(writer.run())
    writer.submit(snapshot(remote.revision, {"r1": "stage", "r2": "pending"}))
    await asyncio.sleep(0)  # the run loop takes this snapshot and starts writing it
    writer.submit(snapshot(remote.revision, {"r1": "done", "r2": "pending"}))
    await writer.drain()
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    doc = yaml.safe_load(git(remote.path, "show", "status:devices/r1.yaml"))
    assert doc["phase"] == "done"
