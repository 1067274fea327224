"""minisign, implemented on ``cryptography`` (Ed25519) and ``hashlib`` (BLAKE2b-512).

Formats, byte for byte those of the reference tool (minisign 0.11):

- **Public key** file: ``untrusted comment: minisign public key <KEYID>`` then the base64 of
  ``b"Ed" + key_id (8) + ed25519_public_key (32)``. ``<KEYID>`` is the key id read as a
  little-endian 64-bit integer, in upper-case hex, as the tool prints it.
- **Secret key** file: the tool's *unencrypted* layout (``minisign -G -W``), so keys move
  freely between gitfirm and the tool: ``untrusted comment: ...`` then the base64 of
  ``b"Ed" + kdf b"\\0\\0" (none) + b"B2" + salt (32) + opslimit (8) + memlimit (8) + key_id (8)
  + secret (64: seed || public key) + checksum (32)``, where the checksum is the BLAKE2b-256
  of ``b"Ed" + key_id + secret`` (the tool itself leaves it all zero for ``-W`` keys).
  It is **not encrypted**: anyone who reads it can sign. Use it for tests and the demo key
  in the repository only, never for a production key.
- **Signature** (``.minisig``): ``untrusted comment: <text>``, the base64 of
  ``b"ED" + key_id + signature (64)`` where the signature is over the BLAKE2b-512 of the file
  (legacy ``b"Ed"`` signs the raw file and is refused), ``trusted comment: <text>``, and the
  base64 of a global signature over ``signature || text``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from reconciler.errors import ImageRefused
from reconciler.images.hashing import hash_file
from reconciler.images.reasons import Reason

__all__ = [
    "MinisignError",
    "PublicKey",
    "SecretKey",
    "Signature",
    "SignedComment",
    "format_signature",
    "generate_keypair",
    "parse_public_key",
    "parse_secret_key",
    "parse_signature",
    "read_public_key",
    "read_secret_key",
    "sign_digest",
    "sign_file",
    "trusted_comment_for",
    "verify_digest",
    "write_public_key",
    "write_secret_key",
]

_PREFIX = "untrusted comment: "
_TRUSTED_PREFIX = "trusted comment: "
_ALG_PREHASHED = b"ED"
_ALG_LEGACY = b"Ed"
_KDF_NONE = b"\0\0"
_CHK_ALG = b"B2"
_TRUSTED_MAX = 8192  # the tool's TRUSTEDCOMMENTMAXBYTES
_TIMESTAMP = re.compile(r"(?:^|\t)timestamp:(\d+)(?:\t|$)")
_FILE = re.compile(r"(?:^|\t)file:([^\t]*)(?:\t|$)")


class MinisignError(ValueError):
    """A key or signature file is malformed."""


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise MinisignError(f"{what} is not valid base64") from None


def _lines(text: str) -> list[str]:
    return [line.rstrip("\r") for line in text.splitlines() if line.strip()]


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A minisign public key: 8-byte key id and 32-byte Ed25519 key."""

    key_id: bytes
    key: bytes

    @property
    def key_id_hex(self) -> str:
        """The key id as the tool prints it (little-endian, upper-case hex)."""
        return self.key_id[::-1].hex().upper()

    def to_base64(self) -> str:
        """The base64 line of the ``.pub`` file (what a TrustPolicy pins)."""
        return base64.b64encode(_ALG_LEGACY + self.key_id + self.key).decode()

    def file_text(self) -> str:
        """The whole ``.pub`` file."""
        return f"{_PREFIX}minisign public key {self.key_id_hex}\n{self.to_base64()}\n"


@dataclass(frozen=True, slots=True, repr=False)
class SecretKey:
    """A minisign secret key. ``repr`` never shows the seed."""

    key_id: bytes
    seed: bytes
    public: PublicKey

    def __repr__(self) -> str:
        return f"SecretKey(key_id={self.public.key_id_hex})"

    def file_text(self) -> str:
        """The unencrypted secret key file (see the module docstring)."""
        secret = self.seed + self.public.key
        chk = hashlib.blake2b(_ALG_LEGACY + self.key_id + secret, digest_size=32).digest()
        raw = (
            _ALG_LEGACY
            + _KDF_NONE
            + _CHK_ALG
            + bytes(32)  # salt, unused without a KDF
            + bytes(16)  # opslimit and memlimit, unused without a KDF
            + self.key_id
            + secret
            + chk
        )
        comment = "minisign unencrypted secret key (gitfirm: tests and demo only)"
        return f"{_PREFIX}{comment}\n{base64.b64encode(raw).decode()}\n"


