"""Git access for the source stage: a local mirror of one branch, and read-only exports.

:class:`Repository` runs git (through GitPython) on a repository on disk, bare or not.
:class:`Mirror` keeps a bare mirror of one remote branch in the state directory and exports
a revision's tree into its own directory, so the loader reads exactly one revision.

Tree entry names come from whoever pushed: :func:`unsafe_path` names the ones never written
(``..``, ``.``, ``.git``, empty, or holding a slash, backslash or NUL), and an export with
one is refused, so nothing is ever written outside the export directory.

The remote URL is passed on each fetch and never written into the mirror's config, so a
token in an ``https://user:token@host`` URL is not stored on disk. Every git error becomes a
:class:`~reconciler.errors.SourceError` whose text went through
:func:`~reconciler.sanitize.redact` (URL credentials and the caller's secrets removed).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import git

from reconciler.errors import SourceError
from reconciler.sanitize import redact

__all__ = ["Mirror", "Repository", "TreeEntry", "normalize_url", "unsafe_path"]

_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:")
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
# Never prompt for a password: a daemon has no terminal, and a prompt would hang the fetch.
_BASE_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "LC_ALL": "C"}


def normalize_url(url: str) -> str:
    """Return ``url`` with a local path made absolute (remote URLs are returned unchanged)."""
    if "://" in url or _SCP_LIKE.match(url):
        return url
    return str(Path(url).expanduser().resolve())


_UNSAFE_NAMES = frozenset({"", ".", "..", ".git"})


def unsafe_path(path: str) -> bool:
    """Whether a tree path has a component that could escape or alter an export directory."""
    return any(
        part.lower() in _UNSAFE_NAMES or "\\" in part or "\0" in part for part in path.split("/")
    )


@dataclass(frozen=True)
class TreeEntry:
    """One file of a revision's tree, as ``git ls-tree -l`` lists it."""

    path: str
    mode: str
    sha: str
    size: int

    @property
    def regular(self) -> bool:
        """A regular file (not a symbolic link or a submodule)."""
        return self.mode in ("100644", "100755")


def _url_secrets(url: str) -> tuple[str, ...]:
    try:
        parts = urlsplit(url)
    except ValueError:
        return ()
    return tuple(s for s in (parts.password, parts.username) if s)


