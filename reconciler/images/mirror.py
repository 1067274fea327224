"""Site mirrors: pull a verified image by SHA-256 from a peer's distribution server.

Sites that share the distribution token secret can mint tokens for one another, so a site
downloads each image once over the WAN and its routers fetch it locally. The pulled bytes
go through the same fetch and the same full verification as any other source: a peer is
a faster mirror, never a trusted one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from reconciler.images.fetch import Fetcher
from reconciler.images.serve import SITE_PREFIX, image_path
from reconciler.images.tokens import TokenSigner
from reconciler.images.verify import Verified
from reconciler.model.kinds import Image, TrustPolicy

__all__ = ["peer_url", "pull_from_peer"]


def peer_url(base_url: str, tokens: TokenSigner, site: str, image: Image, ttl: timedelta) -> str:
    """The URL of ``image`` on a peer's distribution server, with a token for ``site``."""
    grantee = f"{SITE_PREFIX}{site}"
    token = tokens.issue(grantee, image.spec.sha256, ttl)
    return base_url.rstrip("/") + image_path(grantee, token, image.spec.source.file_name)


async def pull_from_peer(
    fetcher: Fetcher,
    image: Image,
    trust: Sequence[TrustPolicy],
    *,
    peers: Sequence[str],
    tokens: TokenSigner,
    site: str,
    root_dir: Path = Path(),
    ttl: timedelta = timedelta(hours=1),
) -> Verified:
    """Fetch ``image`` from the first peer that has it, verifying it again here."""
    urls = [peer_url(p, tokens, site, image, ttl) for p in peers]
    return await fetcher.fetch(image, trust, root_dir=root_dir, urls=urls)
