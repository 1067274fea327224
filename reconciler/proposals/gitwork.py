"""Blocking git plumbing behind proposals: a bare-ish local clone of the config repository.

A proposal commit is built with plumbing only (``read-tree``, ``hash-object``,
``update-index``, ``commit-tree``) from the remote desired branch, so no work tree is
checked out and nothing in the repository (a symlink, a hook) is ever followed or run.
The only ref ever pushed is ``refs/heads/gitfirm/proposals/...``, never with force.
Async callers run these methods in a thread.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from reconciler.errors import ProposalError
from reconciler.proposals.model import BRANCH_PREFIX
from reconciler.sanitize import redact

__all__ = ["Built", "GitIdentity", "ProposalGit"]

_INHERITED_GIT_VARS = frozenset(
    {"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_NAMESPACE"}
)
_REGULAR = "100644"


@dataclass(frozen=True, slots=True)
class GitIdentity:
    """Who proposal commits are from; with ``signing_key`` (an SSH private key file) every
    proposal commit is SSH-signed."""

    name: str = "gitfirm"
    email: str = "gitfirm@localhost"
    signing_key: Path | None = None


@dataclass(frozen=True, slots=True)
class Built:
    """What :meth:`ProposalGit.publish` found or did."""

    state: str
    """``pushed`` (a new branch), ``exists`` (already on the remote) or ``applied``."""
    commit: str | None = None


class ProposalGit:
    """One local repository (no work tree) that pushes proposal branches to ``remote``."""

    def __init__(
        self,
        root: Path,
        remote: str,
        base: str,
        identity: GitIdentity,
        *,
        timeout: float = 120.0,
        secrets: tuple[str, ...] = (),
    ) -> None:
        self.root = root
        self._remote = remote
        self._base = base
        self._identity = identity
        self._timeout = timeout
        self._secrets = secrets

    def __repr__(self) -> str:
        return f"ProposalGit(root={str(self.root)!r}, base={self._base!r})"

    def _run(
        self,
        *args: str,
        check: bool = True,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        ident = self._identity
        config = ["-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null"]
        full = {k: v for k, v in os.environ.items() if k not in _INHERITED_GIT_VARS}
        full |= {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "GIT_DIR": str(self.root)}
        full |= {"GIT_AUTHOR_NAME": ident.name, "GIT_AUTHOR_EMAIL": ident.email}
        full |= {"GIT_COMMITTER_NAME": ident.name, "GIT_COMMITTER_EMAIL": ident.email}
        full |= dict(env or {})
        try:
            done = subprocess.run(
                ["git", *config, *args],
                cwd=self.root,
                env=full,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=self._timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ProposalError(f"git {args[0]} timed out after {self._timeout:.0f} s") from exc
        if check and done.returncode != 0:
            detail = redact((done.stderr or done.stdout).strip(), self._secrets)
            raise ProposalError(f"git {args[0]} failed: {detail}")
        return done

    def open(self) -> None:
        """Create the local repository if needed and point ``origin`` at the remote."""
        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.root / "HEAD").exists():
            self._run("init", "-q", "--bare")
        if self._run("remote", "get-url", "origin", check=False).returncode == 0:
            self._run("remote", "set-url", "origin", self._remote)
        else:
            self._run("remote", "add", "origin", self._remote)

    def remote_branch(self, branch: str) -> str | None:
        """The commit of ``branch`` on the remote, or None when it has no such branch."""
        ls = self._run("ls-remote", "--heads", "origin", f"refs/heads/{branch}")
        line = ls.stdout.strip().splitlines()
        return line[0].split()[0] if line else None

    def publish(self, branch: str, files: Mapping[str, str], message: str, when: datetime) -> Built:
        """Commit ``files`` on top of the remote desired branch and push them to ``branch``.

        Nothing is pushed when ``branch`` already exists on the remote, or when the desired
        branch already holds exactly these files.
        """
        if not branch.startswith(BRANCH_PREFIX) or branch == self._base:
            raise ProposalError(f"refusing to push {branch!r}: not a proposal branch")
        existing = self.remote_branch(branch)
        if existing is not None:
            return Built("exists", existing)
        tracking = f"refs/remotes/origin/{self._base}"
        self._run("fetch", "-q", "origin", f"+refs/heads/{self._base}:{tracking}")
        base = self._run("rev-parse", "--verify", f"{tracking}^{{commit}}").stdout.strip()
        blobs = {
            path: self._run("hash-object", "-w", "--stdin", stdin=text).stdout.strip()
            for path, text in sorted(files.items())
        }
        if all(self._entry(base, path) == (_REGULAR, blob) for path, blob in blobs.items()):
            return Built("applied")
        index = self.root / "gitfirm-proposal.index"
        index.unlink(missing_ok=True)
        with_index = {"GIT_INDEX_FILE": str(index)}
        self._run("read-tree", base, env=with_index)
        for path, blob in blobs.items():
            self._run(
                "update-index", "--add", "--cacheinfo", f"{_REGULAR},{blob},{path}", env=with_index
            )
        tree = self._run("write-tree", env=with_index).stdout.strip()
        index.unlink(missing_ok=True)
        commit = self._commit(tree, base, message, when)
        pushed = self._run(
            "push", "--porcelain", "origin", f"{commit}:refs/heads/{branch}", check=False
        )
        if pushed.returncode != 0:
            raced = self.remote_branch(branch)
            if raced is not None:  # another instance pushed the same proposal meanwhile
                return Built("exists", raced)
            detail = redact((pushed.stdout + pushed.stderr).strip(), self._secrets)
            raise ProposalError(f"git push failed: {detail}")
        return Built("pushed", commit)

    def _entry(self, commit: str, path: str) -> tuple[str, str] | None:
        listed = self._run("ls-tree", commit, "--", path).stdout.strip()
        if not listed:
            return None
        meta, _, _ = listed.partition("\t")
        mode, _, rest = meta.partition(" ")
        return mode, rest.split(" ")[-1]

    def _commit(self, tree: str, parent: str, message: str, when: datetime) -> str:
        stamp = f"@{int(when.timestamp())} +0000"
        dates = {"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}
        key = self._identity.signing_key
        sign = [] if key is None else ["-c", "gpg.format=ssh", "-c", f"user.signingkey={key}"]
        args = [*sign, "commit-tree", tree, "-p", parent, *(["-S"] if key else [])]
        return self._run(*args, stdin=message, env=dates).stdout.strip()
