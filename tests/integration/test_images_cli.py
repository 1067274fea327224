"""The ``gitfirm image`` commands end to end on a config repository with file URLs."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
import yaml

from reconciler.cli import main
from reconciler.images import minisign
from tests.support.images import SignedImage, make_image


def _repo(root: Path, images: list[SignedImage]) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "trust").mkdir(exist_ok=True)
    for si in images:
        doc = si.image.model_dump(mode="json", exclude_defaults=True)
        (root / "images" / f"{si.image.name}.yaml").write_text(yaml.safe_dump(doc))
    trust = images[0].trust.model_dump(mode="json", exclude_defaults=True)
    (root / "trust" / "trust.yaml").write_text(yaml.safe_dump(trust))
    return root


def _export(bundle: Path, repo: Path, cache: str, *names: str) -> int:
    return main(
        ["image", "export", "--out", str(bundle), "--repo", str(repo), "--cache-dir", cache, *names]
    )


@pytest.fixture
def two(tmp_path: Path) -> list[SignedImage]:
    key = minisign.generate_keypair()
    return [
        make_image(tmp_path / "src", version="1.4.3", key=key),
        make_image(tmp_path / "src", version="1.4.2", key=key, channel="testing"),
    ]


def test_fetch_ls_export_import_gc(
    tmp_path: Path, two: list[SignedImage], capsys: pytest.CaptureFixture[str]
) -> None:
    repo = _repo(tmp_path / "repo", two)
    cache = str(tmp_path / "cache")
    assert main(["image", "fetch", str(repo), "--cache-dir", cache]) == 0
    out = capsys.readouterr().out
    assert "vyos-1-4-3: verified" in out and "vyos-1-4-2: verified" in out
    assert main(["image", "ls", "--cache-dir", cache]) == 0
    listing = capsys.readouterr().out
    assert "vyos-1.4.3-generic-amd64.iso" in listing and "production=" in listing

    bundle = tmp_path / "offline.tar"
    assert _export(bundle, repo, cache, "vyos-1-4-3") == 0
    with tarfile.open(bundle) as tar:
        names = set(tar.getnames())
    assert {
        "manifest.json",
        "images/vyos-1.4.3-generic-amd64.iso",
        "images/vyos-1.4.3-generic-amd64.iso.minisig",
        "documents/Image/vyos-1-4-3.json",
        "documents/TrustPolicy/trust.json",
    } <= names
    site = str(tmp_path / "site")
    assert main(["image", "import", str(bundle), "--repo", str(repo), "--cache-dir", site]) == 0
    assert "vyos-1-4-3: verified" in capsys.readouterr().out

    (repo / "images" / "vyos-1-4-2.yaml").unlink()
    assert (
        main(["image", "gc", "--repo", str(repo), "--cache-dir", cache, "--retention-days", "0"])
        == 0
    )
    assert "marked=1" in capsys.readouterr().out
    assert (
        main(["image", "gc", "--repo", str(repo), "--cache-dir", cache, "--retention-days", "0"])
        == 0
    )
    assert "removed=1" in capsys.readouterr().out


def test_import_of_a_tampered_bundle_stores_nothing(
    tmp_path: Path, two: list[SignedImage], capsys: pytest.CaptureFixture[str]
) -> None:
    repo = _repo(tmp_path / "repo", two)
    cache = str(tmp_path / "cache")
    assert main(["image", "fetch", str(repo), "--cache-dir", cache]) == 0
    bundle = tmp_path / "b.tar"
    assert _export(bundle, repo, cache, "vyos-1-4-3", "vyos-1-4-2") == 0
    raw = bytearray(bundle.read_bytes())
    at = raw.find(b"GITFIRM-SIMULATED-ISO/1\nversion: 1.4.2")
    raw[at + 2000] ^= 0xFF  # one byte inside the second image
    bundle.write_bytes(bytes(raw))
    capsys.readouterr()
    site = tmp_path / "site"
    imported = ["image", "import", str(bundle), "--repo", str(repo), "--cache-dir", str(site)]
    assert main(imported) == 1
    assert "refused: sha256-mismatch" in capsys.readouterr().out
    assert not list((site / "meta").glob("*.json"))
    assert [p for p in (site / "blobs").rglob("*") if p.is_file()] == []


def test_verify_command(
    tmp_path: Path, two: list[SignedImage], capsys: pytest.CaptureFixture[str]
) -> None:
    si = two[0]
    pub = tmp_path / "k.pub"
    minisign.write_public_key(pub, si.key.public)
    args = ["image", "verify", str(si.file), "--minisig", str(si.minisig), "--public-key", str(pub)]
    assert main(args) == 0
    assert "verified sha256=" in capsys.readouterr().out
    other = tmp_path / "o.pub"
    minisign.write_public_key(other, minisign.generate_keypair().public)
    assert main([*args[:-1], str(other)]) == 1
    assert capsys.readouterr().out.startswith("refused: key-not-trusted")
    assert main(["image", "verify", str(si.file)]) == 2
