"""The one sanitizer: every message bound for a log, status file, plan or notification.

It strips URL credentials (``user:pass@``), secret-looking query parameters and form or
JSON fields (``key=``, ``token=``, ``secret=``, ``password=``), and any known secret value
passed in by the caller (API keys and webhook secrets read from the environment).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["REDACTED", "redact"]

REDACTED = "***"

_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
_SECRET_PARAM = re.compile(
    r"(?P<name>\b(?:key|api[_-]?key|token|secret|password|passwd|signature|sig))"
    r"(?P<sep>\"?\s*[=:]\s*\"?)(?P<value>[^&\s\"',;}]+)",
    re.IGNORECASE,
)
# One-time distribution URLs carry their token as a path segment.
_IMAGE_TOKEN = re.compile(r"(/images/(?:[^/\s]+/)?)[A-Za-z0-9_-]{16,}(/)")


_SHORTEST = 4
"""Shorter values are not treated as secrets (they would redact ordinary words)."""
_INDEXED_FROM = 64
"""From this many secrets in one tuple, a tuple passed again is looked up by prefix."""
_KEPT = 8


class _Index:
    """The secrets of one tuple by their first characters: a line is checked against the
    few whose start occurs in it, not against each of 10,000 per-device keys (sorting and
    trying them all cost about 2 ms per log line or transition)."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        self.secrets = secrets
        self.by_prefix: dict[str, list[str]] = {}
        self.starred: list[str] = []
        for secret in {s for s in secrets if s and len(s) >= _SHORTEST}:
            self.by_prefix.setdefault(secret[:_SHORTEST], []).append(secret)
            if "*" in secret:  # may appear only once others are replaced by ***
                self.starred.append(secret)

    def candidates(self, text: str) -> set[str]:
        """Every secret that can occur in ``text`` as its replacements go on: those whose
        start occurs in it (text outside a replacement is unchanged), and those holding a
        ``*`` (an occurrence made across a replacement)."""
        found = set(self.starred)
        index = self.by_prefix
        for i in range(len(text) - _SHORTEST + 1):
            hit = index.get(text[i : i + _SHORTEST])
            if hit is not None:
                found.update(hit)
        return found


_indexes: dict[int, _Index] = {}


def _secrets_in(text: str, secrets: Iterable[str]) -> Iterable[str]:
    """The secrets to try on ``text``; a large tuple seen before is looked up by prefix."""
    if not isinstance(secrets, tuple) or len(secrets) < _INDEXED_FROM:
        return {s for s in secrets if s and len(s) >= _SHORTEST}
    index = _indexes.get(id(secrets))
    if index is None or index.secrets is not secrets:
        if len(_indexes) >= _KEPT:
            _indexes.clear()
        index = _indexes[id(secrets)] = _Index(secrets)
    return index.candidates(text)


def _replace(text: str, secrets: Iterable[str]) -> str:
    # Longest first, so a secret that contains another is replaced whole; equal lengths
    # in one order whatever the set's, so overlapping ones always give the same text.
    for secret in sorted(secrets, key=lambda s: (-len(s), s)):
        text = text.replace(secret, REDACTED)
    return text


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with credentials and the given secret values replaced by ``***``."""
    text = _replace(text, _secrets_in(text, secrets))
    text = _URL_USERINFO.sub(rf"\g<scheme>{REDACTED}@", text)
    text = _SECRET_PARAM.sub(rf"\g<name>\g<sep>{REDACTED}", text)
    return _IMAGE_TOKEN.sub(rf"\g<1>{REDACTED}\g<2>", text)
