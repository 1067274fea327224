"""Choose the records of an OSV export (osv.dev publishes one zip per ecosystem) that
matter to a config repository, for ``gitfirm advisories import``.

A record is kept when it is not withdrawn and touches the ``VyOS`` ecosystem (then with a
severity gitfirm can read) or a package that a declared image's SBOM lists in that SBOM's
ecosystem. Reading is bounded: at most :data:`MAX_RECORDS` files of at most
:data:`~reconciler.model.yamlsource.MAX_FILE_BYTES` each.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator, Mapping, Set
from pathlib import Path
from typing import Any

from reconciler.errors import ConfigError
from reconciler.model.osv import VYOS_ECOSYSTEM, is_osv, record_severity, touches_vyos
from reconciler.model.yamlsource import MAX_FILE_BYTES

__all__ = ["MAX_RECORDS", "Selection", "read_export", "select_records"]

MAX_RECORDS = 200_000


def read_export(source: Path) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every ``.json`` file of a directory (recursively) or a zip."""
    count = 0
    if source.is_dir():
        for path in sorted(source.rglob("*.json")):
            count += 1
            if count > MAX_RECORDS:
                raise ConfigError(f"{source} holds more than {MAX_RECORDS} records")
            if path.stat().st_size <= MAX_FILE_BYTES:
                yield path.name, path.read_bytes()
        return
    try:
        archive = zipfile.ZipFile(source)
    except (OSError, zipfile.BadZipFile) as e:
        raise ConfigError(f"{source} is neither a directory nor a zip file: {e}") from None
    with archive:
        for info in archive.infolist():
            if info.is_dir() or not info.filename.endswith(".json"):
                continue
            count += 1
            if count > MAX_RECORDS:
                raise ConfigError(f"{source} holds more than {MAX_RECORDS} records")
            if info.file_size <= MAX_FILE_BYTES:
                with archive.open(info) as f:
                    data = f.read(MAX_FILE_BYTES + 1)  # the header may lie: read bounded
                if len(data) <= MAX_FILE_BYTES:
                    yield info.filename.rsplit("/", 1)[-1], data


class Selection:
    """The kept records (file name -> bytes) and counts of the others."""

    def __init__(self) -> None:
        self.kept: dict[str, bytes] = {}
        self.unrelated = 0
        self.withdrawn = 0
        self.no_severity = 0
        self.unreadable = 0


def _touches(data: dict[str, Any], wanted: Mapping[str, Set[str]]) -> bool:
    affected = data.get("affected")
    for entry in affected if isinstance(affected, list) else []:
        package = entry.get("package") if isinstance(entry, dict) else None
        if not isinstance(package, dict):
            continue
        ecosystem, name = package.get("ecosystem"), package.get("name")
        if ecosystem == VYOS_ECOSYSTEM or name in wanted.get(str(ecosystem), ()):
            return True
    return False


def _file_name(osv_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "-", osv_id).strip("-.") + ".json"


def select_records(
    records: Iterator[tuple[str, bytes]], wanted: Mapping[str, Set[str]]
) -> Selection:
    """Keep the records that matter; ``wanted`` maps an ecosystem (``Debian:12``) to the
    package names the declared images contain."""
    out = Selection()
    for _, raw in records:
        try:
            data = json.loads(raw)
        except ValueError:
            out.unreadable += 1
            continue
        if not is_osv(data) or not isinstance(data.get("id"), str):
            out.unreadable += 1
        elif data.get("withdrawn"):
            out.withdrawn += 1
        elif not _touches(data, wanted):
            out.unrelated += 1
        elif record_severity(data) is None and touches_vyos(data):
            out.no_severity += 1
        else:
            out.kept[_file_name(data["id"])] = raw
    return out
