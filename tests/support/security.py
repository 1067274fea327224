"""Helpers for the adversarial suite (tests/security): what a refusal must leave behind.

A refused revision must be in the daemon's book, on ``status:source.yaml`` and in the JSON
log, the verified revision must stay where it was, and no device may see anything but
observation calls.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Mapping
from pathlib import Path

import yaml

from reconciler.model.kinds import Image
from reconciler.simulator.iso import build_iso, iso_file_name
from tests.support.daemon import GitOps, wait_for
from tests.support.gitrepo import SshKey, commit_files, git, git_env, push
from tests.support.images import image_doc

__all__ = [
    "assert_untouched",
    "copy_to_testing",
    "git_input",
    "logged_errors",
    "refusal_reason",
    "refuse",
    "refused_push",
    "status_refusals",
]

ACTING_CALLS = ("/image", "/reboot", "/config-file")
"""Device API paths that act; only observation may reach a device while a commit is refused."""


def refusal_reason(ops: GitOps, sha: str) -> str | None:
    """The daemon's recorded reason for refusing ``sha``, if it did."""
    for refusal in ops.daemon.book.refusals:
        if refusal.revision == sha:
            return refusal.reason
    return None


def status_refusals(remote: Path) -> dict[str, str]:
    """Revision -> reason of the refusals listed in ``status:source.yaml`` of ``remote``."""
    try:
        doc = yaml.safe_load(git(remote, "show", "status:source.yaml"))
    except RuntimeError:  # no status branch, or no source.yaml on it yet
        return {}
    return {r["revision"]: r["reason"] for r in (doc or {}).get("refused") or []}


def assert_untouched(ops: GitOps, version: str = "1.4.3") -> None:
    """Every simulated device still runs ``version`` and got no acting call."""
    assert set(ops.versions().values()) == {version}
    for name in ops.fleet.names:
        device = ops.fleet.device(name)
        assert device.log == [], f"{name} was acted on: {device.log}"
        acted = [p for p in device.calls if p.startswith(ACTING_CALLS)]
        assert not acted, f"{name} got {acted}"


async def refuse(
    ops: GitOps,
    good: str,
    files: Mapping[str, str | None],
    key: SshKey | None,
    reason: str,
    message: str = "attack",
) -> str:
    """Commit ``files`` on top of ``good`` signed by ``key``, force-push, and check the
    refusal: reason ``reason`` in the book, in status and in the log; ``good`` in force."""
    git(ops.work, "reset", "--quiet", "--hard", good)
    sha = commit_files(ops.work, files, message, key=key)
    push(ops.work, force=True)
    return await refused_push(ops, good, sha, reason)


async def refused_push(ops: GitOps, good: str, sha: str, reason: str) -> str:
    """Wait for the pushed ``sha`` to be refused for ``reason`` (see :func:`refuse`)."""
    await wait_for(lambda: refusal_reason(ops, sha) is not None, 30, f"refusal of {sha}")
    assert reason in (refusal_reason(ops, sha) or ""), refusal_reason(ops, sha)
    assert ops.daemon.state.verified == good
    await wait_for(lambda: sha in status_refusals(ops.remote), 30, "refusal in source.yaml")
    assert reason in status_refusals(ops.remote)[sha]
    assert logged_errors(ops, sha), f"no error logged for {sha}"
    return sha


def logged_errors(ops: GitOps, sha: str) -> list[str]:
    """The messages of the daemon's JSON error lines about revision ``sha``."""
    lines = (json.loads(line) for line in ops.logs.getvalue().splitlines() if line.strip())
    return [
        str(e.get("msg", ""))
        for e in lines
        if e.get("level") == "error" and e.get("revision") == sha
    ]


def copy_to_testing(upstream: Path, version: str, name: str) -> Image:
    """The Image of the ISO ``running_gitops`` wrote for ``version`` into ``upstream``,
    declared for channel ``testing`` (same file, same signature by its release key)."""
    data = build_iso(version, size=300_000)
    return image_doc(
        name,
        version=version,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        url=f"{upstream.as_uri()}/{iso_file_name(version)}",
        channel="testing",
    )


def git_input(work: Path, text: str, *args: str) -> str:
    """``git args`` in ``work`` with ``text`` on stdin (plumbing such as ``mktree``)."""
    done = subprocess.run(
        ["git", *args], cwd=work, env=git_env(), input=text, capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip
    return done.stdout.strip()
