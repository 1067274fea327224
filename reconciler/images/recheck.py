"""Verification at use: a stored image is checked against the trust in force each time.

The store proves that bytes were verified once, under the Image documents and the
TrustPolicies of that moment. Trust changes: a key is removed, an image is re-declared in
another channel, or under another version. So every use checks the stored signature again
over the digests kept in the store metadata (no re-hash), against the one TrustPolicy that
governs the image's channel now, and refuses bytes declared under a version other than the
one they were verified as.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from reconciler.errors import ImageRefused
from reconciler.images.hashing import Digests, hash_file
from reconciler.images.reasons import Reason
from reconciler.images.store import ImageStore, StoredImage
from reconciler.images.verify import Verified, check_signature, precheck
from reconciler.model.kinds import Image, TrustPolicy

__all__ = ["recheck"]


def _digests(store: ImageStore, stored: StoredImage) -> Digests:
    verified = stored.verified
    if verified.blake2b:
        return Digests(verified.sha256, bytes.fromhex(verified.blake2b), verified.size)
    # A record from before the hash was kept: hash once, and keep it from now on.
    digests = hash_file(stored.path)
    if digests.sha256 != verified.sha256:
        raise ImageRefused(
            Reason.SHA256_MISMATCH, f"stored bytes of {verified.file_name} changed on disk"
        )
    store.record(replace(verified, blake2b=digests.blake2b.hex()))
    return digests


def recheck(
    image: Image,
    stored: StoredImage,
    trust: Sequence[TrustPolicy],
    *,
    store: ImageStore,
    root_dir: Path = Path(),
) -> Verified:
    """The stored image, checked against ``image`` and ``trust`` as they are now.

    Raises :class:`ImageRefused`: ``revoked``; ``relabelled`` when the document declares a
    version or size other than the one the bytes were verified as; any signature refusal
    (``key-not-trusted`` when the key was removed or the channel's policy pins another).
    """
    precheck(image)
    verified = stored.verified
    if verified.version != image.spec.version or verified.size != image.spec.size:
        raise ImageRefused(
            Reason.RELABELLED,
            f"{image.name} declares version {image.spec.version} ({image.spec.size} bytes) "
            f"for bytes verified as {verified.version} ({verified.size} bytes); "
            "an image's version never changes: declare the right one",
        )
    sig = stored.signature
    suffix = sig.suffix if sig is not None else ""
    stamp, signer = check_signature(
        image,
        _digests(store, stored),
        trust,
        minisig=sig if suffix == ".minisig" else None,
        bundle=sig if suffix == ".sigstore" else None,
        root_dir=root_dir,
    )
    return replace(
        verified, name=image.name, channel=image.spec.channel, signer=signer, signed_timestamp=stamp
    )
