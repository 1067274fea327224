"""Another writer pushes to the status branch mid-run: regenerate, never merge, lose nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.clock import FakeClock
from reconciler.errors import PushRejected
from reconciler.report.gitstore import PushOutcome
from reconciler.report.render import render_files
from reconciler.report.writer import StatusWriter, WriterSettings
from tests.support.gitrepo import clone, commit_files, git, push
from tests.support.report import ConfigRemote, show, snapshot


class OtherWriter:
    """A second clone of the status branch that pushes its own commit when told."""

    def __init__(self, remote: ConfigRemote, path: Path) -> None:
        self.remote = remote
        self.work = clone(remote.path, path, branch="status")
        self.pushes = 0

    def push_change(self) -> None:
        git(self.work, "fetch", "--quiet", "origin", "status")
        git(self.work, "reset", "--quiet", "--hard", "origin/status")
        self.pushes += 1
        commit_files(
            self.work,
            {
                f"ops/maintenance-{self.pushes}.md": "core switch swap on Friday\n",
                "README.md": "scribbled over by someone else\n",
                "devices/r1.yaml": "phase: bogus\n",
            },
            f"other writer #{self.pushes}",
        )
        push(self.work, "status")


def _writer(remote: ConfigRemote, tmp: Path, attempts: int = 5) -> StatusWriter:
    settings = WriterSettings(
        remote=str(remote.path), workdir=tmp / "status-clone", push_attempts=attempts
    )
    return StatusWriter(settings, clock=FakeClock(autojump=True))


def _race_before_push(
    monkeypatch: pytest.MonkeyPatch, writer: StatusWriter, other: OtherWriter, times: int
) -> None:
    original = writer.store.push

    def racing_push() -> PushOutcome:
        if other.pushes < times:
            other.push_change()
        return original()

    monkeypatch.setattr(writer.store, "push", racing_push)


async def test_concurrent_push_is_regenerated_without_merge(
    remote: ConfigRemote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = _writer(remote, tmp_path)
    await writer.open()
    rev = remote.revision
    await writer.write(snapshot(rev, {"r1": "stage", "r2": "pending"}))
    other = OtherWriter(remote, tmp_path / "other")
    _race_before_push(monkeypatch, writer, other, times=1)

    final = snapshot(rev, {"r1": "done", "r2": "stage"}, versions={"r1": "1.4.3"})
    result = await writer.write(final)

    assert result.pushed and result.attempts == 2
    assert git(remote.path, "rev-list", "--merges", "status").strip() == ""
    # The other writer's commit is in history and its own file survives.
    subjects = git(remote.path, "log", "--format=%s", "status").splitlines()
    assert "other writer #1" in subjects
    assert show(remote.path, "status", "ops/maintenance-1.md") == "core switch swap on Friday\n"
    # gitfirm's own files are exactly what the in-memory state renders.
    for path, data in render_files(final).items():
        assert show(remote.path, "status", path).encode() == data, path
    message = git(remote.path, "log", "-1", "--format=%B", "status")
    assert "Device: r1\nPhase: bogus->done" in message  # the truth against what was on the branch


async def test_retries_are_bounded_then_recover(
    remote: ConfigRemote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = _writer(remote, tmp_path, attempts=2)
    await writer.open()
    rev = remote.revision
    await writer.write(snapshot(rev, {"r1": "stage"}))
    other = OtherWriter(remote, tmp_path / "other")
    _race_before_push(monkeypatch, writer, other, times=2)

    writer.submit(snapshot(rev, {"r1": "activate"}))
    failed = await writer.flush()
    assert failed is not None and failed.error is not None
    assert failed.error.reason == "push-rejected"
    assert other.pushes == 2

    with pytest.raises(PushRejected):
        _race_before_push(monkeypatch, writer, other, times=4)
        await writer.write(snapshot(rev, {"r1": "activate"}))

    # The race is over: the pending snapshot (kept after the failure) goes through.
    recovered = await writer.flush()
    assert recovered is not None and recovered.pushed and recovered.error is None
    assert "phase: activate" in show(remote.path, "status", "devices/r1.yaml")
    assert git(remote.path, "rev-list", "--merges", "status").strip() == ""
    assert show(remote.path, "status", "ops/maintenance-4.md")
