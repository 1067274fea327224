"""Blocking git plumbing behind proposals: a bare-ish local clone of the config repository.

A proposal commit is built with plumbing only (``read-tree``, ``hash-object``,
``update-index``, ``commit-tree``) from the remote desired branch, so no work tree is
checked out and nothing in the repository (a symlink, a hook) is ever followed or run.
The only ref ever pushed is ``refs/heads/gitfirm/proposals/...``, never with force.
Async callers run these methods in a thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from reconciler.errors import ProposalError
from reconciler.gitbot import BotGit, GitIdentity, commit_dates
from reconciler.proposals.model import BRANCH_PREFIX

__all__ = ["Built", "ProposalGit"]

_REGULAR = "100644"


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
        self._git = BotGit(root, identity, ProposalError, timeout, secrets, bare=True)

    def __repr__(self) -> str:
        return f"ProposalGit(root={str(self.root)!r}, base={self._base!r})"

    def open(self) -> None:
        """Create the local repository if needed and point ``origin`` at the remote."""
        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.root / "HEAD").exists():
            self._git.run("init", "-q", "--bare")
        if self._git.run("remote", "get-url", "origin", check=False).returncode == 0:
            self._git.run("remote", "set-url", "origin", self._remote)
        else:
            self._git.run("remote", "add", "origin", self._remote)

    def remote_branch(self, branch: str) -> str | None:
        """The commit of ``branch`` on the remote, or None when it has no such branch."""
        ls = self._git.run("ls-remote", "--heads", "origin", f"refs/heads/{branch}")
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
        self._git.run("fetch", "-q", "origin", f"+refs/heads/{self._base}:{tracking}")
        base = self._git.run("rev-parse", "--verify", f"{tracking}^{{commit}}").stdout.strip()
        blobs = {
            path: self._git.run("hash-object", "-w", "--stdin", stdin=text).stdout.strip()
            for path, text in sorted(files.items())
        }
        if all(self._entry(base, path) == (_REGULAR, blob) for path, blob in blobs.items()):
            return Built("applied")
        index = self.root / "gitfirm-proposal.index"
        index.unlink(missing_ok=True)
        with_index = {"GIT_INDEX_FILE": str(index)}
        self._git.run("read-tree", base, env=with_index)
        for path, blob in blobs.items():
            self._git.run(
                "update-index", "--add", "--cacheinfo", f"{_REGULAR},{blob},{path}", env=with_index
            )
        tree = self._git.run("write-tree", env=with_index).stdout.strip()
        index.unlink(missing_ok=True)
        commit = self._commit(tree, base, message, when)
        pushed = self._git.run(
            "push", "--porcelain", "origin", f"{commit}:refs/heads/{branch}", check=False
        )
        if pushed.returncode != 0:
            raced = self.remote_branch(branch)
            if raced is not None:  # another instance pushed the same proposal meanwhile
                return Built("exists", raced)
            detail = self._git.redact(pushed.stdout + pushed.stderr)
            raise ProposalError(f"git push failed: {detail}")
        return Built("pushed", commit)

    def _entry(self, commit: str, path: str) -> tuple[str, str] | None:
        listed = self._git.run("ls-tree", commit, "--", path).stdout.strip()
        if not listed:
            return None
        meta, _, _ = listed.partition("\t")
        mode, _, rest = meta.partition(" ")
        return mode, rest.split(" ")[-1]

    def _commit(self, tree: str, parent: str, message: str, when: datetime) -> str:
        sign, flag = self._git.identity.signing()
        args = [*sign, "commit-tree", tree, "-p", parent, *flag]
        return self._git.run(*args, stdin=message, env=commit_dates(when)).stdout.strip()
