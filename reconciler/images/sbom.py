"""Fetch the SBOM of an image and verify it like the image: a bounded download, refused
unless its SHA-256 is the one the (signed) Image document declares; then its packages
(:func:`reconciler.model.sbom.parse_packages`)."""

from __future__ import annotations

import hashlib

import httpx

from reconciler.errors import ConfigError, ImageError, ImageRefused
from reconciler.images.reasons import Reason
from reconciler.model.kinds import Image
from reconciler.model.sbom import MAX_SBOM_BYTES, parse_packages
from reconciler.sanitize import redact

__all__ = ["fetch_sbom"]


async def fetch_sbom(image: Image, client: httpx.AsyncClient) -> dict[str, str]:
    """The packages of ``image``'s SBOM (name -> version).

    Raises :class:`ImageRefused` (``size-exceeded``, ``sha256-mismatch``, or ``sbom-invalid``
    for bytes that are no SBOM) and :class:`ImageError` when the download fails. The image
    must declare an SBOM."""
    sbom = image.spec.sbom
    assert sbom is not None, "fetch_sbom needs an Image with spec.sbom"
    url = str(sbom.url)
    digest, body = hashlib.sha256(), bytearray()
    try:
        async with client.stream("GET", url) as response:
            response.raise_for_status()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_SBOM_BYTES:
                    raise ImageRefused(
                        Reason.SIZE_EXCEEDED, f"SBOM of {image.name} is over {MAX_SBOM_BYTES} bytes"
                    )
                digest.update(chunk)
    except httpx.HTTPError as e:
        raise ImageError(f"SBOM of {image.name} from {redact(url)}: {redact(str(e))}") from None
    if digest.hexdigest() != sbom.sha256:
        raise ImageRefused(
            Reason.SHA256_MISMATCH, f"SBOM of {image.name} does not match its declared sha256"
        )
    try:
        return parse_packages(bytes(body))
    except ConfigError as e:
        raise ImageRefused("sbom-invalid", f"SBOM of {image.name}: {e}") from None