@dataclass(frozen=True, slots=True)
class Signature:
    """A parsed ``.minisig`` file."""

    algorithm: bytes
    key_id: bytes
    signature: bytes
    trusted_comment: str
    global_signature: bytes
    untrusted_comment: str = "signature from minisign secret key"


@dataclass(frozen=True, slots=True)
class SignedComment:
    """What a verified signature vouches for: its trusted comment and signed timestamp."""

    key_id_hex: str
    trusted_comment: str
    timestamp: int | None
    file: str | None


def generate_keypair() -> SecretKey:
    """A new random key pair with a random key id."""
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes_raw()
    key_id = os.urandom(8)
    return SecretKey(key_id, seed, PublicKey(key_id, private.public_key().public_bytes_raw()))


def parse_public_key(text: str) -> PublicKey:
    """A public key from a ``.pub`` file's text, or from its bare base64 line."""
    lines = _lines(text)
    if lines and lines[0].startswith(_PREFIX):
        lines = lines[1:]
    if not lines:
        raise MinisignError("the public key is empty")
    raw = _b64decode(lines[0], "the public key")
    if len(raw) != 42 or raw[:2] != _ALG_LEGACY:
        raise MinisignError("not a minisign Ed25519 public key")
    return PublicKey(raw[2:10], raw[10:])


def read_public_key(path: Path) -> PublicKey:
    """Read a ``.pub`` file."""
    return parse_public_key(path.read_text(encoding="utf-8"))


def write_public_key(path: Path, key: PublicKey) -> None:
    """Write a ``.pub`` file."""
    path.write_text(key.file_text(), encoding="utf-8")


def parse_secret_key(text: str) -> SecretKey:
    """An unencrypted secret key (``minisign -G -W`` layout); encrypted keys are refused."""
    lines = _lines(text)
    if len(lines) < 2 or not lines[0].startswith(_PREFIX):
        raise MinisignError("a secret key file has a comment line and a base64 line")
    raw = _b64decode(lines[1], "the secret key")
    if len(raw) != 158 or raw[:2] != _ALG_LEGACY or raw[4:6] != _CHK_ALG:
        raise MinisignError("not a minisign Ed25519 secret key")
    if raw[2:4] != _KDF_NONE:
        raise MinisignError("the secret key is encrypted; gitfirm reads unencrypted keys only")
    key_id, secret, chk = raw[54:62], raw[62:126], raw[126:158]
    # minisign 0.11 writes an all-zero checksum for -W keys; the derived public key below
    # still catches a damaged key.
    expected = hashlib.blake2b(_ALG_LEGACY + key_id + secret, digest_size=32).digest()
    if chk not in (expected, bytes(32)):
        raise MinisignError("the secret key checksum does not match")
    seed, public = secret[:32], secret[32:]
    derived = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    if derived != public:
        raise MinisignError("the secret key's public half does not match its seed")
    return SecretKey(key_id, seed, PublicKey(key_id, public))


def read_secret_key(path: Path) -> SecretKey:
    """Read an unencrypted secret key file."""
    return parse_secret_key(path.read_text(encoding="utf-8"))


def write_secret_key(path: Path, key: SecretKey) -> None:
    """Write an unencrypted secret key file, readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(key.file_text())


def trusted_comment_for(file_name: str, timestamp: int) -> str:
    """The trusted comment the tool writes: ``timestamp:<unix>\\tfile:<name>\\thashed``."""
    return f"timestamp:{timestamp}\tfile:{file_name}\thashed"


def sign_digest(blake2b_digest: bytes, key: SecretKey, trusted_comment: str) -> Signature:
    """Sign a BLAKE2b-512 digest (prehashed ``ED``) with a trusted comment."""
    if len(blake2b_digest) != 64:
        raise ValueError("a prehashed minisign signature signs a 64-byte BLAKE2b digest")
    comment = trusted_comment.encode()
    if b"\n" in comment or len(comment) > _TRUSTED_MAX:
        raise ValueError("a trusted comment is one line of at most 8192 bytes")
    private = Ed25519PrivateKey.from_private_bytes(key.seed)
    signature = private.sign(blake2b_digest)
    global_signature = private.sign(signature + comment)
    return Signature(_ALG_PREHASHED, key.key_id, signature, trusted_comment, global_signature)


def sign_file(
    path: Path, key: SecretKey, *, timestamp: int, file_name: str | None = None
) -> Signature:
    """Sign a file as ``minisign -S`` does; ``file_name`` defaults to the path's name."""
    digest = hash_file(path).blake2b
    return sign_digest(digest, key, trusted_comment_for(file_name or path.name, timestamp))


