"""Browser sessions for the operator surface: an HMAC-signed cookie instead of a header.

A browser cannot send ``Authorization: Bearer`` on a plain link, so the dashboard's login
form trades the operator token for a cookie. The cookie holds only an expiry time and an
HMAC over it, keyed by a key derived from the operator token: changing the token logs every
browser out, and nothing in the cookie reveals the token. It is ``HttpOnly`` (no script
reads it) and ``SameSite=Strict`` (no other site's page can make the browser send it).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

__all__ = ["COOKIE", "SessionSigner"]

COOKIE = "gitfirm_session"
_CONTEXT = b"gitfirm dashboard session v1"


class SessionSigner:
    """Issues and checks session cookies for one operator token."""

    def __init__(
        self,
        token: str,
        *,
        lifetime: float = 12 * 3600.0,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._token = token.encode("utf-8")
        self._key = hmac.new(self._token, _CONTEXT, hashlib.sha256).digest()
        self.lifetime = lifetime
        self._now = now

    def token_matches(self, given: str) -> bool:
        """Whether ``given`` is the operator token (constant time)."""
        return hmac.compare_digest(given.encode("utf-8"), self._token)

    def _mac(self, expiry: str) -> str:
        return hmac.new(self._key, expiry.encode("ascii"), hashlib.sha256).hexdigest()

    def issue(self) -> str:
        """A fresh cookie value, valid for :attr:`lifetime` seconds."""
        expiry = str(int(self._now() + self.lifetime))
        return f"{expiry}.{self._mac(expiry)}"

    def valid(self, value: str | None) -> bool:
        """Whether ``value`` is a cookie this signer issued and it has not expired."""
        if not value:
            return False
        expiry, _, mac = value.partition(".")
        if not expiry.isdigit() or len(expiry) > 12:
            return False
        if not hmac.compare_digest(mac.encode("ascii", "replace"), self._mac(expiry).encode()):
            return False
        return int(expiry) > self._now()
