"""Whole-stage operations the CLI and the daemon call: fetch a repository's images, check
stored ones against the trust in force, verify a loose file, and list what the store
references. Each image's outcome is a value, so one bad image never stops the others."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from reconciler.clock import Clock
from reconciler.errors import GitfirmError, ImageError, ImageRefused
from reconciler.images import minisign
from reconciler.images.fetch import Fetcher, FetchSettings, ProgressCallback
from reconciler.images.hashing import hash_file
from reconciler.images.reasons import Reason
from reconciler.images.recheck import recheck
from reconciler.images.sigstore_check import SigstoreIdentity, verify_bundle
from reconciler.images.store import ImageStore
from reconciler.images.verify import Verified
from reconciler.model.state import DesiredState

__all__ = [
    "FileVerdict",
    "check_stored",
    "fetch_images",
    "referenced_digests",
    "verify_file_minisign",
    "verify_file_sigstore",
]


@dataclass(frozen=True, slots=True)
class FileVerdict:
    """The result of verifying a loose file: its digest, size and who signed it when."""

    sha256: str
    size: int
    signer: str
    signed_timestamp: int | None


def referenced_digests(state: DesiredState) -> set[str]:
    """SHA-256 of every image an Image document names (what GC must keep)."""
    return {image.spec.sha256 for image in state.images.values()}


def check_stored(
    state: DesiredState, store: ImageStore, names: Sequence[str]
) -> dict[str, Verified | GitfirmError]:
    """Check the named images that are in the store against ``state`` as it is now.

    Each stored image's signature is verified again, over the digests the store kept, with
    the keys of the one TrustPolicy governing its channel in ``state``; a revoked or
    relabelled image is refused too. Returns name -> the :class:`Verified` record or the
    refusal. Names that are not Images, or whose bytes are not stored yet, are left out:
    they go through :func:`fetch_images`, which verifies them in full.
    """
    root_dir = Path(state.root or ".")
    trust = list(state.trust_policies.values())
    results: dict[str, Verified | GitfirmError] = {}
    for name in names:
        image = state.images.get(name)
        stored = store.get(image.spec.sha256) if image is not None else None
        if image is None or stored is None:
            continue
        try:
            results[name] = recheck(image, stored, trust, store=store, root_dir=root_dir)
        except GitfirmError as e:
            results[name] = e
    return results


async def fetch_images(
    state: DesiredState,
    store: ImageStore,
    names: Sequence[str],
    *,
    clock: Clock,
    settings: FetchSettings | None = None,
    progress: ProgressCallback | None = None,
    client: httpx.AsyncClient | None = None,
    concurrency: int = 2,
) -> dict[str, object]:
    """Fetch and verify the named images (all when ``names`` is empty).

    Returns name -> :class:`Verified`, or the :class:`ImageRefused` / :class:`ImageError`
    that stopped it. Unknown names map to an ImageError. Stored images are checked again
    as :func:`check_stored` does.
    """
    wanted = list(names) or sorted(state.images)
    root_dir = Path(state.root or ".")
    trust = list(state.trust_policies.values())
    gate = asyncio.Semaphore(concurrency)
    results: dict[str, object] = {}
    async with client or httpx.AsyncClient(follow_redirects=True) as http:
        fetcher = Fetcher(store, http, clock=clock, settings=settings, progress=progress)

        async def one(name: str) -> None:
            image = state.images.get(name)
            if image is None:
                results[name] = ImageError(f"no Image named {name!r}")
                return
            async with gate:
                try:
                    results[name] = await fetcher.fetch(image, trust, root_dir=root_dir)
                except (ImageRefused, ImageError) as e:
                    results[name] = e

        await asyncio.gather(*(one(n) for n in wanted))
    return {n: results[n] for n in wanted}


def verify_file_minisign(file: Path, signature: Path, public_key: Path) -> FileVerdict:
    """Verify a file against a ``.minisig`` and a ``.pub`` key; raises ImageRefused."""
    key = minisign.read_public_key(public_key)
    if not signature.is_file():
        raise ImageRefused(Reason.SIGNATURE_MISSING, f"{signature} does not exist")
    sig = minisign.parse_signature(signature.read_text(encoding="utf-8", errors="replace"))
    digests = hash_file(file)
    signed = minisign.verify_digest(sig, digests.blake2b, [key], file_name=file.name)
    return FileVerdict(
        digests.sha256, digests.size, f"minisign:{signed.key_id_hex}", signed.timestamp
    )


def verify_file_sigstore(
    file: Path, bundle: Path, trusted_root: Path, identity: str, issuer: str
) -> FileVerdict:
    """Verify a file against a sigstore bundle offline; raises ImageRefused."""
    if not bundle.is_file():
        raise ImageRefused(Reason.SIGNATURE_MISSING, f"{bundle} does not exist")
    digests = hash_file(file)
    signer = verify_bundle(
        digests.sha256, bundle, trusted_root, [SigstoreIdentity(identity, issuer)]
    )
    return FileVerdict(digests.sha256, digests.size, f"sigstore:{signer}", None)
