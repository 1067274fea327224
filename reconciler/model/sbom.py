"""The packages of an image, read from its SBOM: a CycloneDX JSON document or the output of
``dpkg-query -W`` (``name<TAB>version`` per line).

Debian OSV records name *source* packages (``openssh``), dpkg lists *binary* packages
(``openssh-server``). A CycloneDX component whose purl carries ``upstream=<source>`` (as
syft writes it) is listed under both names; a ``dpkg-query`` list should be written with
``-f '${source:Package}\\t${Version}\\n'`` for the same effect. An architecture suffix
(``libc6:amd64``) is dropped.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from reconciler.errors import ConfigError

__all__ = ["MAX_SBOM_BYTES", "parse_packages"]

MAX_SBOM_BYTES = 64 * 1024 * 1024
MAX_PACKAGES = 100_000


def _add(packages: dict[str, str], name: str, version: str) -> None:
    name = name.split(":", 1)[0].strip()
    if name and version and len(packages) < MAX_PACKAGES:
        packages.setdefault(name, version.strip())


def _upstream(purl: str) -> str | None:
    """The source package of a ``pkg:deb/...?upstream=src`` purl (``src%201.2`` keeps src)."""
    if not purl.startswith("pkg:deb/"):
        return None
    values = parse_qs(urlsplit(purl).query).get("upstream")
    return unquote(values[0]).split(" ", 1)[0] if values else None


def _cyclonedx(data: dict[str, Any]) -> dict[str, str]:
    packages: dict[str, str] = {}
    components = data.get("components")
    for c in components if isinstance(components, list) else []:
        if not isinstance(c, dict):
            continue
        name, version = c.get("name"), c.get("version")
        if not isinstance(name, str) or not isinstance(version, str):
            continue
        _add(packages, name, version)
        purl = c.get("purl")
        source = _upstream(purl) if isinstance(purl, str) else None
        if source:
            _add(packages, source, version)
    return packages


def parse_packages(data: bytes) -> dict[str, str]:
    """Package name -> version from SBOM bytes; raises :class:`ConfigError` for anything
    that is neither a CycloneDX JSON document nor a ``dpkg-query -W`` list."""
    if len(data) > MAX_SBOM_BYTES:
        raise ConfigError(f"SBOM is larger than {MAX_SBOM_BYTES // 2**20} MiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("SBOM is not UTF-8 text") from None
    if text.lstrip().startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError:
            raise ConfigError("SBOM is not valid JSON") from None
        if not isinstance(doc, dict) or doc.get("bomFormat") != "CycloneDX":
            raise ConfigError("a JSON SBOM must be CycloneDX (bomFormat: CycloneDX)")
        return _cyclonedx(doc)
    packages: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise ConfigError(f"SBOM line {number} is not 'name<TAB>version' (dpkg-query -W)")
        _add(packages, *fields)
    return packages
