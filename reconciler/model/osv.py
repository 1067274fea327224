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


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def osv_to_advisory(doc: SourceDocument) -> tuple[SourceDocument | None, list[ConfigError]]:
    """Convert an OSV record into the data of an ``Advisory`` document (same positions)."""
    data: dict[str, Any] = doc.data
    raw = _dict(data.get("database_specific")).get("severity")
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
    # Unverified input: a field of the wrong type counts as absent, never as a crash.
    for affected in map(_dict, _list(data.get("affected"))):
        if _dict(affected.get("package")).get("ecosystem") != "VyOS":
            continue
        versions.extend(str(v) for v in _list(affected.get("versions")))
        for rng in map(_dict, _list(affected.get("ranges"))):
            current: dict[str, str] = {}
            for event in map(_dict, _list(rng.get("events"))):
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
            "aliases": [str(a) for a in _list(data.get("aliases"))],
            "versions": versions,
            "ranges": ranges,
        },
    }
    return SourceDocument(doc.file, doc.index, converted, doc.positions), []
