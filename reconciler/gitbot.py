"""Running the ``git`` CLI as the gitfirm bot, for the stages that commit and push.

The status writer and proposals both commit as the bot: a fixed identity set in the
environment (which outranks any config), no hooks, no GPG, no prompt, a timeout, and error
text passed through :func:`reconciler.sanitize.redact` (remote URLs may carry tokens). The
calling environment's ``GIT_DIR``-like variables are dropped, because a hook or a test that
sets them would aim git at another repository. Each stage passes its own error type.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from reconciler.sanitize import redact

__all__ = ["BotGit", "GitIdentity", "commit_dates"]

# Variables a calling environment (a hook, a test) may set that would aim git elsewhere.
_INHERITED_GIT_VARS = frozenset(
    {"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_NAMESPACE"}
)
_CONFIG = ("-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null")


@dataclass(frozen=True, slots=True)
class GitIdentity:
    """Who the bot's commits are from, and how they are signed."""

    name: str = "gitfirm"
    email: str = "gitfirm@localhost"
    signing_key: Path | None = None
    """Private SSH key file; when set, every commit is SSH-signed (gpg.format=ssh)."""

    def signing(self) -> tuple[list[str], list[str]]:
        """The ``-c`` settings before the subcommand, and the flag after it, that sign."""
        if self.signing_key is None:
            return [], []
        return ["-c", "gpg.format=ssh", "-c", f"user.signingkey={self.signing_key}"], ["-S"]


def commit_dates(when: datetime) -> dict[str, str]:
    """The environment that dates a commit at ``when`` (the injected clock, not git's)."""
    stamp = f"@{int(when.timestamp())} +0000"
    return {"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}


@dataclass(frozen=True, slots=True)
class BotGit:
    """One repository, run as the bot; failures raise ``error`` with a redacted message."""

    root: Path
    identity: GitIdentity
    error: Callable[[str], Exception]
    timeout: float = 120.0
    secrets: tuple[str, ...] = ()
    bare: bool = False
    """Set ``GIT_DIR`` to ``root`` (a bare repository has no ``.git`` to find)."""

    def run(
        self,
        *args: str,
        check: bool = True,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``git args`` in ``root``; with ``check``, a non-zero exit raises ``error``."""
        ident = self.identity
        full = {k: v for k, v in os.environ.items() if k not in _INHERITED_GIT_VARS}
        full |= {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
        if self.bare:
            full["GIT_DIR"] = str(self.root)
        full |= {"GIT_AUTHOR_NAME": ident.name, "GIT_AUTHOR_EMAIL": ident.email}
        full |= {"GIT_COMMITTER_NAME": ident.name, "GIT_COMMITTER_EMAIL": ident.email}
        full |= dict(env or {})
        try:
            done = subprocess.run(
                ["git", *_CONFIG, *args],
                cwd=self.root,
                env=full,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise self.error(f"git {args[0]} timed out after {self.timeout:.0f} s") from exc
        if check and done.returncode != 0:
            raise self.error(f"git {args[0]} failed: {self.redact(done.stderr or done.stdout)}")
        return done

    def redact(self, text: str) -> str:
        """``text`` stripped and with the secrets and URL credentials blanked out."""
        return redact(text.strip(), self.secrets)
