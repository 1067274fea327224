"""The stable reason codes carried by :class:`reconciler.errors.ImageRefused`.

Status files, notifications and the CLI print these codes; they never change meaning.
"""

from __future__ import annotations

import enum

__all__ = ["Reason"]


class Reason(enum.StrEnum):
    """Why an image was refused."""

    SIZE_EXCEEDED = "size-exceeded"  # the download ran past the declared size
    SIZE_MISMATCH = "size-mismatch"  # the file is shorter or longer than declared
    SHA256_MISMATCH = "sha256-mismatch"
    SIGNATURE_MISSING = "signature-missing"
    LEGACY_SIGNATURE = "legacy-signature"  # minisign ``Ed``: signs raw bytes, not prehashed
    KEY_NOT_TRUSTED = "key-not-trusted"
    SIGNATURE_INVALID = "signature-invalid"
    FILE_MISMATCH = "file-mismatch"  # trusted comment ``file:`` names another file
    SIGSTORE_INVALID = "sigstore-invalid"
    SIGSTORE_IDENTITY_MISMATCH = "sigstore-identity-mismatch"
    RELABELLED = "relabelled"  # stored bytes declared under another version or size
    REVOKED = "revoked"
