"""Real git for tests: bare remotes, clones, pushes, ssh-keygen keys and signed commits.

Every git command runs with an isolated environment (:func:`git_env`): no system or global
config, a fixed author, and ``HOME`` pointed at the test's own directory, so the tests never
read or write the user's configuration and give the same result on every machine.

Typical use::

    remote = make_remote(tmp_path / "remote.git")
    work = clone(remote, tmp_path / "work")
    alice = ssh_key(tmp_path / "keys", "alice")
    sha = commit_files(work, {"fleet/r1.yaml": DEVICE}, "add r1", key=alice)
    push(work)

Signing uses ``git -c gpg.format=ssh -c user.signingkey=<private key> commit -S``, exactly
as a person would. :func:`gpg_key` makes an OpenPGP key in a private ``GNUPGHOME`` (callers
skip when :func:`have_gpg` is false).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

__all__ = [
    "GpgKey",
    "Signer",
    "SshKey",
    "access_policy",
    "clone",
    "commit_files",
    "git",
    "git_env",
    "gpg_key",
    "have_gpg",
    "make_remote",
    "push",
    "rev_parse",
    "seeded_remote",
    "ssh_key",
]

_TIMEOUT = 60.0


@dataclass(frozen=True)
class SshKey:
    """An ed25519 key pair made by ssh-keygen; ``public`` is the OpenSSH public key line."""

    name: str
    private: Path
    public: str


@dataclass(frozen=True)
class GpgKey:
    """An OpenPGP key in its own keyring ``home``; ``fingerprint`` is 40 upper-case hex."""

    name: str
    home: Path
    fingerprint: str


Signer = tuple[SshKey | GpgKey, list[str]]
"""A key and the roles it holds, for :func:`access_policy`."""


def git_env(home: Path | None = None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment for git that ignores the user's and the system's configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    base = home or Path(env.get("TMPDIR", "/tmp"))
    env.update(
        {
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "HOME": str(base),
            "GIT_AUTHOR_NAME": "Test Author",
            "GIT_AUTHOR_EMAIL": "author@example.test",
            "GIT_COMMITTER_NAME": "Test Author",
            "GIT_COMMITTER_EMAIL": "author@example.test",
            "GIT_TERMINAL_PROMPT": "0",
        }
    )
    if extra:
        env.update(extra)
    return env


def git(cwd: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    """Run ``git args`` in ``cwd`` with :func:`git_env`; return stdout, raise on failure."""
    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=git_env(None, env),
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def make_remote(path: Path, branch: str = "main") -> Path:
    """Create an empty bare repository whose default branch is ``branch``."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "--quiet", "--bare", f"--initial-branch={branch}")
    return path


def clone(remote: Path, path: Path, branch: str = "main") -> Path:
    """Clone ``remote`` into ``path`` (an empty remote gives an empty clone on ``branch``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    git(path.parent, "clone", "--quiet", str(remote), str(path))
    git(path, "checkout", "--quiet", "-B", branch)
    return path


def commit_files(
    work: Path,
    files: Mapping[str, str | None],
    message: str,
    *,
    key: SshKey | GpgKey | None = None,
) -> str:
    """Write (or, for ``None``, delete) ``files`` in ``work``, commit them, return the SHA.

    With ``key`` the commit is signed: SSH keys via ``gpg.format=ssh``, OpenPGP keys via
    gpg with the key's own ``GNUPGHOME``. ``--allow-empty`` lets a test commit nothing.
    """
    for rel, text in files.items():
        target = work / rel
        if text is None:
            git(work, "rm", "--quiet", "--", rel)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        git(work, "add", "--", rel)
    signing: list[str] = []
    env: dict[str, str] = {}
    if isinstance(key, SshKey):
        signing = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={key.private}"]
    elif isinstance(key, GpgKey):
        signing = ["-c", "gpg.format=openpgp", "-c", f"user.signingkey={key.fingerprint}"]
        env["GNUPGHOME"] = str(key.home)
    sign = ["-S"] if key else ["--no-gpg-sign"]
    git(work, *signing, "commit", "--quiet", "--allow-empty", *sign, "-m", message, env=env)
    return rev_parse(work, "HEAD")


def seeded_remote(base: Path, files: Mapping[str, str], branch: str = "main") -> tuple[Path, Path]:
    """A bare remote ``base/remote.git`` with one unsigned commit of ``files`` pushed from
    the clone ``base/work``; returns (remote, clone)."""
    remote = make_remote(base / "remote.git", branch)
    work = clone(remote, base / "work", branch)
    commit_files(work, files, "initial")
    push(work, branch)
    return remote, work


def push(work: Path, branch: str = "main", *, force: bool = False) -> None:
    """Push ``branch`` of ``work`` to its ``origin``."""
    git(work, "push", "--quiet", *(["--force"] if force else []), "origin", branch)


def rev_parse(repo: Path, rev: str) -> str:
    """The full SHA of ``rev`` in ``repo``."""
    return git(repo, "rev-parse", "--verify", f"{rev}^{{commit}}").strip()


def ssh_key(directory: Path, name: str) -> SshKey:
    """Make an unencrypted ed25519 key ``directory/name`` with ssh-keygen."""
    directory.mkdir(parents=True, exist_ok=True)
    private = directory / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(private)],
        check=True,
        capture_output=True,
        timeout=_TIMEOUT,
    )
    public = private.with_suffix(".pub").read_text(encoding="utf-8").strip()
    return SshKey(name=name, private=private, public=public)


def have_gpg() -> bool:
    """Whether gpg is installed (OpenPGP tests skip without it)."""
    return shutil.which("gpg") is not None


def gpg_key(home: Path, name: str) -> GpgKey:
    """Make an unprotected ed25519 signing key for ``name`` in the keyring at ``home``."""
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(
        ["gpg", "--batch", "--quiet", "--passphrase", "", "--quick-gen-key",
         f"{name} <{name}@example.test>", "ed25519", "sign", "never"],
        check=True, capture_output=True, env=env, timeout=_TIMEOUT,
    )  # fmt: skip
    listing = subprocess.run(
        ["gpg", "--batch", "--with-colons", "--list-secret-keys", name],
        check=True, capture_output=True, text=True, env=env, timeout=_TIMEOUT,
    ).stdout  # fmt: skip
    fingerprint = next(
        line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")
    )
    return GpgKey(name=name, home=home, fingerprint=fingerprint.upper())


def access_policy(
    signers: Sequence[Signer],
    rules: Sequence[tuple[list[str], list[str]]] = (),
    *,
    mode: str = "strict",
    admin_role: str = "admin",
    name: str = "access",
) -> str:
    """The YAML of an AccessPolicy listing ``signers`` (key, roles) and ``rules`` (paths, roles).

    SSH keys become ``sshKey`` entries, OpenPGP keys ``pgpFingerprint`` entries; a signer's
    name is its key's name.
    """
    doc: dict[str, object] = {
        "apiVersion": "gitfirm.io/v1",
        "kind": "AccessPolicy",
        "metadata": {"name": name},
        "spec": {
            "mode": mode,
            "adminRole": admin_role,
            "signers": [
                {
                    "name": key.name,
                    **(
                        {"sshKey": key.public}
                        if isinstance(key, SshKey)
                        else {"pgpFingerprint": key.fingerprint}
                    ),
                    "roles": roles,
                }
                for key, roles in signers
            ],
            "rules": [{"paths": paths, "roles": roles} for paths, roles in rules],
        },
    }
    return yaml.safe_dump(doc, sort_keys=False)
