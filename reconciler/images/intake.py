"""Taking a build from an upstream feed: download it, verify it, and describe it as an Image.

The build is downloaded once into a staging directory (never past the source's
``maxSize``), its SHA-256 and size measured, and its ``Image`` document written. Then the
existing verified fetch (:class:`~reconciler.images.fetch.Fetcher`) takes it from the
staging copy: size, SHA-256 and the minisign signature against the channel's one
TrustPolicy, exactly as for an Image declared by hand, and stores it. Only a build that
passes becomes an Image; any other ends as :class:`~reconciler.errors.ImageRefused`.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import httpx

from reconciler.clock import Clock
from reconciler.errors import ImageError, ImageRefused
from reconciler.images.feeds import Build
from reconciler.images.fetch import Fetcher, FetchSettings
from reconciler.images.reasons import Reason
from reconciler.images.store import ImageStore
from reconciler.model.kinds import Image, ImageSource, TrustPolicy
from reconciler.sanitize import redact

__all__ = ["image_name", "take_build"]

_SIGNATURE_MAX = 1 << 20


def image_name(version: str) -> str:
    """The Image's ``metadata.name`` for a version: ``vyos-<version>`` in name characters."""
    return ("vyos-" + re.sub(r"[^a-z0-9.-]+", "-", version.lower()))[:63].rstrip(".-")


async def _download(http: httpx.AsyncClient, url: str, path: Path, limit: int) -> tuple[str, int]:
    sha = hashlib.sha256()
    size = 0
    try:
        async with http.stream("GET", url, follow_redirects=True, timeout=60.0) as response:
            if response.status_code != 200:
                raise ImageError(f"{redact(url)} answered HTTP {response.status_code}")
            with path.open("wb") as out:
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise ImageRefused(
                            Reason.SIZE_EXCEEDED, f"{path.name} is larger than maxSize ({limit})"
                        )
                    sha.update(chunk)
                    out.write(chunk)
    except httpx.HTTPError as e:
        raise ImageError(f"{redact(url)}: {type(e).__name__}") from None
    return sha.hexdigest(), size


async def take_build(
    build: Build,
    source: ImageSource,
    trust: Sequence[TrustPolicy],
    *,
    store: ImageStore,
    http: httpx.AsyncClient,
    clock: Clock,
    staging: Path,
) -> Image:
    """The verified and stored ``build`` as an Image of ``source``'s channel and platform.

    Raises :class:`ImageRefused` (no signature, too large, signature or key refused by the
    channel's TrustPolicy) or :class:`ImageError` (the feed's server failed).
    """
    spec = source.spec
    if build.signature_url is None:
        raise ImageRefused(Reason.SIGNATURE_MISSING, f"the feed lists no {build.file_name}.minisig")
    if "/" in build.file_name or build.file_name.startswith("."):
        raise ImageRefused(Reason.FILE_MISMATCH, f"{build.file_name!r} is not a plain file name")
    work = staging / hashlib.sha256(build.url.encode()).hexdigest()[:16]
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        iso = work / build.file_name
        sha, size = await _download(http, build.url, iso, spec.maxSize)
        await _download(
            http, build.signature_url, work / f"{build.file_name}.minisig", _SIGNATURE_MAX
        )
        image = Image.model_validate(
            {
                "apiVersion": "gitfirm.io/v1",
                "kind": "Image",
                "metadata": {
                    "name": image_name(build.version),
                    "annotations": {"gitfirm.io/image-source": source.name},
                },
                "spec": {
                    "version": build.version,
                    "channel": spec.channel,
                    "platforms": [spec.platform.model_dump()],
                    "source": {"url": build.url},
                    "sha256": sha,
                    "size": size,
                    "signature": {"minisign": {"key": spec.key, "url": build.signature_url}},
                    **({"upgradeFrom": spec.upgradeFrom} if spec.upgradeFrom else {}),
                },
            }
        )
        # The staging copy is the only source: what is verified is what was measured.
        fetcher = Fetcher(store, http, clock=clock, settings=FetchSettings(attempts=1))
        await fetcher.fetch(image, trust, urls=[iso.as_uri()])
        return image
    finally:
        shutil.rmtree(work, ignore_errors=True)
