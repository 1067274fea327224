"""Resolving secret references (``{env: NAME}`` or ``{file: PATH}``) to their values.

Git says *which* secret a device uses; the operator says, outside Git, *which* secrets may be
used at all (:class:`SecretPolicy`): environment variables whose name starts with one prefix
(default ``VYOS_API_KEY_``) and regular files inside one directory (none by default, so
``{file:}`` references are refused until the operator names one). Whatever the prefix and
the directory allow, the process's own secrets are never handed out: its denied names and
paths (the daemon adds its webhook, backup and operator variables, its state dir and its
status signing key), and every name in the ``GITFIRM_``, ``GIT_`` and ``SSH_`` namespaces.

The value is read at the last moment and never stored in models, logs or status; errors
name the reference, never the value.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from reconciler.errors import ConfigError
from reconciler.model.fields import SecretRef

__all__ = ["DEFAULT_ENV_PREFIX", "SecretPolicy", "resolve_secret"]

DEFAULT_ENV_PREFIX = "VYOS_API_KEY_"

# The daemon's own configuration and git's credential plumbing (askpass, ssh command, agent).
_RESERVED_ENV_PREFIXES = ("GITFIRM_", "GIT_", "SSH_")


@dataclass(frozen=True, slots=True)
class SecretPolicy:
    """Which secrets a Device may name: set by the operator, never by Git."""

    env_prefix: str = DEFAULT_ENV_PREFIX
    """An ``{env:}`` name must start with this (not empty: that would allow every variable)."""
    secrets_dir: Path | None = None
    """A ``{file:}`` must resolve (symlinks followed) to a regular file inside this directory;
    ``None`` refuses every file reference."""
    denied_env: frozenset[str] = frozenset()
    """Variables never resolved, whatever the prefix allows (the process's own secrets)."""
    denied_paths: frozenset[Path] = frozenset()
    """Files, or directories with everything below them, never read (resolved paths)."""
    max_file_bytes: int = 64 * 1024
    """An API key is a short line; a larger file is not one."""

    def __post_init__(self) -> None:
        if not self.env_prefix:
            raise ConfigError(
                "the secret env prefix must not be empty (it would allow every variable)"
            )

    def file_denials(self) -> frozenset[Path]:
        """Every file no other reader may open: the denied paths and the secrets dir."""
        extra = {Path(os.path.realpath(self.secrets_dir))} if self.secrets_dir else set()
        return self.denied_paths | frozenset(extra)

    def deny(self, *, env: Iterable[str] = (), paths: Iterable[Path] = ()) -> SecretPolicy:
        """This policy, also refusing the variables ``env`` and everything at or below ``paths``."""
        resolved = {Path(os.path.realpath(p)) for p in paths}
        return replace(
            self,
            denied_env=self.denied_env | frozenset(e for e in env if e),
            denied_paths=self.denied_paths | frozenset(resolved),
        )


def resolve_secret(ref: SecretRef, *, environ: Mapping[str, str], policy: SecretPolicy) -> str:
    """Return the secret ``ref`` points at, if ``policy`` allows it.

    Raises :class:`ConfigError` naming the variable or file and why, never the value.
    """
    if ref.env is not None:
        return _from_env(ref.env, environ, policy)
    assert ref.file is not None
    return _from_file(ref.file, policy)


def _from_env(name: str, environ: Mapping[str, str], policy: SecretPolicy) -> str:
    if name in policy.denied_env or name.startswith(_RESERVED_ENV_PREFIXES):
        raise ConfigError(f"environment variable {name} is one of gitfirm's own secrets")
    if not name.startswith(policy.env_prefix):
        raise ConfigError(
            f"environment variable {name} does not start with {policy.env_prefix!r}; "
            "name it so, or change --secret-env-prefix"
        )
    value = environ.get(name)
    if not value:
        raise ConfigError(f"environment variable {name} is not set")
    return value


def _from_file(name: str, policy: SecretPolicy) -> str:
    if policy.secrets_dir is None:
        raise ConfigError(f"secret file {name} refused: no --secrets-dir is configured")
    given = PurePosixPath(name)
    if not given.is_absolute() or ".." in given.parts:
        raise ConfigError(f"secret file {name} refused: give an absolute path without '..'")
    real = Path(os.path.realpath(name))
    allowed = Path(os.path.realpath(policy.secrets_dir))
    if not real.is_relative_to(allowed):
        raise ConfigError(f"secret file {name} refused: it is not inside --secrets-dir")
    if any(real.is_relative_to(denied) for denied in policy.denied_paths):
        raise ConfigError(f"secret file {name} refused: it is one of gitfirm's own secrets")
    return _read_small(real, name, policy.max_file_bytes)


def _read_small(real: Path, name: str, limit: int) -> str:
    try:
        # O_NOFOLLOW: the path was resolved above; a symlink swapped in since is refused.
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        raise ConfigError(f"cannot read secret file {name}: {e.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError(f"secret file {name} refused: not a regular file")
        data = os.read(fd, limit + 1)
    except OSError as e:
        raise ConfigError(f"cannot read secret file {name}: {e.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ConfigError(f"secret file {name} refused: larger than {limit} bytes")
    try:
        value = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"secret file {name} refused: not UTF-8 text") from None
    if not value:
        raise ConfigError(f"secret file {name} is empty")
    return value
