"""Several shards share one status branch: each writes only shards/<name>/, the root README
is the index of all of them, and a lost push race is regenerated, never merged."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.clock import FakeClock
from reconciler.report.render import render_files
from reconciler.report.writer import StatusWriter, WriterSettings
from tests.support.gitrepo import git
from tests.support.report import ConfigRemote, show, snapshot

SHARDS = {"fra": ("fra1", "fra2"), "ams": ("ams1",), "lon": ("lon1", "lon2", "lon3")}


def _writer(remote: ConfigRemote, tmp: Path, shard: str) -> StatusWriter:
    settings = WriterSettings(
        remote=str(remote.path),
        workdir=tmp / f"status-{shard}",
        shard=shard,
        push_attempts=20,
        retry_base_seconds=0.01,
        retry_max_seconds=0.05,
    )
    return StatusWriter(settings, clock=FakeClock(autojump=True))


def _tree(remote: ConfigRemote) -> list[str]:
    return git(remote.path, "ls-tree", "-r", "--name-only", "status").split()


async def test_stale_shard_regenerates_its_folder_and_the_index(
    remote: ConfigRemote, tmp_path: Path
) -> None:
    rev = remote.revision
    fra, ams = _writer(remote, tmp_path, "fra"), _writer(remote, tmp_path, "ams")
    await fra.open()
    await ams.open()  # both clones see an empty branch
    first = await fra.write(snapshot(rev, dict.fromkeys(SHARDS["fra"], "stage"), policy="fra"))
    assert first.pushed and first.attempts == 1
    # ams's clone is now stale: its push is rejected (a lost race), it refetches and retries.
    second = await ams.write(snapshot(rev, dict.fromkeys(SHARDS["ams"], "done"), policy="ams"))
    assert second.pushed and second.attempts == 2

    files = _tree(remote)
    assert "shards/fra/devices/fra1.yaml" in files and "shards/ams/devices/ams1.yaml" in files
    assert not [f for f in files if f.startswith("devices/")]  # nothing outside shard folders
    readme = show(remote.path, "status", "README.md")
    assert "| [ams](shards/ams/README.md) | 1 |" in readme
    assert "| [fra](shards/fra/README.md) | 2 |" in readme
    assert "Shards: 2 · devices: 3" in readme
    # fra's files are exactly what fra rendered: ams never touched them.
    fra_files = render_files(snapshot(rev, dict.fromkeys(SHARDS["fra"], "stage"), policy="fra"))
    for path, data in fra_files.items():
        assert show(remote.path, "status", f"shards/fra/{path}").encode() == data, path
    assert git(remote.path, "rev-list", "--merges", "status").strip() == ""


async def test_concurrent_shards_lose_no_update(remote: ConfigRemote, tmp_path: Path) -> None:
    rev = remote.revision
    writers = {name: _writer(remote, tmp_path, name) for name in SHARDS}
    for writer in writers.values():
        await writer.open()
    phases = ("precheck", "stage", "activate", "verify", "done")

    async def shard(name: str) -> None:
        # Every phase is a commit racing the other shards' commits (git runs in threads).
        for phase in phases:
            result = await writers[name].write(
                snapshot(rev, dict.fromkeys(SHARDS[name], phase), policy=name)
            )
            assert result.pushed

    await asyncio.gather(*(shard(name) for name in SHARDS))

    for name, devices in SHARDS.items():
        for device in devices:
            text = show(remote.path, "status", f"shards/{name}/devices/{device}.yaml")
            assert "phase: done" in text, (name, device)
    readme = show(remote.path, "status", "README.md")
    assert "Shards: 3 · devices: 6" in readme
    for name, devices in SHARDS.items():
        assert (
            f"| [{name}](shards/{name}/README.md) | {len(devices)} | `{rev[:12]}` | 0 |" in readme
        )
    assert git(remote.path, "rev-list", "--merges", "status").strip() == ""
    # Every phase of every shard made its own commit: none was overwritten by another.
    commits = int(git(remote.path, "rev-list", "--count", "status"))
    assert commits == len(SHARDS) * len(phases)


async def test_gitfirm_status_merges_every_shard(
    remote: ConfigRemote, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rev = remote.revision
    for name, devices in SHARDS.items():
        writer = _writer(remote, tmp_path, name)
        await writer.open()
        await writer.write(
            snapshot(rev, dict.fromkeys(devices, "done"), versions=dict.fromkeys(devices, "1.4.3"))
        )
    assert main(["status", "--repo", str(remote.path), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["shards"] == sorted(SHARDS)
    assert sorted(out["devices"]) == sorted(d for ds in SHARDS.values() for d in ds)
    assert out["compliance"]["summary"] == {"compliant": 6, "noncompliant": 0}
    assert main(["status", "--repo", str(remote.path)]) == 0
    assert "shards: ams, fra, lon" in capsys.readouterr().out
