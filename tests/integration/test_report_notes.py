"""Rollout-outcome notes, SSH-signed status commits, and secrets that must never reach Git."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.clock import FakeClock
from reconciler.errors import ReportError
from reconciler.gitbot import GitIdentity
from reconciler.report.gitstore import PushOutcome
from reconciler.report.snapshot import RolloutStatus
from reconciler.report.writer import StatusWriter, WriterSettings
from tests.support.gitrepo import clone, git, push, ssh_key
from tests.support.report import (
    ConfigRemote,
    all_text,
    isolate_git,
    snapshot,
)

NOTES = "refs/notes/gitfirm"


def _writer(
    remote: ConfigRemote, tmp: Path, identity: GitIdentity | None = None, **kw: str
) -> StatusWriter:
    settings = WriterSettings(
        remote=str(remote.path), workdir=tmp / "status-clone", identity=identity or GitIdentity()
    )
    return StatusWriter(settings, clock=FakeClock(autojump=True), secrets=tuple(kw.values()))


async def test_outcomes_are_appended_as_notes_on_the_desired_commit(
    remote: ConfigRemote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = _writer(remote, tmp_path)
    await writer.open()
    rev = remote.revision
    await writer.record_outcome(RolloutStatus("core", rev, "1.4.3", device_phases={"r1": "done"}))

    # Someone else adds a note of their own between our pushes; ours must not erase it.
    other = clone(remote.path, tmp_path / "other")
    original = writer.store.push_notes
    outcomes: list[PushOutcome] = []

    def racing_push_notes() -> PushOutcome:
        if "from ops" not in git(remote.path, "notes", f"--ref={NOTES}", "show", rev):
            git(other, "fetch", "--quiet", "origin", f"+{NOTES}:{NOTES}")
            git(other, "notes", f"--ref={NOTES}", "append", "-m", "from ops", rev)
            push(other, NOTES)
        outcomes.append(original())
        return outcomes[-1]

    monkeypatch.setattr(writer.store, "push_notes", racing_push_notes)
    edge = RolloutStatus(
        "edge", rev, "1.4.3", halted=True, halt_reason="failureThreshold 1 reached",
        device_phases={"e1": "failed", "e2": "pending"},
    )  # fmt: skip
    await writer.record_outcome(edge)
    await writer.record_outcome(edge)  # recorded once only
    assert outcomes == [PushOutcome.REJECTED, PushOutcome.PUSHED]

    note = git(remote.path, "notes", f"--ref={NOTES}", "show", rev)
    assert "gitfirm rollout core: finished" in note
    assert "Counts: done=1" in note
    assert "from ops" in note
    assert note.count("gitfirm rollout edge: halted") == 1
    assert "Reason: failureThreshold 1 reached" in note
    assert "Counts: failed=1, pending=1" in note


async def test_signed_status_commits_verify(remote: ConfigRemote, tmp_path: Path) -> None:
    key = ssh_key(tmp_path / "keys", "gitfirm-bot")
    identity = GitIdentity("gitfirm bot", "bot@gitfirm.test", signing_key=key.private)
    writer = _writer(remote, tmp_path, identity)
    await writer.open()
    await writer.write(snapshot(remote.revision, {"r1": "stage"}))
    await writer.write(snapshot(remote.revision, {"r1": "done"}))

    signers = tmp_path / "allowed_signers"
    signers.write_text(f'bot@gitfirm.test namespaces="git" {key.public}\n')
    for sha in git(remote.path, "rev-list", "status").split():
        git(remote.path, "-c", f"gpg.ssh.allowedSignersFile={signers}", "verify-commit", sha)
    author = git(remote.path, "log", "-1", "--format=%an <%ae>|%G?", "status").strip()
    assert author.startswith("gitfirm bot <bot@gitfirm.test>")

    stranger = ssh_key(tmp_path / "keys", "stranger")
    signers.write_text(f'bot@gitfirm.test namespaces="git" {stranger.public}\n')
    with pytest.raises(RuntimeError):
        git(remote.path, "-c", f"gpg.ssh.allowedSignersFile={signers}", "verify-commit", "status")


async def test_planted_secrets_never_reach_git(remote: ConfigRemote, tmp_path: Path) -> None:
    api_key = "vyosApiKey-7f3a9c2e51"
    webhook = "It's a Secret to Everybody"
    writer = _writer(remote, tmp_path, api_key=api_key, webhook=webhook)
    await writer.open()
    rev = remote.revision
    reason = f"r1 rejected key {api_key}; webhook secret {webhook}"
    snap = snapshot(
        rev,
        {"r1": "failed", "r2": "stage"},
        errors={
            "r1": f"401 for key {api_key}",
            "r2": "fetch https://ops:pa55word@mirror.test/vyos.iso?key=urlkey123456 refused",
        },
        halted=True,
        halt_reason=reason,
    )
    await writer.write(snap)
    await writer.record_outcome(snap.rollouts[0])

    text = all_text(remote.path)
    assert NOTES in text and "Reason:" in text
    for secret in (api_key, webhook, "pa55word", "urlkey123456"):
        assert secret not in text


async def test_git_errors_do_not_leak_remote_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate_git(monkeypatch, tmp_path)
    token = "ghp_NotARealTokenButSecret"
    settings = WriterSettings(
        remote=f"http://bot:{token}@127.0.0.1:9/config.git", workdir=tmp_path / "clone"
    )
    writer = StatusWriter(settings, clock=FakeClock(), secrets=(token,))
    with pytest.raises(ReportError) as caught:
        await writer.open()
    assert token not in str(caught.value)
    assert token not in repr(writer)
