"""Offline bundles: carry verified images to an air-gapped site on a USB stick.

A bundle is an uncompressed tar::

    manifest.json                     format, images (name, file, sha256, size, signature)
    documents/Image/<name>.json       the Image documents
    documents/TrustPolicy/<name>.json the TrustPolicies covering their channels
    roots/<path>                      the sigstore trusted roots those policies pin
    images/<file>, images/<file>.minisig | .sigstore

Import reads only the members the manifest names, as regular files with plain names, caps
each at its declared size, and verifies every image completely before any of them enters
the store. No network is used. Trust comes from the caller (the local config repository)
and only from it: the TrustPolicies a bundle carries document where it came from, and are
never trusted on import.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from reconciler.errors import ImageError
from reconciler.images.store import ImageStore
from reconciler.images.verify import Verified, precheck, trust_for, verify_image
from reconciler.model.kinds import Image, TrustPolicy

__all__ = ["BUNDLE_FORMAT", "Bundle", "export_bundle", "import_bundle", "read_bundle"]

BUNDLE_FORMAT = "gitfirm-bundle/1"
_DOC_MAX = 1 << 20  # a document or root is small; refuse anything larger


@dataclass(frozen=True)
class Bundle:
    """The documents of a bundle, read without touching the images."""

    images: list[Image]
    trust: list[TrustPolicy]
    manifest: dict[str, Any]


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _doc_bytes(doc: Image | TrustPolicy) -> bytes:
    return (json.dumps(doc.model_dump(mode="json"), indent=2, sort_keys=True) + "\n").encode()


def export_bundle(
    out: Path,
    images: Sequence[Image],
    trust: Sequence[TrustPolicy],
    store: ImageStore,
    *,
    root_dir: Path = Path(),
) -> list[str]:
    """Write a bundle of stored (hence verified) images; returns the member names."""
    entries: list[dict[str, Any]] = []
    policies: dict[str, TrustPolicy] = {}
    for image in images:
        stored = store.get(image.spec.sha256)
        if stored is None:
            raise ImageError(f"{image.name} is not in the store; run `gitfirm image fetch` first")
        sig = stored.signature
        entries.append(
            {
                "name": image.name,
                "file": stored.verified.file_name,
                "sha256": image.spec.sha256,
                "size": image.spec.size,
                "signature": f"{stored.verified.file_name}{sig.suffix}" if sig else None,
            }
        )
        policy = trust_for(image, trust)
        policies[policy.name] = policy
    roots = sorted(
        {p.spec.sigstore.trustedRoot for p in policies.values() if p.spec.sigstore is not None}
    )
    manifest = {
        "format": BUNDLE_FORMAT,
        "images": entries,
        "trust": sorted(policies),
        "roots": roots,
    }
    tmp = out.with_name(f".{out.name}.part")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, "manifest.json", json.dumps(manifest, indent=2, sort_keys=True).encode())
        for image in images:
            _add_bytes(tar, f"documents/Image/{image.name}.json", _doc_bytes(image))
        for name, policy in sorted(policies.items()):
            _add_bytes(tar, f"documents/TrustPolicy/{name}.json", _doc_bytes(policy))
        for root in roots:
            tar.add(root_dir / root, arcname=f"roots/{root}", recursive=False)
        for image, entry in zip(images, entries, strict=True):
            stored = store.get(image.spec.sha256)
            assert stored is not None
            tar.add(stored.path, arcname=f"images/{entry['file']}", recursive=False)
            if stored.signature is not None:
                tar.add(stored.signature, arcname=f"images/{entry['signature']}", recursive=False)
        names = tar.getnames()
    tmp.replace(out)
    return names


def _safe(name: str) -> str:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ImageError(f"unsafe path in bundle: {name!r}")
    return str(path)


def _member(tar: tarfile.TarFile, name: str, limit: int) -> tarfile.TarInfo:
    try:
        info = tar.getmember(_safe(name))
    except KeyError:
        raise ImageError(f"bundle lacks {name}") from None
    if not info.isreg():
        raise ImageError(f"bundle member {name} is not a regular file")
    if info.size > limit:
        raise ImageError(f"bundle member {name} is larger than expected ({info.size} bytes)")
    return info


def _read(tar: tarfile.TarFile, name: str, limit: int = _DOC_MAX) -> bytes:
    f = tar.extractfile(_member(tar, name, limit))
    assert f is not None
    return f.read(limit + 1)[:limit]


def _extract(tar: tarfile.TarFile, name: str, dest: Path, limit: int) -> Path:
    src = tar.extractfile(_member(tar, name, limit))
    assert src is not None
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    return dest


def read_bundle(path: Path) -> Bundle:
    """The manifest and documents of a bundle."""
    try:
        with tarfile.open(path, "r:") as tar:
            manifest = json.loads(_read(tar, "manifest.json"))
            if manifest.get("format") != BUNDLE_FORMAT:
                raise ImageError(f"not a {BUNDLE_FORMAT} bundle")
            images = [
                Image.model_validate_json(_read(tar, f"documents/Image/{_safe(e['name'])}.json"))
                for e in manifest["images"]
            ]
            trust = [
                TrustPolicy.model_validate_json(
                    _read(tar, f"documents/TrustPolicy/{_safe(n)}.json")
                )
                for n in manifest["trust"]
            ]
    except (tarfile.TarError, ValueError, KeyError, TypeError) as e:
        raise ImageError(f"cannot read bundle {path.name}: {e}") from None
    return Bundle(images, trust, manifest)


def import_bundle(
    path: Path,
    store: ImageStore,
    *,
    trust: Sequence[TrustPolicy],
    root_dir: Path,
) -> list[Verified]:
    """Verify every image of a bundle, then add them all to the store.

    Any refusal raises before the store changes. ``trust`` and ``root_dir`` pin trust from
    the local config repository: the bundle's own TrustPolicies are never trusted, since
    whoever wrote the bundle could have pinned their own key in them.
    """
    bundle = read_bundle(path)
    entries = bundle.manifest["images"]
    with tempfile.TemporaryDirectory(dir=store.tmp, prefix="import-") as tmp:
        staging = Path(tmp)
        checked: list[tuple[Verified, Path, tuple[str, Path] | None]] = []
        with tarfile.open(path, "r:") as tar:
            for image, entry in zip(bundle.images, entries, strict=True):
                precheck(image)
                file = _safe(entry["file"])
                if file != image.spec.source.file_name or "/" in file:
                    raise ImageError(f"bundle entry {file!r} does not match {image.name}")
                blob = _extract(tar, f"images/{file}", staging / "images" / file, image.spec.size)
                sig: tuple[str, Path] | None = None
                if entry.get("signature"):
                    sig_name = _safe(entry["signature"])
                    suffix = sig_name.removeprefix(file)
                    sig_path = _extract(
                        tar, f"images/{sig_name}", staging / "images" / sig_name, _DOC_MAX
                    )
                    sig = (suffix, sig_path)
                verified = verify_image(
                    image,
                    blob,
                    trust,
                    minisig=sig[1] if sig and sig[0] == ".minisig" else None,
                    bundle=sig[1] if sig and sig[0] == ".sigstore" else None,
                    root_dir=root_dir,
                )
                checked.append((verified, blob, sig))
        # Everything verified: only now does anything enter the store.
        return [store.add(v, blob, sig).verified for v, blob, sig in checked]
