"""Upstream feeds of an ImageSource: which builds it offers, read with size limits.

Two shapes: a GitHub-releases-style JSON API (a list of releases, each with ``assets`` of
``name``, ``browser_download_url`` and ``size``), and an HTTP directory index (links to the
ISOs and their ``.minisig`` files). A build is an ISO whose file name matches the source's
pattern; its signature is the ``.minisig`` next to it, when the feed lists one. The feed is
untrusted input: it is only a list of candidates, each verified before anything is proposed.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from reconciler.errors import ImageError
from reconciler.model.kinds import ImageSourceSpec
from reconciler.model.versions import newness, parse_version
from reconciler.sanitize import redact

__all__ = ["MAX_FEED_BYTES", "Build", "parse_index", "parse_releases", "read_feed"]

MAX_FEED_BYTES = 4 << 20
"""Largest feed document read: a releases page or an index is a few hundred kilobytes."""
_HREF = re.compile(r"""href\s*=\s*["']([^"'<>]+)["']""", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Build:
    """One build a feed offers."""

    version: str
    file_name: str
    url: str
    signature_url: str | None
    size: int | None = None
    """The size the feed states (releases feeds); the download never runs past maxSize."""


def _build(
    name: str, url: str, sig: str | None, size: Any, pattern: re.Pattern[str]
) -> Build | None:
    match = pattern.match(name)
    if match is None:
        return None
    version = match.group("version")
    try:
        parse_version(version)
    except ValueError:
        return None  # not a VyOS version: never a candidate
    return Build(version, name, url, sig, size if isinstance(size, int) and size > 0 else None)


def parse_releases(data: bytes, pattern: str) -> list[Build]:
    """The builds of a releases JSON document, newest version first."""
    try:
        releases = json.loads(data)
    except ValueError as e:
        raise ImageError(f"the releases feed is not JSON: {e}") from None
    if not isinstance(releases, list):
        raise ImageError("the releases feed is not a list of releases")
    compiled = re.compile(pattern)
    builds: list[Build] = []
    for release in releases:
        assets = release.get("assets") if isinstance(release, dict) else None
        if not isinstance(assets, list):
            continue
        urls = {
            str(a.get("name")): str(a.get("browser_download_url"))
            for a in assets
            if isinstance(a, dict) and a.get("name") and a.get("browser_download_url")
        }
        sizes = {str(a.get("name")): a.get("size") for a in assets if isinstance(a, dict)}
        for name, url in urls.items():
            build = _build(name, url, urls.get(f"{name}.minisig"), sizes.get(name), compiled)
            if build is not None:
                builds.append(build)
    return _newest_first(builds)


def parse_index(data: bytes, base_url: str, pattern: str) -> list[Build]:
    """The builds an HTML directory index links to, newest version first."""
    text = data.decode("utf-8", "replace")
    links: dict[str, str] = {}
    for href in _HREF.findall(text):
        url = urljoin(base_url, html.unescape(href))
        if urlsplit(url).scheme not in ("http", "https"):
            continue
        name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
        if name:
            links.setdefault(name, url)
    compiled = re.compile(pattern)
    builds = [
        b
        for name, url in links.items()
        if (b := _build(name, url, links.get(f"{name}.minisig"), None, compiled)) is not None
    ]
    return _newest_first(builds)


def _newest_first(builds: list[Build]) -> list[Build]:
    unique = {b.file_name: b for b in builds}
    return sorted(unique.values(), key=lambda b: newness(parse_version(b.version)), reverse=True)


async def read_feed(
    spec: ImageSourceSpec, http: httpx.AsyncClient, seconds: float = 30.0
) -> list[Build]:
    """Fetch and parse the feed of an ImageSource; :class:`ImageError` when it cannot."""
    url = spec.feed.url
    data = bytearray()
    try:
        async with http.stream("GET", url, timeout=seconds, follow_redirects=True) as response:
            if response.status_code != 200:
                raise ImageError(f"feed {redact(url)} answered HTTP {response.status_code}")
            async for chunk in response.aiter_bytes():
                data += chunk
                if len(data) > MAX_FEED_BYTES:
                    raise ImageError(f"feed {redact(url)} is larger than {MAX_FEED_BYTES} bytes")
    except httpx.HTTPError as e:
        raise ImageError(f"feed {redact(url)}: {type(e).__name__}: {redact(str(e))}") from None
    if spec.feed.releases is not None:
        return parse_releases(bytes(data), spec.namePattern)
    return parse_index(bytes(data), url, spec.namePattern)
