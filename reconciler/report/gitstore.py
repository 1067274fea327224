"""Blocking git plumbing behind the status writer: one local clone of the status branch.

Every call runs the ``git`` CLI with a timeout and only per-command ``-c`` settings (the
user's global config is never written). Async callers run these methods in a thread.
Git runs as the bot through :class:`reconciler.gitbot.BotGit` (redacted errors, no hooks).

The branch is untrusted input: anyone who can push to it may plant a symlink (say
``devices/r1.yaml`` pointing at the daemon's key) or a submodule. :meth:`GitStore.sync`
drops every symlink and gitlink from the index and the work tree (the next commit
regenerates those paths as plain files), and files are only read and written as regular
files below real directories of the work tree, never through a link.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable, Mapping
from datetime import datetime
from enum import Enum
from pathlib import Path

from reconciler.errors import ReportError
from reconciler.gitbot import BotGit, GitIdentity, commit_dates
from reconciler.report.render import is_owned

__all__ = ["GitStore", "PushOutcome"]

# Tree entry modes that are not a regular file or directory: symlink, gitlink (submodule).
_UNTRUSTED_MODES = frozenset({"120000", "160000"})


class PushOutcome(Enum):
    """What a push did."""

    PUSHED = "pushed"
    REJECTED = "rejected"  # the ref moved under us (non-fast-forward, or a lost ref lock)


class GitStore:
    """A working clone of one branch of a remote, plus a notes ref."""

    def __init__(
        self,
        root: Path,
        remote: str,
        branch: str,
        identity: GitIdentity,
        *,
        notes_ref: str = "refs/notes/gitfirm",
        timeout: float = 120.0,
        secrets: tuple[str, ...] = (),
        folder: str = "",
    ) -> None:
        self.root = root
        self.folder = folder.strip("/")
        """Where generated files live on the branch: the root, or ``shards/<name>`` when
        several instances share the branch (each writes only below its own folder)."""
        self._remote = remote
        self.branch = branch
        self.notes_ref = notes_ref
        self._git = BotGit(root, identity, ReportError, timeout, secrets)
        self.untrusted: tuple[str, ...] = ()
        """Links the last :meth:`sync` dropped; the next commit must remove or replace them."""

    def __repr__(self) -> str:
        return f"GitStore(root={str(self.root)!r}, branch={self.branch!r})"

    def _rev(self, ref: str) -> str | None:
        done = self._git.run("rev-parse", "--verify", "-q", f"{ref}^{{commit}}", check=False)
        return done.stdout.strip() or None

    @property
    def _tracking(self) -> str:
        return f"refs/remotes/origin/{self.branch}"

    # -- the branch --------------------------------------------------------------------------

    def open(self) -> None:
        """Create the clone if needed, point it at the remote and sync to the remote branch."""
        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.root / ".git").exists():
            self._git.run("init", "-q")
        if self._git.run("remote", "get-url", "origin", check=False).returncode == 0:
            self._git.run("remote", "set-url", "origin", self._remote)
        else:
            self._git.run("remote", "add", "origin", self._remote)
        self.sync()

    def sync(self) -> None:
        """Fetch the remote branch and make the work tree exactly equal to it.

        When the remote has no such branch yet, start an orphan branch (no shared history
        with anything) unless a local one waits to be pushed.
        """
        ls = self._git.run("ls-remote", "--heads", "origin", f"refs/heads/{self.branch}")
        self._git.run("symbolic-ref", "HEAD", f"refs/heads/{self.branch}")
        if ls.stdout.strip():
            self._git.run("fetch", "-q", "origin", f"+refs/heads/{self.branch}:{self._tracking}")
            self._git.run("reset", "-q", "--hard", self._tracking)
        elif self._rev("HEAD") is not None:
            self._git.run("reset", "-q", "--hard", "HEAD")
        else:
            self._git.run("read-tree", "--empty")
        self._git.run("clean", "-q", "-f", "-d", "-x")
        self._drop_untrusted()

    def _drop_untrusted(self) -> None:
        """Remove symlinks and gitlinks from the index and the work tree, never following
        them; remembered in :attr:`untrusted` so the next commit regenerates the branch."""
        listed = self._git.run("ls-files", "--stage", "-z").stdout
        found = []
        for entry in listed.split("\0"):
            meta, _, path = entry.partition("\t")
            if path and meta.split(" ", 1)[0] in _UNTRUSTED_MODES:
                found.append(path)
        if found:
            literal = [f":(literal){p}" for p in found]
            self._git.run("rm", "-q", "-r", "--cached", "--ignore-unmatch", "--", *literal)
            for path in found:
                _remove(self.root / path)
        self.untrusted = tuple(found)

    def head(self) -> str | None:
        """The local branch's commit, or None on an unborn branch."""
        return self._rev("HEAD")

    def head_trailer(self, key: str) -> list[str]:
        """Values of trailer ``key`` on the local branch's commit (empty on an unborn one)."""
        if self.head() is None:
            return []
        done = self._git.run("log", "-1", f"--format=%(trailers:key={key},valueonly)", "HEAD")
        return [line.strip() for line in done.stdout.splitlines() if line.strip()]

    def history(self, *pathspecs: str) -> list[tuple[str, datetime]]:
        """(commit, committer time) of each commit of the local branch that touched
        ``pathspecs``, newest first (empty on an unborn branch)."""
        if self.head() is None:
            return []
        done = self._git.run("log", "--format=%H %cI", "HEAD", "--", *pathspecs)
        out = []
        for line in done.stdout.splitlines():
            commit, _, when = line.partition(" ")
            out.append((commit, datetime.fromisoformat(when)))
        return out

    def read_at(self, commit: str, wanted: Callable[[str], bool]) -> dict[str, bytes]:
        """The files of ``commit`` whose path ``wanted`` accepts (regular blobs only)."""
        listing = self._git.run("ls-tree", "-r", "--format=%(objecttype) %(path)", commit).stdout
        paths = [p for kind, _, p in (ln.partition(" ") for ln in listing.splitlines())
                 if kind == "blob" and wanted(p)]  # fmt: skip
        return {p: self._git.run("show", f"{commit}:{p}").stdout.encode() for p in paths}

    def ahead(self) -> bool:
        """True when the local branch has commits the remote branch lacks."""
        head = self.head()
        return head is not None and head != self._rev(self._tracking)

    def read_owned(self, folder: str | None = None) -> dict[str, bytes]:
        """The generated files currently in the work tree: regular files only, found without
        following a symlink (a link at an owned path is not read, and is replaced on write).

        Only the places generated files live are listed (the folder, the writer's own by
        default, and its ``devices/``, ``rollouts/``), never ``.git``, whose object store
        grows with every commit. Paths are relative to the folder.
        """
        files: dict[str, bytes] = {}
        where = self.folder if folder is None else folder.strip("/")
        base = self.root / where if where else self.root
        if not _real_dirs(self.root, where):
            return files
        for directory in (base, base / "devices", base / "rollouts"):
            mode = _lstat_mode(directory)
            if mode is None or not stat.S_ISDIR(mode):  # absent, or a planted link
                continue
            for path in directory.iterdir():
                rel = path.relative_to(base).as_posix()
                if is_owned(rel) and stat.S_ISREG(path.lstat().st_mode):
                    files[rel] = _read_regular(path)
        return files

    def write_files(self, files: Mapping[str, bytes | None]) -> None:
        """Write these generated files, and delete those mapped to None; nothing else is
        touched, so files gitfirm does not own are kept.

        Nothing is written through a link: a link or other non-regular entry on the way to
        a generated file is removed first, so every write lands inside the work tree.
        """
        for rel, data in files.items():
            if not is_owned(rel):
                raise ReportError(f"refusing to write {rel!r}: not a generated status file")
            target = self._real_parent(self._on_branch(rel)) / Path(rel).name
            mode = _lstat_mode(target)
            if mode is not None and (data is None or not stat.S_ISREG(mode)):
                _remove(target)  # unlinks a link itself, never what it points at
            if data is None:
                continue
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(data)

    def _on_branch(self, rel: str) -> str:
        return f"{self.folder}/{rel}" if self.folder else rel

    def write_top(self, name: str, data: bytes) -> None:
        """Write a file at the branch root that every sharing instance regenerates (the
        README index of the shards), as a regular file, never through a link."""
        target = self.root / name
        if _lstat_mode(target) is not None:
            _remove(target)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)

    def read_regular(self, rel: str, limit: int) -> bytes | None:
        """A regular file at ``rel`` below real directories, at most ``limit`` bytes; None
        when absent, a link, or larger (the branch is untrusted input)."""
        path = self.root / rel
        if not _real_dirs(self.root, str(Path(rel).parent)):
            return None
        mode = _lstat_mode(path)
        if mode is None or not stat.S_ISREG(mode) or path.lstat().st_size > limit:
            return None
        return _read_regular(path)

    def real_subdirs(self, rel: str) -> list[str]:
        """Names of the real directories (never links) below ``rel``, sorted."""
        if not _real_dirs(self.root, rel):
            return []
        return sorted(
            p.name for p in (self.root / rel).iterdir() if stat.S_ISDIR(p.lstat().st_mode)
        )

    def count_files(self, rel: str) -> int:
        """How many regular files are directly below the real directory ``rel``."""
        if not _real_dirs(self.root, rel):
            return 0
        return sum(1 for p in (self.root / rel).iterdir() if stat.S_ISREG(p.lstat().st_mode))

    def _real_parent(self, rel: str) -> Path:
        """The directory of ``rel`` in the work tree, made of real directories only."""
        here = self.root
        for part in Path(rel).parent.parts:
            if part in ("", ".", "..") or (here == self.root and part == ".git"):
                raise ReportError(f"refusing status path {rel!r}")
            here = here / part
            mode = _lstat_mode(here)
            if mode is not None and not stat.S_ISDIR(mode):
                _remove(here)  # a symlink or file where a directory belongs
                mode = None
            if mode is None:
                here.mkdir()
        return here

    def commit_if_changed(self, message: str, when: datetime) -> str | None:
        """Commit the work tree when it differs from HEAD; returns the new commit or None."""
        self._git.run("add", "-A")
        if self._git.run("diff", "--cached", "--quiet", check=False).returncode == 0:
            return None
        sign, flag = self._git.identity.signing()
        message_file = self.root / ".git" / "GITFIRM_MSG"
        message_file.write_text(message, encoding="utf-8")
        args = [*sign, "commit", "-q", "--no-verify", "-F", str(message_file), *flag]
        self._git.run(*args, env=commit_dates(when))
        self.untrusted = ()
        return self.head()

    def push(self) -> PushOutcome:
        """Push the branch; a non-fast-forward answer is ``REJECTED``, other failures raise."""
        return self._push(f"HEAD:refs/heads/{self.branch}")

    def _push(self, refspec: str) -> PushOutcome:
        done = self._git.run("push", "--porcelain", "origin", refspec, check=False)
        if done.returncode == 0:
            return PushOutcome.PUSHED
        if "[rejected]" in done.stdout or _lost_lock(done.stdout):
            return PushOutcome.REJECTED
        raise ReportError(f"git push failed: {self._git.redact(done.stdout + done.stderr)}")

    # -- notes -------------------------------------------------------------------------------

    def fetch_notes(self) -> None:
        """Make the local notes ref exactly the remote one (absent when the remote has none)."""
        ls = self._git.run("ls-remote", "origin", self.notes_ref)
        if ls.stdout.strip():
            self._git.run("fetch", "-q", "origin", f"+{self.notes_ref}:{self.notes_ref}")
        else:
            self._git.run("update-ref", "-d", self.notes_ref)

    def append_note(self, commit: str, text: str, when: datetime) -> bool:
        """Append ``text`` to the note on ``commit`` unless it is already there."""
        shown = self._git.run("notes", f"--ref={self.notes_ref}", "show", commit, check=False)
        if shown.returncode == 0 and text.strip() in shown.stdout:
            return False
        message_file = self.root / ".git" / "GITFIRM_NOTE"
        message_file.write_text(text, encoding="utf-8")
        self._git.run(
            "notes",
            f"--ref={self.notes_ref}",
            "append",
            "-F",
            str(message_file),
            commit,
            env=commit_dates(when),
        )
        return True

    def push_notes(self) -> PushOutcome:
        """Push the notes ref; ``REJECTED`` when the remote notes moved."""
        return self._push(f"{self.notes_ref}:{self.notes_ref}")


