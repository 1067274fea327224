"""A site's images: fetched once, from a peer site's mirror or the upstream, under the site's
caps; served to the site's routers under its serve cap.

One gitfirm instance per shard (site) keeps its own verified store close to its routers.
:class:`SiteImages` is what the daemon fetches through:

- **Once.** An image in the store is only checked again (signature over the stored
  digests); only a missing one is downloaded, and concurrent wants share one download.
- **Peers first.** With ``peers`` (other sites' distribution servers, which share the token
  key), the image is pulled from the first peer that has it
  (:func:`~reconciler.images.mirror.pull_from_peer`), then from the Image's own sources.
  Whatever the source, the bytes are verified again here in full: a peer is a nearer
  mirror, never a trusted one. A peer whose bytes fail verification is skipped.
- **Caps.** One fetch throttle (bytes/s) is shared by every download of the site, at most
  ``fetch_concurrency`` downloads run at once, and the distribution server paces what it
  serves to ``serve_bps`` in total (and ``serve_connection_bps`` per download).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

import httpx
from pydantic import BaseModel, ConfigDict, Field

from reconciler.clock import Clock
from reconciler.errors import ImageError, ImageRefused
from reconciler.images.fetch import Fetcher, FetchSettings
from reconciler.images.mirror import pull_from_peer
from reconciler.images.serve import ServeLimits
from reconciler.images.store import ImageStore
from reconciler.images.throttle import Throttle
from reconciler.images.tokens import TokenSigner
from reconciler.model.kinds import Image, TrustPolicy
from reconciler.model.state import DesiredState
from reconciler.sanitize import redact

__all__ = ["SiteImageSettings", "SiteImages"]

log = logging.getLogger("gitfirm.images")


class SiteImageSettings(BaseModel):
    """A site's image caps and peers (``images:`` in ``gitfirm run --config``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    serve_bps: int | None = Field(
        default=None, gt=0, description="Bytes per second the image server sends in total"
    )
    serve_connection_bps: int | None = Field(
        default=None, gt=0, description="Bytes per second of one router's download"
    )
    fetch_bps: int | None = Field(
        default=None,
        gt=0,
        description="Bytes per second of every image download of this site together",
    )
    fetch_concurrency: int = Field(default=2, ge=1, description="Image downloads at once")
    peers: list[str] = Field(
        default_factory=list,
        description="Base URLs of other sites' gitfirm image servers, tried before an "
        "Image's own sources (--image-peer); they must share GITFIRM_IMAGE_TOKEN_KEY",
    )


class SiteImages:
    """Fetches a site's images under its caps; see the module docstring."""

    def __init__(
        self,
        store: ImageStore,
        *,
        site: str,
        tokens: TokenSigner,
        clock: Clock,
        settings: SiteImageSettings | None = None,
    ) -> None:
        self.store = store
        self.site = site
        self.settings = settings or SiteImageSettings()
        self._tokens = tokens
        self._clock = clock
        bps = self.settings.fetch_bps
        self.fetch_throttle = Throttle(bps, clock) if bps else None
        """The site's one fetch cap, shared by every download (``consumed`` counts bytes)."""
        self._gate = asyncio.Semaphore(self.settings.fetch_concurrency)
        self.active = 0
        self.peak = 0
        """The most downloads that ran at once (never above ``fetch_concurrency``)."""
        self.from_peer: dict[str, str] = {}
        """Image name -> the peer it was pulled from (the others came from upstream)."""

    def serve_limits(self) -> ServeLimits:
        """The distribution server's caps for this site."""
        return ServeLimits(
            global_bps=self.settings.serve_bps,
            per_connection_bps=self.settings.serve_connection_bps,
        )

    async def fetch(
        self,
        state: DesiredState,
        names: Sequence[str],
        *,
        settings: FetchSettings | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> dict[str, object]:
        """Fetch and verify the named images: name -> Verified, or the ImageRefused /
        ImageError that stopped it (one bad image never stops the others)."""
        if client is None:
            # Its TLS context loads the CA bundle: 0.1 s of CPU, kept off the event loop.
            own = await asyncio.to_thread(httpx.AsyncClient, follow_redirects=True)
            async with own:
                return await self._fetch(state, names, settings, own)
        return await self._fetch(state, names, settings, client)

    async def _fetch(
        self,
        state: DesiredState,
        names: Sequence[str],
        settings: FetchSettings | None,
        http: httpx.AsyncClient,
    ) -> dict[str, object]:
        root_dir = Path(state.root or ".")
        trust = list(state.trust_policies.values())
        results: dict[str, object] = {}
        fetcher = Fetcher(
            self.store, http, clock=self._clock, settings=settings, throttle=self.fetch_throttle
        )

        async def one(name: str) -> None:
            image = state.images.get(name)
            if image is None:
                results[name] = ImageError(f"no Image named {name!r}")
                return
            try:
                results[name] = await self._one(fetcher, image, trust, root_dir)
            except (ImageRefused, ImageError) as e:
                results[name] = e

        await asyncio.gather(*(one(n) for n in names))
        return {n: results[n] for n in names}

    async def _one(
        self, fetcher: Fetcher, image: Image, trust: list[TrustPolicy], root_dir: Path
    ) -> object:
        if self.store.get(image.spec.sha256) is not None:
            return await fetcher.fetch(image, trust, root_dir=root_dir)  # checked again only
        async with self._gate:
            self.active += 1
            self.peak = max(self.peak, self.active)
            try:
                for peer in self.settings.peers:
                    try:
                        verified = await pull_from_peer(
                            fetcher,
                            image,
                            trust,
                            peers=[peer],
                            tokens=self._tokens,
                            site=self.site,
                            root_dir=root_dir,
                        )
                    except (ImageRefused, ImageError) as e:
                        log.warning(
                            "image %s not taken from peer %s: %s",
                            image.name,
                            redact(peer),
                            redact(str(e)),
                            extra={"event": "image-peer-skipped", "image": image.name},
                        )
                        continue
                    self.from_peer[image.name] = peer
                    return verified
                return await fetcher.fetch(image, trust, root_dir=root_dir)
            finally:
                self.active -= 1
