"""Checking a config remote before a command relies on it, with an error that says what to do.

:func:`probe_branch` asks the remote for one branch (``git ls-remote``, nothing is fetched)
and turns git's several-line complaint into one :class:`~reconciler.errors.SourceError`
whose ``reason`` is a stable code and whose message names the next step:

    no-repo          the path or URL holds no repository
    not-a-repo       a local path exists but is not a git repository
    unreachable      the host did not answer (network, DNS, credentials)
    missing-branch   the repository has no such branch

:func:`unpinned_policy` says whether a fetched head declares an AccessPolicy while the
daemon was given no pin, which it would refuse on every pass.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from reconciler.errors import SourceError
from reconciler.sanitize import redact
from reconciler.source.git import Mirror, normalize_url
from reconciler.source.policy import read_policy

__all__ = ["MISSING_BRANCH", "probe_branch", "unpinned_policy"]

MISSING_BRANCH = "push it first, or name another with --branch"

# git's own words for a host that did not answer or refused us (curl and ssh transports).
_UNREACHABLE = (
    "could not resolve",
    "failed to connect",
    "couldn't connect",
    "connection refused",
    "connection timed out",
    "timed out",
    "network is unreachable",
    "no route to host",
    "could not read from remote",
    "authentication failed",
    "permission denied",
    "the requested url returned error: 401",
    "the requested url returned error: 403",
)
_MISSING = ("not found", "does not appear to be a git repository", "does not exist")


def _local_path(url: str) -> Path | None:
    remote = "://" in url or re.match(r"^[\w.-]+@[\w.-]+:", url)
    return None if remote else Path(normalize_url(url))


def probe_branch(
    url: str,
    branch: str,
    *,
    next_step: str = MISSING_BRANCH,
    timeout: float = 30.0,
) -> None:
    """Raise :class:`SourceError` unless ``url`` answers and has ``branch``.

    ``next_step`` says what to do when the branch is missing.
    """
    shown = redact(url)
    path = _local_path(url)
    if path is not None:
        if not path.exists():
            raise SourceError(
                f"no repository at {path}: give --repo a git URL or the path of a clone",
                reason="no-repo",
            )
        if not (path / "HEAD").exists() and not (path / ".git").exists():
            raise SourceError(
                f"{path} is not a git repository: give --repo the top of a clone or a bare "
                "repository (git init --bare), or a URL",
                reason="not-a-repo",
            )
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "LC_ALL": "C"}
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    try:
        done = subprocess.run(
            ["git", "ls-remote", "--heads", "--", normalize_url(url), f"refs/heads/{branch}"],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SourceError(
            f"{shown} did not answer within {timeout:.0f} s: check the network path and try again",
            reason="unreachable",
        ) from None
    said = done.stderr.lower()
    if done.returncode != 0:
        first = next((ln for ln in done.stderr.splitlines() if ln.strip()), "no output")
        detail = redact(first.removeprefix("fatal: ").strip())
        if any(word in said for word in _UNREACHABLE):
            raise SourceError(
                f"cannot reach {shown} ({detail}): check the URL, the network path and the "
                "git credentials, then start again",
                reason="unreachable",
            )
        if any(word in said for word in _MISSING):
            raise SourceError(
                f"no repository at {shown} ({detail}): check the --repo URL",
                reason="no-repo",
            )
        raise SourceError(f"git cannot read {shown}: {detail}", reason="unreachable")
    if not done.stdout.strip():
        raise SourceError(f"{shown} has no {branch!r} branch: {next_step}", reason="missing-branch")


def unpinned_policy(mirror: Mirror) -> str | None:
    """Fetch the mirror's branch; the path of its AccessPolicy when the head declares one.

    A daemon with no ``--access-pin`` refuses such a head on every pass (``policy-not-pinned``).
    """
    head = mirror.sync()
    snapshot = read_policy(mirror.repo, head)
    return snapshot.path if snapshot.policy is not None else None
