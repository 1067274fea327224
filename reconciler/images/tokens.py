"""Unguessable, expiring download tokens, one per device and image.

A token is the URL-safe base64 (no padding) of::

    version (1) | expiry in unix seconds (8) | image SHA-256 (32) | len(device) (1)
    | device | MAC (16)

where the MAC is HMAC-SHA256 under the server's secret, truncated to 16 bytes. Nothing is
stored server-side; a token made under another secret, or altered in any byte, is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
from dataclasses import dataclass
from datetime import timedelta

from reconciler.clock import Clock

__all__ = ["Grant", "TokenRefused", "TokenSigner"]

_VERSION = 1
_MAC_LEN = 16


class TokenRefused(Exception):
    """A token is malformed, forged or expired; ``reason`` is ``invalid`` or ``expired``."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"token {reason}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Grant:
    """What a valid token allows: one device may download one image until ``expires``."""

    device: str
    sha256: str
    expires: int


class TokenSigner:
    """Issues and checks tokens under one secret. ``repr`` never shows the secret."""

    def __init__(self, secret: bytes | None = None, *, clock: Clock) -> None:
        self._secret = secret if secret is not None else os.urandom(32)
        if len(self._secret) < 16:
            raise ValueError("a token secret needs at least 16 bytes")
        self._clock = clock

    def __repr__(self) -> str:
        return "TokenSigner(secret=***)"

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._secret, body, hashlib.sha256).digest()[:_MAC_LEN]

    def issue(self, device: str, sha256: str, ttl: timedelta) -> str:
        """A token letting ``device`` fetch the image ``sha256`` for ``ttl``."""
        name = device.encode()
        if len(name) > 255:
            raise ValueError("device name too long for a token")
        expires = int(self._clock.now().timestamp() + ttl.total_seconds())
        body = struct.pack(">BQ", _VERSION, expires) + bytes.fromhex(sha256)
        body += bytes([len(name)]) + name
        return base64.urlsafe_b64encode(body + self._mac(body)).decode().rstrip("=")

    def check(self, token: str) -> Grant:
        """The grant a token carries; raises :class:`TokenRefused`."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise TokenRefused("invalid") from None
        body, mac = raw[:-_MAC_LEN], raw[-_MAC_LEN:]
        if len(body) < 42 or not hmac.compare_digest(mac, self._mac(body)):
            raise TokenRefused("invalid")
        version, expires = struct.unpack(">BQ", body[:9])
        name_len = body[41]
        if version != _VERSION or len(body) != 42 + name_len:
            raise TokenRefused("invalid")
        if self._clock.now().timestamp() >= expires:
            raise TokenRefused("expired")
        return Grant(body[42:].decode(errors="replace"), body[9:41].hex(), expires)
