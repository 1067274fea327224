"""Which forge to talk to, and the token by reference (an environment variable or a file).

The operator names the token's variable or file on the command line; gitfirm reads it when
the client is built and keeps it only in the request headers. It never reaches a log line,
an error message (every message is redacted with it) or the status branch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from reconciler.clock import Clock
from reconciler.errors import ConfigError
from reconciler.forge.gitea import Gitea, gitea_headers
from reconciler.forge.github import GitHub, github_headers
from reconciler.forge.gitlab import GitLab, gitlab_headers
from reconciler.forge.http import ForgeHTTP, HttpSettings
from reconciler.forge.protocol import Forge

__all__ = ["DEFAULT_URLS", "FORGE_KINDS", "ForgeConfig", "ForgeKind", "make_forge", "read_token"]

ForgeKind = Literal["github", "gitlab", "gitea"]
FORGE_KINDS: tuple[ForgeKind, ...] = ("github", "gitlab", "gitea")
DEFAULT_URLS: dict[str, str] = {
    "github": "https://api.github.com",
    "gitlab": "https://gitlab.com/api/v4",
}
"""API roots used when ``--forge-url`` is not given (Gitea has no public default)."""

_MAX_TOKEN_FILE = 16 * 1024


@dataclass(frozen=True, slots=True)
class ForgeConfig:
    """A forge, a repository on it, and where its token is."""

    kind: ForgeKind
    repo: str
    """``owner/name`` (GitHub, Gitea) or ``group/project`` (GitLab)."""
    url: str = ""
    """The API root (``https://api.github.com``, ``https://host/api/v4``, ``https://host/api/v1``);
    empty: the forge's public default."""
    token_env: str = ""
    """The environment variable that holds the token."""
    token_file: Path | None = None
    """A file that holds the token (a mounted secret), read instead of ``token_env``."""

    def api_root(self) -> str:
        """The API root, or a ConfigError when none is given and the forge has no default."""
        root = self.url or DEFAULT_URLS.get(self.kind, "")
        if not root:
            raise ConfigError(f"--forge {self.kind} needs --forge-url (the API root, .../api/v1)")
        if not root.startswith(("https://", "http://")):
            raise ConfigError(f"--forge-url {root!r} is not an http(s) URL")
        return root

    def check(self) -> None:
        """Refuse a repository that is not ``owner/name`` and a missing token reference."""
        parts = self.repo.split("/")
        if len(parts) < 2 or not all(parts) or (self.kind != "gitlab" and len(parts) != 2):
            raise ConfigError(f"--forge-repo {self.repo!r}: give it as owner/name")
        if not self.token_env and self.token_file is None:
            raise ConfigError("a forge needs --forge-token-env VAR or --forge-token-file FILE")
        self.api_root()


def read_token(config: ForgeConfig, environ: Mapping[str, str]) -> str:
    """The token ``config`` points at; errors name the variable or file, never the value."""
    if config.token_file is not None:
        return _read_file(config.token_file)
    value = environ.get(config.token_env, "").strip()
    if not value:
        raise ConfigError(f"forge token variable {config.token_env} is not set")
    return value


def _read_file(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_TOKEN_FILE + 1)
    except OSError as e:
        raise ConfigError(f"cannot read forge token file {path}: {e.strerror}") from None
    if len(data) > _MAX_TOKEN_FILE:
        raise ConfigError(f"forge token file {path} is larger than {_MAX_TOKEN_FILE} bytes")
    value = data.decode("utf-8", "replace").strip()
    if not value:
        raise ConfigError(f"forge token file {path} is empty")
    return value


def make_forge(
    config: ForgeConfig,
    token: str,
    *,
    http: httpx.AsyncClient,
    clock: Clock,
    user_agent: str,
    settings: HttpSettings | None = None,
    on_result: Callable[[str, str], None] | None = None,
) -> Forge:
    """The client for ``config.kind``, sending requests through ``http``."""
    headers = {"github": github_headers, "gitlab": gitlab_headers, "gitea": gitea_headers}
    session = ForgeHTTP(
        forge=config.kind,
        base_url=config.api_root(),
        headers=headers[config.kind](token, user_agent),
        token=token,
        http=http,
        clock=clock,
        settings=settings,
        on_result=on_result,
    )
    if config.kind == "github":
        return GitHub(session, config.repo)
    if config.kind == "gitlab":
        return GitLab(session, config.repo)
    return Gitea(session, config.repo)
