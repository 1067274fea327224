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


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with credentials and the given secret values replaced by ``***``."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = _URL_USERINFO.sub(rf"\g<scheme>{REDACTED}@", text)
    text = _SECRET_PARAM.sub(rf"\g<name>\g<sep>{REDACTED}", text)
    return _IMAGE_TOKEN.sub(rf"\g<1>{REDACTED}\g<2>", text)
