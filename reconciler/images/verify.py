"""The one verification entry point: plain inputs in, a plain :class:`Verified` out.

Order of checks: revoked, anti-rollback, size, SHA-256, then the signature the Image
document declares (minisign or sigstore) against the TrustPolicies of the image's channel.
Each refusal raises :class:`reconciler.errors.ImageRefused` with a stable reason code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import ImageRefused
from reconciler.images import minisign
from reconciler.images.hashing import Digests, hash_file
from reconciler.images.reasons import Reason
from reconciler.images.rollback import RollbackGuard
from reconciler.images.sigstore_check import SigstoreIdentity, verify_bundle
from reconciler.model.kinds import Image, TrustPolicy

__all__ = ["Verified", "precheck", "trust_for", "verify_image"]


@dataclass(frozen=True, slots=True)
class Verified:
    """What verification proved about one image file."""

    name: str
    file_name: str
    version: str
    channel: str
    sha256: str
    size: int
    signed_timestamp: int | None
    signer: str


def trust_for(image: Image, policies: Sequence[TrustPolicy]) -> list[TrustPolicy]:
    """The TrustPolicies that cover the image's channel."""
    return [p for p in policies if image.spec.channel in p.spec.channels]


def _minisign(
    image: Image, digests: Digests, sig_path: Path | None, policies: list[TrustPolicy]
) -> tuple[int | None, str]:
    spec = image.spec.signature.minisign
    assert spec is not None
    if sig_path is None or not sig_path.is_file():
        raise ImageRefused(Reason.SIGNATURE_MISSING, f"no minisign signature for {image.name}")
    sig = minisign.parse_signature(sig_path.read_text(encoding="utf-8", errors="replace"))
    pinned = [
        minisign.parse_public_key(k.publicKey)
        for p in policies
        for k in p.spec.minisign
        if k.name == spec.key
    ]
    signed = minisign.verify_digest(
        sig, digests.blake2b, pinned, file_name=image.spec.source.file_name
    )
    return signed.timestamp, f"minisign:{spec.key}:{signed.key_id_hex}"


def _sigstore(
    image: Image,
    digests: Digests,
    bundle_path: Path | None,
    policies: list[TrustPolicy],
    root_dir: Path,
) -> tuple[int | None, str]:
    if bundle_path is None or not bundle_path.is_file():
        raise ImageRefused(Reason.SIGNATURE_MISSING, f"no sigstore bundle for {image.name}")
    pinned = [p.spec.sigstore for p in policies if p.spec.sigstore is not None]
    if not pinned:
        raise ImageRefused(
            Reason.KEY_NOT_TRUSTED, f"no sigstore root is pinned for channel {image.spec.channel}"
        )
    failure: ImageRefused | None = None
    for trust in pinned:
        identities = [SigstoreIdentity(i.identity, i.issuer) for i in trust.identities]
        try:
            signer = verify_bundle(
                digests.sha256, bundle_path, root_dir / trust.trustedRoot, identities
            )
        except ImageRefused as e:
            failure = e
            continue
        return None, f"sigstore:{signer}"
    assert failure is not None
    raise failure


def precheck(
    image: Image, *, guard: RollbackGuard | None = None, allow_downgrade: bool = False
) -> None:
    """The checks that need no bytes (revoked, anti-rollback), run before any download."""
    if image.spec.revoked:
        raise ImageRefused(Reason.REVOKED, image.spec.revokedReason or f"{image.name} is revoked")
    if guard is not None:
        guard.check(image, allow_downgrade=allow_downgrade)


def verify_image(
    image: Image,
    file: Path,
    trust: Sequence[TrustPolicy],
    *,
    minisig: Path | None = None,
    bundle: Path | None = None,
    root_dir: Path = Path(),
    digests: Digests | None = None,
    guard: RollbackGuard | None = None,
    allow_downgrade: bool = False,
) -> Verified:
    """Verify ``file`` as the image ``image`` describes; raises ImageRefused on any doubt.

    ``digests`` may carry hashes computed while downloading, so the file is not read again.
    ``root_dir`` is the config repository root, against which trusted-root paths resolve.
    With a ``guard`` the anti-rollback gate runs too, and a verified image raises its mark.
    """
    spec = image.spec
    precheck(image, guard=guard, allow_downgrade=allow_downgrade)
    actual = file.stat().st_size
    if actual != spec.size:
        raise ImageRefused(
            Reason.SIZE_MISMATCH, f"{file.name} has {actual} bytes, the Image declares {spec.size}"
        )
    if digests is None or digests.size != actual:
        digests = hash_file(file)
    if digests.sha256 != spec.sha256:
        raise ImageRefused(
            Reason.SHA256_MISMATCH, f"{file.name} has SHA-256 {digests.sha256}, not {spec.sha256}"
        )
    policies = trust_for(image, trust)
    if spec.signature.minisign is not None:
        stamp, signer = _minisign(image, digests, minisig, policies)
    else:
        stamp, signer = _sigstore(image, digests, bundle, policies, root_dir)
    if guard is not None:
        guard.accept(image)
    return Verified(
        image.name,
        spec.source.file_name,
        spec.version,
        spec.channel,
        digests.sha256,
        digests.size,
        stamp,
        signer,
    )
