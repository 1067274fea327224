"""Fetch the SBOM of an image and verify it like the image: a bounded download, refused
unless its SHA-256 is the one the (signed) Image document declares; then its packages
(:func:`reconciler.model.sbom.parse_packages`)."""

from __future__ import annotations

import hashlib
import logging

import httpx

from reconciler.errors import ConfigError, ImageError, ImageRefused
from reconciler.images.reasons import Reason
from reconciler.model.kinds import Image
from reconciler.model.sbom import MAX_SBOM_BYTES, parse_packages
from reconciler.model.state import DesiredState
from reconciler.sanitize import redact

__all__ = ["SbomCache", "fetch_sbom"]

log = logging.getLogger("gitfirm.images.sbom")


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


class SbomCache:
    """The packages of every SBOM the desired state declares, fetched once per
    (url, sha256). A failed fetch is logged and tried again at the next revision."""

    def __init__(self) -> None:
        self._packages: dict[tuple[str, str], dict[str, str]] = {}
        self._failed: set[tuple[str, str]] = set()
        self._revision: str | None = None

    async def refresh(
        self, desired: DesiredState, client: httpx.AsyncClient | None = None
    ) -> dict[str, dict[str, str]]:
        """Image name -> packages, for every declared SBOM that could be fetched."""
        if desired.revision != self._revision:
            self._failed.clear()
            self._revision = desired.revision
        declared = {
            name: (str(i.spec.sbom.url), i.spec.sbom.sha256)
            for name, i in sorted(desired.images.items())
            if i.spec.sbom is not None
        }
        known = set(self._packages) | self._failed
        missing = [n for n, key in declared.items() if key not in known]
        if missing:
            async with client or httpx.AsyncClient(timeout=30, follow_redirects=True) as http:
                for name in missing:
                    try:
                        self._packages[declared[name]] = await fetch_sbom(
                            desired.images[name], http
                        )
                    except (ImageRefused, ImageError) as e:
                        self._failed.add(declared[name])
                        log.warning(
                            "SBOM not used: %s",
                            e,
                            extra={"event": "sbom-refused", "image": name, "reason": e.reason},
                        )
        return {n: self._packages[key] for n, key in declared.items() if key in self._packages}