def format_signature(sig: Signature) -> str:
    """The ``.minisig`` file text."""
    return (
        f"{_PREFIX}{sig.untrusted_comment}\n"
        f"{base64.b64encode(sig.algorithm + sig.key_id + sig.signature).decode()}\n"
        f"{_TRUSTED_PREFIX}{sig.trusted_comment}\n"
        f"{base64.b64encode(sig.global_signature).decode()}\n"
    )


def parse_signature(text: str) -> Signature:
    """Parse a ``.minisig`` file; anything malformed is ``signature-invalid``."""
    lines = [line.rstrip("\r") for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    if len(lines) != 4 or not lines[0].startswith(_PREFIX):
        raise ImageRefused(Reason.SIGNATURE_INVALID, "not a minisign signature file")
    if not lines[2].startswith(_TRUSTED_PREFIX):
        raise ImageRefused(Reason.SIGNATURE_INVALID, "the signature has no trusted comment")
    try:
        raw = _b64decode(lines[1], "the signature")
        global_signature = _b64decode(lines[3], "the global signature")
    except MinisignError as e:
        raise ImageRefused(Reason.SIGNATURE_INVALID, str(e)) from None
    if len(raw) != 74 or len(global_signature) != 64:
        raise ImageRefused(Reason.SIGNATURE_INVALID, "the signature has the wrong length")
    return Signature(
        raw[:2],
        raw[2:10],
        raw[10:],
        lines[2][len(_TRUSTED_PREFIX) :],
        global_signature,
        lines[0][len(_PREFIX) :],
    )


def verify_digest(
    sig: Signature,
    blake2b_digest: bytes,
    trusted: list[PublicKey],
    *,
    file_name: str | None = None,
) -> SignedComment:
    """Check a signature over a file's BLAKE2b-512 digest against pinned keys.

    Raises :class:`ImageRefused` with ``legacy-signature``, ``key-not-trusted``,
    ``signature-invalid`` or, when ``file_name`` is given, ``file-mismatch``.
    """
    if sig.algorithm == _ALG_LEGACY:
        raise ImageRefused(
            Reason.LEGACY_SIGNATURE, "legacy minisign signature (Ed); only prehashed ED is allowed"
        )
    if sig.algorithm != _ALG_PREHASHED:
        raise ImageRefused(Reason.SIGNATURE_INVALID, "unknown minisign signature algorithm")
    key_id_hex = sig.key_id[::-1].hex().upper()
    key = next((k for k in trusted if k.key_id == sig.key_id), None)
    if key is None:
        raise ImageRefused(Reason.KEY_NOT_TRUSTED, f"key {key_id_hex} is not pinned for this image")
    public = Ed25519PublicKey.from_public_bytes(key.key)
    comment = sig.trusted_comment.encode()
    try:
        public.verify(sig.signature, blake2b_digest)
    except InvalidSignature:
        raise ImageRefused(
            Reason.SIGNATURE_INVALID, f"the signature by key {key_id_hex} does not match the file"
        ) from None
    try:
        public.verify(sig.global_signature, sig.signature + comment)
    except InvalidSignature:
        raise ImageRefused(
            Reason.SIGNATURE_INVALID, "the global signature over the trusted comment is invalid"
        ) from None
    stamp = _TIMESTAMP.search(sig.trusted_comment)
    named = _FILE.search(sig.trusted_comment)
    signed_file = named.group(1) if named else None
    if file_name is not None and signed_file != file_name:
        raise ImageRefused(
            Reason.FILE_MISMATCH,
            f"the trusted comment names file {signed_file!r}, not {file_name!r}",
        )
    return SignedComment(
        key_id_hex, sig.trusted_comment, int(stamp.group(1)) if stamp else None, signed_file
    )
