"""Import of OSV-format advisories (https://ossf.github.io/osv-schema/) for ecosystem VyOS.

An OSV record becomes an ``Advisory`` document: ``id`` is the name (lower-cased), the
severity comes from ``database_specific.severity`` (as GitHub writes it), and the affected
versions and ranges are those of packages in the ``VyOS`` ecosystem.
"""

from __future__ import annotations

import re
from typing import Any

from reconciler.errors import ConfigError
from reconciler.model.yamlsource import SourceDocument

__all__ = ["is_osv", "osv_to_advisory"]

_SEVERITY = {"low": "low", "moderate": "medium", "medium": "medium", "high": "high"}
_SEVERITY["critical"] = "critical"


def is_osv(data: Any) -> bool:
    """Whether a JSON document looks like an OSV record."""
    return (
        isinstance(data, dict) and "id" in data and ("affected" in data or "schema_version" in data)
    )


def _name(osv_id: str) -> str:
    return re.sub(r"[^a-z0-9.-]", "-", osv_id.lower()).strip("-.")


def osv_to_advisory(doc: SourceDocument) -> tuple[SourceDocument | None, list[ConfigError]]:
    """Convert an OSV record into the data of an ``Advisory`` document (same positions)."""
    data: dict[str, Any] = doc.data
    raw = (data.get("database_specific") or {}).get("severity")
    severity = _SEVERITY.get(str(raw).lower()) if raw else None
    if severity is None:
        return None, [
            ConfigError(
                "OSV record needs database_specific.severity (LOW, MODERATE, HIGH or CRITICAL)",
                location=doc.location(("database_specific",)),
                field="database_specific.severity",
            )
        ]
    versions: list[str] = []
    ranges: list[dict[str, str]] = []
    for affected in data.get("affected") or []:
        package = (affected or {}).get("package") or {}
        if package.get("ecosystem") != "VyOS":
            continue
        versions.extend(str(v) for v in affected.get("versions") or [])
        for rng in affected.get("ranges") or []:
            current: dict[str, str] = {}
            for event in rng.get("events") or []:
                if "introduced" in event and str(event["introduced"]) != "0":
                    current = {"introduced": str(event["introduced"])}
                elif "fixed" in event and current:
                    current["fixed"] = str(event["fixed"])
                    ranges.append(current)
                    current = {}
            if current:
                ranges.append(current)
    converted = {
        "apiVersion": "gitfirm.io/v1",
        "kind": "Advisory",
        "metadata": {"name": _name(str(data["id"]))},
        "spec": {
            "summary": str(data.get("summary", "")),
            "severity": severity,
            "aliases": [str(a) for a in data.get("aliases") or []],
            "versions": versions,
            "ranges": ranges,
        },
    }
    return SourceDocument(doc.file, doc.index, converted, doc.positions), []
