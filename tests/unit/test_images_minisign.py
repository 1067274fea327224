"""minisign: key files, prehashed signing and every refusal of the verifier."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from reconciler.errors import ImageRefused
from reconciler.images import minisign
from reconciler.images.hashing import hash_file
from reconciler.images.reasons import Reason

NAME = "vyos-1.4.3-generic-amd64.iso"


@pytest.fixture
def iso(tmp_path: Path) -> Path:
    path = tmp_path / NAME
    path.write_bytes(b"GITFIRM" + bytes(range(256)) * 4000)
    return path


def _refusal(sig: minisign.Signature, path: Path, keys: list[minisign.PublicKey]) -> str:
    with pytest.raises(ImageRefused) as info:
        minisign.verify_digest(sig, hash_file(path).blake2b, keys, file_name=NAME)
    return info.value.reason


def test_key_files_round_trip(tmp_path: Path) -> None:
    key = minisign.generate_keypair()
    minisign.write_secret_key(tmp_path / "k.key", key)
    minisign.write_public_key(tmp_path / "k.pub", key.public)
    assert minisign.read_secret_key(tmp_path / "k.key") == key
    assert minisign.read_public_key(tmp_path / "k.pub") == key.public
    assert (tmp_path / "k.key").stat().st_mode & 0o077 == 0
    pub_lines = (tmp_path / "k.pub").read_text().splitlines()
    assert pub_lines[0] == f"untrusted comment: minisign public key {key.public.key_id_hex}"
    assert pub_lines[1].startswith("RW") and len(pub_lines[1]) == 56
    assert minisign.parse_public_key(pub_lines[1]) == key.public


def test_secret_never_in_repr() -> None:
    key = minisign.generate_keypair()
    assert key.seed.hex() not in repr(key)
    assert key.public.key_id_hex in repr(key)


def test_sign_and_verify_records_timestamp(iso: Path) -> None:
    key = minisign.generate_keypair()
    text = minisign.format_signature(minisign.sign_file(iso, key, timestamp=1_700_000_000))
    lines = text.splitlines()
    assert lines[0] == "untrusted comment: signature from minisign secret key"
    assert lines[2] == f"trusted comment: timestamp:1700000000\tfile:{NAME}\thashed"
    digest = hashlib.blake2b(iso.read_bytes(), digest_size=64).digest()
    signed = minisign.verify_digest(
        minisign.parse_signature(text), digest, [key.public], file_name=NAME
    )
    assert signed.timestamp == 1_700_000_000
    assert signed.file == NAME
    assert signed.key_id_hex == key.public.key_id_hex


def test_changed_byte_is_signature_invalid(iso: Path) -> None:
    key = minisign.generate_keypair()
    sig = minisign.sign_file(iso, key, timestamp=1)
    data = bytearray(iso.read_bytes())
    data[100] ^= 1
    iso.write_bytes(bytes(data))
    assert _refusal(sig, iso, [key.public]) == Reason.SIGNATURE_INVALID


def test_unpinned_key_is_refused(iso: Path) -> None:
    sig = minisign.sign_file(iso, minisign.generate_keypair(), timestamp=1)
    other = minisign.generate_keypair().public
    assert _refusal(sig, iso, [other]) == Reason.KEY_NOT_TRUSTED
    assert _refusal(sig, iso, []) == Reason.KEY_NOT_TRUSTED


def test_tampered_trusted_comment_is_signature_invalid(iso: Path) -> None:
    key = minisign.generate_keypair()
    text = minisign.format_signature(minisign.sign_file(iso, key, timestamp=1))
    forged = text.replace("timestamp:1\t", "timestamp:9999999999\t")
    assert _refusal(minisign.parse_signature(forged), iso, [key.public]) == "signature-invalid"


def test_file_name_must_match(iso: Path) -> None:
    key = minisign.generate_keypair()
    sig = minisign.sign_file(iso, key, timestamp=1, file_name="vyos-1.3.0-generic-amd64.iso")
    assert _refusal(sig, iso, [key.public]) == Reason.FILE_MISMATCH


def test_legacy_algorithm_is_refused(iso: Path) -> None:
    key = minisign.generate_keypair()
    sig = minisign.sign_file(iso, key, timestamp=1)
    legacy = minisign.Signature(
        b"Ed", sig.key_id, sig.signature, sig.trusted_comment, sig.global_signature
    )
    assert _refusal(legacy, iso, [key.public]) == Reason.LEGACY_SIGNATURE


@pytest.mark.parametrize(
    "text",
    ["", "garbage", "untrusted comment: x\n!!!\ntrusted comment: y\nAAAA\n"],
)
def test_malformed_signature_is_signature_invalid(text: str) -> None:
    with pytest.raises(ImageRefused) as info:
        minisign.parse_signature(text)
    assert info.value.reason == Reason.SIGNATURE_INVALID


def test_encrypted_or_damaged_secret_key_is_rejected() -> None:
    text = minisign.generate_keypair().file_text()
    head, body = text.splitlines()
    raw = bytearray(base64.b64decode(body))
    raw[2:4] = b"Sc"
    encrypted = head + "\n" + base64.b64encode(bytes(raw)).decode()
    with pytest.raises(minisign.MinisignError, match="encrypted"):
        minisign.parse_secret_key(encrypted)
    raw[2:4] = b"\0\0"
    raw[70] ^= 1
    damaged = head + "\n" + base64.b64encode(bytes(raw)).decode()
    with pytest.raises(minisign.MinisignError):
        minisign.parse_secret_key(damaged)


def test_one_pass_digests_match_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "f"
    data = bytes(range(256)) * 70_001
    path.write_bytes(data)
    digests = hash_file(path, chunk_size=65_536)
    assert digests.sha256 == hashlib.sha256(data).hexdigest()
    assert digests.blake2b == hashlib.blake2b(data).digest()
    assert digests.size == len(data)
