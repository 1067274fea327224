"""``gitfirm status --repo URL`` reads the fleet state back from a real status branch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.clock import FakeClock
from reconciler.report.writer import StatusWriter, WriterSettings
from tests.support.report import ConfigRemote, isolate_git, make_config_remote, snapshot


@pytest.fixture
async def remote(remote: ConfigRemote, tmp_path: Path) -> ConfigRemote:
    """The shared config remote, with one status commit (r2 failed, rollout halted) on it."""
    settings = WriterSettings(remote=str(remote.path), workdir=tmp_path / "status-clone")
    writer = StatusWriter(settings, clock=FakeClock())
    await writer.open()
    await writer.write(
        snapshot(
            remote.revision,
            {"r1": "done", "r2": "failed"},
            versions={"r1": "1.4.3"},
            errors={"r2": "health check bgp failed"},
            halted=True,
            halt_reason="failureThreshold 1 reached",
        )
    )
    return remote


async def test_status_json(remote: ConfigRemote, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--repo", f"file://{remote.path}", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["desiredRevision"] == remote.revision
    assert out["devices"]["r1"]["phase"] == "done"
    assert out["devices"]["r2"]["lastError"] == "health check bgp failed"
    assert out["rollouts"]["core"]["halted"] is True
    assert out["compliance"]["summary"] == {"compliant": 1, "noncompliant": 1}


async def test_status_text(remote: ConfigRemote, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--repo", str(remote.path)]) == 0
    out = capsys.readouterr().out
    assert f"desired revision {remote.revision[:12]}" in out
    for text in ("r1", "1.4.3", "done", "r2", "failed", "health check bgp failed", "halted"):
        assert text in out
    assert "compliance: 1 of 2 devices compliant" in out


def test_status_without_branch_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    isolate_git(monkeypatch, tmp_path)
    config = make_config_remote(tmp_path)
    assert main(["status", "--repo", str(config.path)]) == 2
    assert "no 'status' branch" in capsys.readouterr().err
