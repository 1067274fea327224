"""Interoperability with the reference ``minisign`` tool (0.11), both directions."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from reconciler.errors import ImageRefused
from reconciler.images import minisign
from reconciler.images.hashing import hash_file
from reconciler.images.reasons import Reason

TOOL = shutil.which("minisign")
pytestmark = pytest.mark.skipif(
    TOOL is None, reason="the reference minisign binary is not installed (apt-get install minisign)"
)
NAME = "vyos-1.5-rolling-202410230007-generic-amd64.iso"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    assert TOOL is not None
    return subprocess.run(
        [TOOL, *args], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
    )


@pytest.fixture
def iso(tmp_path: Path) -> Path:
    path = tmp_path / NAME
    path.write_bytes(bytes(range(256)) * 5000)
    return path


@pytest.fixture
def tool_keys(tmp_path: Path) -> tuple[Path, Path]:
    pub, sec = tmp_path / "tool.pub", tmp_path / "tool.key"
    done = _run("-G", "-W", "-p", str(pub), "-s", str(sec))
    assert done.returncode == 0, done.stderr
    return pub, sec


def _verify(sig_path: Path, iso: Path, key: minisign.PublicKey) -> minisign.SignedComment:
    sig = minisign.parse_signature(sig_path.read_text())
    return minisign.verify_digest(sig, hash_file(iso).blake2b, [key], file_name=iso.name)


def test_tool_signature_verifies(iso: Path, tool_keys: tuple[Path, Path]) -> None:
    pub, sec = tool_keys
    done = _run("-S", "-s", str(sec), "-m", str(iso))
    assert done.returncode == 0, done.stderr
    signed = _verify(Path(f"{iso}.minisig"), iso, minisign.read_public_key(pub))
    assert signed.file == NAME
    assert signed.timestamp is not None and signed.timestamp > 1_600_000_000


def test_tool_signature_changed_byte(iso: Path, tool_keys: tuple[Path, Path]) -> None:
    pub, sec = tool_keys
    assert _run("-S", "-s", str(sec), "-m", str(iso)).returncode == 0
    data = bytearray(iso.read_bytes())
    data[-1] ^= 0xFF
    iso.write_bytes(bytes(data))
    with pytest.raises(ImageRefused) as info:
        _verify(Path(f"{iso}.minisig"), iso, minisign.read_public_key(pub))
    assert info.value.reason == Reason.SIGNATURE_INVALID


def test_tool_legacy_signature_is_refused(iso: Path, tool_keys: tuple[Path, Path]) -> None:
    pub, sec = tool_keys
    assert _run("-S", "-l", "-s", str(sec), "-m", str(iso)).returncode == 0
    with pytest.raises(ImageRefused) as info:
        _verify(Path(f"{iso}.minisig"), iso, minisign.read_public_key(pub))
    assert info.value.reason == Reason.LEGACY_SIGNATURE


def test_our_signature_verifies_with_tool(iso: Path, tmp_path: Path) -> None:
    key = minisign.generate_keypair()
    minisign.write_public_key(tmp_path / "our.pub", key.public)
    sig = minisign.sign_file(iso, key, timestamp=1_700_000_000)
    Path(f"{iso}.minisig").write_text(minisign.format_signature(sig))
    done = _run("-V", "-p", str(tmp_path / "our.pub"), "-m", str(iso))
    assert done.returncode == 0, done.stderr
    assert f"timestamp:1700000000\tfile:{NAME}\thashed" in done.stdout


def test_keys_move_between_tool_and_us(
    iso: Path, tmp_path: Path, tool_keys: tuple[Path, Path]
) -> None:
    pub, sec = tool_keys
    assert minisign.read_secret_key(sec).public == minisign.read_public_key(pub)
    ours = minisign.generate_keypair()
    minisign.write_secret_key(tmp_path / "our.key", ours)
    done = _run("-S", "-s", str(tmp_path / "our.key"), "-m", str(iso))
    assert done.returncode == 0, done.stderr
    assert _verify(Path(f"{iso}.minisig"), iso, ours.public).key_id_hex == ours.public.key_id_hex
