"""Point 6: the status branch is untrusted input. Anyone who can push to ``status`` can
plant symlinks (to the daemon's keys, or out of its work tree) and submodules. Pushed with
real git against the real daemon, they are never read or written through, and the daemon
regenerates the branch; ``gitfirm status`` and ``plan --status-dir`` do not follow them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reconciler.cli import main
from tests.support.attacker import secured_gitops
from tests.support.daemon import wait_for
from tests.support.gitrepo import clone, commit_files, git, make_remote, rev_parse

LEAK = "planted-secret-d41f0e"


def _plant(remote: Path, work: Path, links: dict[str, Path], gitlinks: list[str]) -> None:
    """Push to ``status``: each ``links`` path as a symlink to its target, each ``gitlinks``
    path as a submodule entry."""
    if not work.exists():
        clone(remote, work, "status")
        git(work, "fetch", "--quiet", "origin", "status")
        git(work, "reset", "--quiet", "--hard", "origin/status")
    for rel, target in links.items():
        path = work / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() or path.is_symlink():
            git(work, "rm", "--quiet", "-r", "--", rel)
        os.symlink(target, path)
        git(work, "add", "--", rel)
    sha = rev_parse(work, "HEAD")
    for rel in gitlinks:
        if (work / rel).exists():
            git(work, "rm", "--quiet", "--", rel)
        git(work, "update-index", "--add", "--cacheinfo", f"160000,{sha},{rel}")
    git(work, "commit", "--quiet", "-m", "planted links")
    git(work, "push", "--quiet", "origin", "HEAD:status")


def _modes(remote: Path) -> dict[str, str]:
    if not git(remote, "branch", "--list", "status").strip():
        return {}
    listing = git(remote, "ls-tree", "-r", "status")
    return {line.split("\t")[1]: line.split()[0] for line in listing.splitlines()}


async def test_daemon_regenerates_planted_links_and_writes_nothing_through_them(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    outside = tmp_path / "outside"
    outside.mkdir()
    async with secured_gitops(tmp_path) as ops:
        first, second = ops.fleet.names
        await ops.daemon.writer.flush()
        await wait_for(lambda: f"devices/{first}.yaml" in _modes(ops.remote), 30, "status")
        key = (state / "backup.key").read_bytes()
        token = (state / "token.key").read_bytes()
        _plant(
            ops.remote,
            tmp_path / "attacker",
            links={
                f"devices/{first}.yaml": state / "backup.key",
                "compliance.yaml": state / "token.key",
                "devices/ghost.yaml": state / "backup.key",
                "rollouts": outside,
            },
            gitlinks=[f"devices/{second}.yaml"],
        )
        # A state change makes the daemon write; its push is rejected, it syncs to the
        # planted branch and regenerates its files over it.
        ops.fleet.device(second).faults.unreachable = True
        await ops.daemon.reconcile(None)
        await ops.daemon.writer.flush()
        await wait_for(lambda: set(_modes(ops.remote).values()) == {"100644"}, 30, "links dropped")
        modes = _modes(ops.remote)
        assert f"devices/{first}.yaml" in modes and f"devices/{second}.yaml" in modes
        assert "devices/ghost.yaml" not in modes
        assert f"name: {first}" in git(ops.remote, "show", f"status:devices/{first}.yaml")
        assert "reachable: false" in git(ops.remote, "show", f"status:devices/{second}.yaml")
        # Nothing was written through a link, nothing was read through one.
        assert (state / "backup.key").read_bytes() == key
        assert (state / "token.key").read_bytes() == token
        assert list(outside.iterdir()) == []
        history = git(ops.remote, "log", "-p", "status")
        assert key.decode().strip() not in history
        assert key.decode().strip() not in ops.logs.getvalue()
        assert ops.daemon.state.last_error is None


def _status_remote(tmp_path: Path) -> Path:
    """A remote whose ``status`` branch holds one device file that is a link to a file
    outside, and one regular device file."""
    secret_file = tmp_path / "outside.yaml"
    secret_file.write_text(f"name: r1\nobserved:\n  version: {LEAK}\n")
    remote = make_remote(tmp_path / "remote.git", "status")
    work = clone(remote, tmp_path / "work", "status")
    commit_files(work, {"devices/r2.yaml": "name: r2\nphase: done\n"}, "status")
    os.symlink(secret_file, work / "devices" / "r1.yaml")
    git(work, "add", "devices/r1.yaml")
    git(work, "commit", "--quiet", "-m", "planted")
    git(work, "push", "--quiet", "origin", "status")
    return remote


def test_status_command_does_not_follow_links(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    remote = _status_remote(tmp_path)
    assert main(["status", "--repo", str(remote), "--format", "json"]) == 0
    out = capsys.readouterr().out
    assert LEAK not in out
    assert set(json.loads(out)["devices"]) == {"r2"}


def test_plan_status_dir_refuses_a_linked_devices_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "fra-core-1.yaml").write_text(f"name: fra-core-1\nnote: {LEAK}\n")
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "devices").symlink_to(outside)
    repo = Path(__file__).resolve().parents[2] / "example-repo"
    code = main(["plan", str(repo), "--status-dir", str(checkout), "--format", "json"])
    captured = capsys.readouterr()
    assert code == 1
    assert "is a symlink" in captured.err
    assert LEAK not in captured.out + captured.err
