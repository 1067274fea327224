"""Offline sigstore bundle verification against a pinned trusted root.

sigstore 4.x does the cryptography: the certificate chain to the pinned root, the
transparency-log inclusion proof and signed timestamps, the signature over the artifact's
SHA-256 and the identity policy. No network is used and no no-op policy is ever built: an
empty identity list is refused before sigstore is called.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sigstore.errors import Error as SigstoreError
from sigstore.hashes import Hashed
from sigstore.models import Bundle, TrustedRoot
from sigstore.verify import Verifier, policy
from sigstore_models.common.v1 import HashAlgorithm

from reconciler.errors import ImageRefused
from reconciler.images.reasons import Reason

__all__ = ["SigstoreIdentity", "verify_bundle"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SigstoreIdentity:
    """A certificate identity (SAN) and the OIDC issuer that must have vouched for it."""

    identity: str
    issuer: str

    def __str__(self) -> str:
        return f"{self.identity} ({self.issuer})"


def _policy(identities: list[SigstoreIdentity]) -> policy.VerificationPolicy:
    children: list[policy.VerificationPolicy] = [
        policy.Identity(identity=i.identity, issuer=i.issuer) for i in identities
    ]
    return children[0] if len(children) == 1 else policy.AnyOf(children)


def _matching_identity(
    bundle: Bundle, identities: list[SigstoreIdentity]
) -> SigstoreIdentity | None:
    for ident in identities:
        try:
            policy.Identity(identity=ident.identity, issuer=ident.issuer).verify(
                bundle.signing_certificate
            )
        except SigstoreError:
            continue
        return ident
    return None


def verify_bundle(
    sha256_hex: str,
    bundle_path: Path,
    trusted_root_path: Path,
    identities: list[SigstoreIdentity],
) -> SigstoreIdentity:
    """Verify a bundle over an artifact's SHA-256; returns the identity that signed it.

    Raises :class:`ImageRefused` with ``sigstore-identity-mismatch`` when the certificate
    names none of ``identities``, and ``sigstore-invalid`` for every other failure
    (unreadable bundle or root, broken chain, bad signature, bad log proof).
    """
    if not identities:
        raise ImageRefused(Reason.SIGSTORE_IDENTITY_MISMATCH, "no sigstore identity is pinned")
    try:
        root = TrustedRoot.from_file(str(trusted_root_path))
        bundle = Bundle.from_json(bundle_path.read_bytes())
    except (OSError, ValueError, SigstoreError) as e:
        raise ImageRefused(Reason.SIGSTORE_INVALID, f"cannot read bundle or root: {e}") from None
    signer = _matching_identity(bundle, identities)
    if signer is None:
        allowed = ", ".join(str(i) for i in identities)
        raise ImageRefused(
            Reason.SIGSTORE_IDENTITY_MISMATCH, f"the bundle is not signed by any of: {allowed}"
        )
    digest = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=bytes.fromhex(sha256_hex))
    try:
        Verifier(trusted_root=root).verify_artifact(digest, bundle, _policy([signer]))
    except (SigstoreError, ValueError) as e:
        raise ImageRefused(Reason.SIGSTORE_INVALID, f"sigstore verification failed: {e}") from None
    _log.debug("sigstore bundle verified for %s", signer)
    return signer