class Repository:
    """Git commands on one repository directory; every failure is a ``SourceError``."""

    def __init__(self, path: Path, *, secrets: Sequence[str] = (), timeout: float = 120.0) -> None:
        self.path = path
        self.timeout = timeout
        self._secrets = tuple(secrets)
        try:
            self._repo = git.Repo(path)
        except (git.exc.InvalidGitRepositoryError, git.exc.NoSuchPathError) as exc:
            raise SourceError(f"{path} is not a git repository") from exc

    def run(
        self,
        *args: str,
        config: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        ok_codes: Iterable[int] = (0,),
        binary: bool = False,
    ) -> tuple[int, str | bytes]:
        """Run ``git [-c k=v ...] args``; return (exit code, stdout) or raise ``SourceError``.

        ``config`` is passed with ``-c`` for this command only, never written to any file.
        """
        flags = [f for key, value in (config or {}).items() for f in ("-c", f"{key}={value}")]
        status, out, err = self._repo.git.execute(
            ["git", *flags, *args],
            with_extended_output=True,
            with_exceptions=False,
            stdout_as_string=not binary,
            strip_newline_in_stdout=False,
            kill_after_timeout=self.timeout,
            env={**_BASE_ENV, **(env or {})},
        )
        if status not in tuple(ok_codes):
            text = err if isinstance(err, str) else err.decode("utf-8", "replace")
            raise SourceError(
                redact(f"git {args[0]} failed ({status}): {text.strip()}", self._secrets)
            )
        return status, out if out is not None else (b"" if binary else "")

    def text(
        self,
        *args: str,
        config: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> str:
        """Like :meth:`run` for a successful command with text output."""
        _, out = self.run(*args, config=config, env=env)
        assert isinstance(out, str)
        return out

    def resolve(self, rev: str) -> str:
        """The full SHA of the commit ``rev`` names."""
        sha = self.text("rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
        return sha.strip()

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """Whether ``ancestor`` is reachable from ``descendant`` (or is the same commit)."""
        status, _ = self.run("merge-base", "--is-ancestor", ancestor, descendant, ok_codes=(0, 1))
        return status == 0

    def changed_files(self, old: str | None, new: str) -> list[str]:
        """Paths that differ between ``old`` and ``new`` (every file of ``new`` if no ``old``)."""
        if old is None:
            out = self.text("ls-tree", "-r", "-z", "--name-only", new)
        else:
            out = self.text("diff", "--name-only", "-z", "--no-renames", old, new, "--")
        return sorted(p for p in out.split("\0") if p)

    def read_file(self, rev: str, path: str) -> bytes:
        """The bytes of ``path`` in revision ``rev``."""
        _, out = self.run("cat-file", "blob", f"{rev}:{path}", binary=True)
        assert isinstance(out, bytes)
        return out

    def read_blob(self, sha: str) -> bytes:
        """The bytes of the blob ``sha``."""
        _, out = self.run("cat-file", "blob", sha, binary=True)
        assert isinstance(out, bytes)
        return out

    def entries(self, rev: str, paths: Sequence[str] = ()) -> list[TreeEntry]:
        """The files of revision ``rev`` (only ``paths`` when given), with mode and size."""
        found: list[TreeEntry] = []
        # Chunks keep the command line short; ls-tree takes literal paths, not pathspecs.
        chunks = [paths[i : i + 500] for i in range(0, len(paths), 500)] if paths else [()]
        for chunk in chunks:
            out = self.text("ls-tree", "-r", "-l", "-z", "--full-tree", rev, "--", *chunk)
            for record in out.split("\0"):
                meta, tab, path = record.partition("\t")
                fields = meta.split()
                if not tab or len(fields) != 4 or fields[1] != "blob":
                    continue  # submodules (commit entries) hold no file
                size = int(fields[3]) if fields[3].isdigit() else 0
                found.append(TreeEntry(path, fields[0], fields[2], size))
        return found

    def grep_files(self, rev: str, pattern: str, globs: Sequence[str]) -> list[str]:
        """Files of revision ``rev`` matching ``globs`` whose content matches regex ``pattern``.

        Binary files are searched too: what git calls binary may be set by a pushed
        ``.gitattributes`` (``*.yaml binary``), and skipping those would hide a file.
        """
        status, out = self.run(
            "grep", "-l", "-z", "-a", "-E", "-e", pattern, rev, "--", *globs, ok_codes=(0, 1)
        )
        if status == 1:
            return []
        assert isinstance(out, str)
        prefix = f"{rev}:"
        return sorted(p.removeprefix(prefix) for p in out.split("\0") if p)

    def export(self, rev: str, dest: Path) -> Path:
        """Write the tree of ``rev`` into the new directory ``dest``, byte for byte.

        Read straight from the object database: no smudge filters, no ``export-ignore``, no
        hooks. Symbolic links and submodules are left out, so nothing points outside ``dest``,
        and a tree with an unsafe entry name (:func:`unsafe_path`) is refused with a
        ``SourceError`` before anything is written. The directory appears atomically (built
        next to ``dest``, then renamed).
        """
        try:
            tree = self._repo.commit(rev).tree
        except (ValueError, git.exc.BadName, git.exc.GitCommandError) as exc:
            raise SourceError(redact(f"cannot read revision {rev}: {exc}", self._secrets)) from None
        unsafe = [p for p in self.changed_files(None, rev) if unsafe_path(p)]
        if unsafe:
            raise SourceError(f"revision {rev} has an unsafe path {unsafe[0]!r}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".export-", dir=dest.parent))
        try:
            for item in _walk(tree, rev):
                if not isinstance(item, git.Blob) or stat.S_ISLNK(item.mode):
                    continue
                target = staging / item.path
                if not target.resolve().is_relative_to(staging.resolve()):
                    raise SourceError(f"revision {rev} has an unsafe path {item.path!r}")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(item.data_stream.read())
            os.replace(staging, dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return dest


def _walk(tree: git.Tree, rev: str) -> Iterator[git.Object]:
    # GitPython refuses some entry names itself (ValueError): keep the error typed.
    try:
        for item in tree.traverse():
            assert isinstance(item, git.Object)
            yield item
    except ValueError as exc:
        raise SourceError(f"revision {rev} has an unsafe tree: {exc}") from None


class Mirror:
    """A bare mirror of one branch of ``url`` under ``state_dir``; see the module docstring."""

    def __init__(
        self,
        url: str,
        state_dir: Path,
        branch: str = "main",
        *,
        secrets: Sequence[str] = (),
        timeout: float = 120.0,
    ) -> None:
        self.url = normalize_url(url)
        self.branch = branch
        self.state_dir = state_dir
        self.path = state_dir / "mirror.git"
        self.trees = state_dir / "trees"
        self._secrets = (*secrets, *_url_secrets(url))
        self._timeout = timeout
        self._repo: Repository | None = None

    @property
    def ref(self) -> str:
        """The local ref that holds the fetched branch head."""
        return f"refs/remotes/origin/{self.branch}"

    @property
    def repo(self) -> Repository:
        """The mirror repository, created empty on first use."""
        if self._repo is None:
            if not (self.path / "HEAD").exists():
                self.path.mkdir(parents=True, exist_ok=True)
                git.Repo.init(self.path, bare=True)
            self._repo = Repository(self.path, secrets=self._secrets, timeout=self._timeout)
        return self._repo

    def sync(self) -> str:
        """Fetch the branch from the remote and return its head SHA."""
        refspec = f"+refs/heads/{self.branch}:{self.ref}"
        self.repo.run("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", self.url, refspec)
        return self.head()

    def head(self) -> str:
        """The last fetched head of the branch."""
        return self.repo.resolve(self.ref)

    def changed_files(self, old: str | None, new: str) -> list[str]:
        """See :meth:`Repository.changed_files`."""
        return self.repo.changed_files(old, new)

    def checkout(self, rev: str, *, keep: Iterable[str] = ()) -> Path:
        """Export ``rev`` to ``trees/<sha>`` (reused if present); drop trees not in ``keep``."""
        sha = self.repo.resolve(rev)
        dest = self.trees / sha
        if not dest.exists():
            self.repo.export(sha, dest)
        wanted = {sha, *keep}
        for old in self.trees.iterdir():
            if old.name not in wanted and _SHA.match(old.name):
                shutil.rmtree(old, ignore_errors=True)
        return dest
