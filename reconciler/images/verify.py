"""The one verification entry point: plain inputs in, a plain :class:`Verified` out.

Order of checks: revoked, size, SHA-256, then the signature the Image document declares
(minisign or sigstore) against the one TrustPolicy that governs the image's channel. Each
refusal raises :class:`reconciler.errors.ImageRefused` with a stable reason code.

Trust has one root per channel: the keys of the TrustPolicy covering the channel, never a
union gathered across policies. The model refuses two TrustPolicies for one channel; this
stage refuses them again rather than pick one. Anti-rollback is not decided here: it
belongs to planning, which sees whole paths and the marks of completed upgrades.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import ImageRefused
from reconciler.images import minisign
from reconciler.images.hashing import Digests, hash_file
from reconciler.images.reasons import Reason
from reconciler.images.sigstore_check import SigstoreIdentity, verify_bundle
from reconciler.model.kinds import Image, TrustPolicy

__all__ = ["Verified", "check_signature", "precheck", "trust_for", "verify_image"]


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
    blake2b: str = ""
    """BLAKE2b-512 (hex), what a minisign signature signs: a stored image's signature is
    checked again at every use without reading its bytes. Empty in records written before
    it was kept."""


def trust_for(image: Image, policies: Sequence[TrustPolicy]) -> TrustPolicy:
    """The one TrustPolicy that governs the image's channel.

    Raises ``key-not-trusted`` when none covers it, or when several do: the keys of two
    policies are never merged, so no policy can widen another's trust.
    """
    channel = image.spec.channel
    covering = sorted((p for p in policies if channel in p.spec.channels), key=lambda p: p.name)
    if not covering:
        raise ImageRefused(Reason.KEY_NOT_TRUSTED, f"no TrustPolicy covers channel {channel}")
    if len(covering) > 1:
        names = ", ".join(p.name for p in covering)
        raise ImageRefused(
            Reason.KEY_NOT_TRUSTED,
            f"channel {channel} is covered by several TrustPolicies ({names}); keep one",
        )
    return covering[0]


def _minisign(
    image: Image, digests: Digests, sig_path: Path | None, policy: TrustPolicy
) -> tuple[int | None, str]:
    spec = image.spec.signature.minisign
    assert spec is not None
    if sig_path is None or not sig_path.is_file():
        raise ImageRefused(Reason.SIGNATURE_MISSING, f"no minisign signature for {image.name}")
    sig = minisign.parse_signature(sig_path.read_text(encoding="utf-8", errors="replace"))
    pinned = [
        minisign.parse_public_key(k.publicKey) for k in policy.spec.minisign if k.name == spec.key
    ]
    signed = minisign.verify_digest(
        sig, digests.blake2b, pinned, file_name=image.spec.source.file_name
    )
    return signed.timestamp, f"minisign:{spec.key}:{signed.key_id_hex}"


def _sigstore(
    image: Image,
    digests: Digests,
    bundle_path: Path | None,
    policy: TrustPolicy,
    root_dir: Path,
) -> tuple[int | None, str]:
    if bundle_path is None or not bundle_path.is_file():
        raise ImageRefused(Reason.SIGNATURE_MISSING, f"no sigstore bundle for {image.name}")
    trust = policy.spec.sigstore
    if trust is None:
        raise ImageRefused(
            Reason.KEY_NOT_TRUSTED, f"no sigstore root is pinned for channel {image.spec.channel}"
        )
    identities = [SigstoreIdentity(i.identity, i.issuer) for i in trust.identities]
    signer = verify_bundle(digests.sha256, bundle_path, root_dir / trust.trustedRoot, identities)
    return None, f"sigstore:{signer}"


def check_signature(
    image: Image,
    digests: Digests,
    trust: Sequence[TrustPolicy],
    *,
    minisig: Path | None = None,
    bundle: Path | None = None,
    root_dir: Path = Path(),
) -> tuple[int | None, str]:
    """Check the declared signature over known digests; returns (signed time, signer).

    No byte of the image is read: minisign signs the BLAKE2b-512 and sigstore the SHA-256,
    both in ``digests``. Raises :class:`ImageRefused`.
    """
    policy = trust_for(image, trust)
    if image.spec.signature.minisign is not None:
        return _minisign(image, digests, minisig, policy)
    return _sigstore(image, digests, bundle, policy, root_dir)


def precheck(image: Image) -> None:
    """The checks that need no bytes (revoked), run before any download."""
    if image.spec.revoked:
        raise ImageRefused(Reason.REVOKED, image.spec.revokedReason or f"{image.name} is revoked")


def verify_image(
    image: Image,
    file: Path,
    trust: Sequence[TrustPolicy],
    *,
    minisig: Path | None = None,
    bundle: Path | None = None,
    root_dir: Path = Path(),
    digests: Digests | None = None,
) -> Verified:
    """Verify ``file`` as the image ``image`` describes; raises ImageRefused on any doubt.

    ``digests`` may carry hashes computed while downloading, so the file is not read again.
    ``root_dir`` is the config repository root, against which trusted-root paths resolve.
    The record carries the BLAKE2b-512, so the store can check the signature again later
    without re-hashing.
    """
    spec = image.spec
    precheck(image)
    # Mismatches never say what was read: a file: source may name any file on this host.
    actual = file.stat().st_size
    if actual != spec.size:
        raise ImageRefused(
            Reason.SIZE_MISMATCH, f"{file.name} is not the {spec.size} bytes the Image declares"
        )
    if digests is None or digests.size != actual:
        digests = hash_file(file)
    if digests.sha256 != spec.sha256:
        raise ImageRefused(
            Reason.SHA256_MISMATCH, f"{file.name} does not have the SHA-256 the Image declares"
        )
    stamp, signer = check_signature(
        image, digests, trust, minisig=minisig, bundle=bundle, root_dir=root_dir
    )
    return Verified(
        image.name,
        spec.source.file_name,
        spec.version,
        spec.channel,
        digests.sha256,
        digests.size,
        stamp,
        signer,
        digests.blake2b.hex(),
    )