# The remote refused because another push updated the ref at the same instant (its ref
# lock, or the old value it checked); a hook that declines is not one of these.
_LOCK_RACES = ("(failed to update ref)", "(failed to lock)", "(cannot lock ref")


def _lost_lock(porcelain: str) -> bool:
    """True when a push lost a race for the remote's ref lock: regenerate and retry."""
    return any(
        "[remote rejected]" in line and any(race in line for race in _LOCK_RACES)
        for line in porcelain.splitlines()
    )


def _lstat_mode(path: Path) -> int | None:
    try:
        return path.lstat().st_mode
    except FileNotFoundError:
        return None


def _real_dirs(root: Path, rel: str) -> bool:
    """True when every component of ``rel`` below ``root`` is a real directory."""
    here = root
    for part in Path(rel).parts:
        if part in ("", "."):
            continue
        here = here / part
        mode = _lstat_mode(here)
        if part == ".." or mode is None or not stat.S_ISDIR(mode):
            return False
    return True


def _remove(path: Path) -> None:
    """Remove ``path`` itself: a link (never its target), a file or a real directory tree."""
    mode = _lstat_mode(path)
    if mode is None:
        return
    if stat.S_ISDIR(mode):
        shutil.rmtree(path)  # lstat said a real directory; rmtree does not follow links
    else:
        path.unlink()


def _read_regular(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        return f.read()
