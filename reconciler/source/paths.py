"""Which paths of the config repository matter: the trigger filter and path-rule globs.

A new commit triggers a reconcile pass only when it changes a *desired-state path*
(:class:`PathFilter`). By default that is any file under ``fleet/``, ``images/``,
``policies/``, ``trust/`` or ``advisories/`` (trust roots and keys live there too), plus any
``*.yaml``, ``*.yml`` or ``*.json`` file anywhere, except under ``.github/`` and ``docs/``.
A README, a docs page or a CI workflow change is fetched and remembered, but starts nothing.

AccessPolicy rules use git-style globs (:func:`glob_match`): ``*`` and ``?`` stay inside one
path segment, ``**`` spans any number of segments, and a pattern that names a directory
(``policies/production`` or ``policies/production/``) covers everything below it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["DEFAULT_PATH_FILTER", "PathFilter", "glob_match"]


@dataclass(frozen=True)
class PathFilter:
    """Decides whether a changed path is desired state (see the module docstring)."""

    prefixes: tuple[str, ...] = ("fleet/", "images/", "policies/", "trust/", "advisories/")
    """Directories whose every file is desired state."""
    suffixes: tuple[str, ...] = (".yaml", ".yml", ".json")
    """File endings that are desired state wherever they are."""
    excludes: tuple[str, ...] = (".github/", "docs/")
    """Directories that never are (CI workflows and documentation), checked first."""

    def matches(self, path: str) -> bool:
        """Whether a change to ``path`` should trigger a reconcile pass."""
        if path.startswith(self.excludes):
            return False
        return path.startswith(self.prefixes) or path.lower().endswith(self.suffixes)

    def relevant(self, paths: Iterable[str]) -> list[str]:
        """The desired-state paths among ``paths``, in their order."""
        return [p for p in paths if self.matches(p)]


DEFAULT_PATH_FILTER = PathFilter()


@lru_cache(maxsize=512)
def _compile(pattern: str) -> re.Pattern[str]:
    pattern = pattern.strip().lstrip("/")
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    body = "".join(out)
    # A directory pattern (with or without the trailing slash) covers all below it.
    if body.endswith("/"):
        return re.compile(body + ".*")
    return re.compile(body + "(?:/.*)?")


def glob_match(pattern: str, path: str) -> bool:
    """Whether repository path ``path`` matches the git-style glob ``pattern``."""
    return _compile(pattern).fullmatch(path) is not None
