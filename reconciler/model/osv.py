"""Import of OSV-format advisories (https://ossf.github.io/osv-schema/).

An OSV record becomes an ``Advisory`` document: ``id`` is the name (lower-cased).

- **Ecosystems.** VyOS releases are the ecosystem ``VyOS`` (package name ``vyos``): their
  ``versions`` and ``ranges`` become the advisory's ``versions`` and ``ranges``, ordered
  as :func:`reconciler.model.versions.newness` says. Packages of any other ecosystem
  (``Debian:12`` ...) are kept in ``packages``, their events as given, for matching
  against the packages of an image.
- **Ranges.** ``ECOSYSTEM`` and ``SEMVER`` ranges (``GIT`` ranges name commits, not
  releases, and are skipped). The events of a VyOS range are sorted and split into
  intervals: each ``introduced`` (``"0"``: from the first version) opens one, the next
  ``fixed`` (exclusive) or ``last_affected`` (inclusive) closes it; a ``limit`` caps every
  interval of its range.
- **Severity.** The highest of ``database_specific.severity`` (as GitHub writes it) and
  the CVSS v3/v4 base scores of the ``severity`` array, computed by the ``cvss`` library
  (0 none, < 4 low, < 7 medium, < 9 high, else critical). A record with neither is
  refused when it names VyOS versions (the compliance gate needs a severity), and kept as
  ``unknown`` when it names only other ecosystems' packages (Debian records often
  carry none): exposure, never judged against ``maxCveSeverity``.
- **Withdrawn** records (``withdrawn`` set) are ignored: no document, no error.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from cvss import CVSS3, CVSS4
from cvss.exceptions import CVSSError

from reconciler.errors import ConfigError
from reconciler.model.kinds import SEVERITY_RANK
from reconciler.model.versions import VersionError, newness, parse_version
from reconciler.model.yamlsource import SourceDocument

__all__ = [
    "VYOS_ECOSYSTEM",
    "is_osv",
    "osv_to_advisory",
    "record_severity",
    "score_severity",
    "touches_vyos",
]

VYOS_ECOSYSTEM = "VyOS"
"""The OSV ecosystem name of VyOS releases (package name ``vyos``)."""

_SEVERITY = {"low": "low", "moderate": "medium", "medium": "medium", "high": "high"}
_SEVERITY["critical"] = "critical"
_CVSS = {"CVSS_V3": CVSS3, "CVSS_V4": CVSS4}
_RANGE_TYPES = ("ECOSYSTEM", "SEMVER")
# OSV event names -> the Advisory's field names.
_EVENTS = {"introduced": "introduced", "fixed": "fixed", "last_affected": "lastAffected"}
_EVENTS["limit"] = "limit"


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


def score_severity(score: Decimal | float) -> str:
    """The severity name of a CVSS base score (the CVSS v3/v4 qualitative scale)."""
    if score <= 0:
        return "none"
    if score < 4:
        return "low"
    if score < 7:
        return "medium"
    return "high" if score < 9 else "critical"


def record_severity(data: dict[str, Any]) -> str | None:
    """The highest severity the record gives, or None when it gives none we can read."""
    found: list[str] = []
    raw = _dict(data.get("database_specific")).get("severity")
    if isinstance(raw, str) and raw.lower() in _SEVERITY:
        found.append(_SEVERITY[raw.lower()])
    for entry in map(_dict, _list(data.get("severity"))):
        kind, vector = _CVSS.get(str(entry.get("type"))), entry.get("score")
        if kind is None or not isinstance(vector, str):
            continue
        try:
            found.append(score_severity(kind(vector).base_score))
        except CVSSError:
            continue  # a malformed vector says nothing; another entry may
    return max(found, key=SEVERITY_RANK.__getitem__, default=None)


def touches_vyos(data: dict[str, Any]) -> bool:
    """Whether an OSV record names a package of the ``VyOS`` ecosystem."""
    return any(
        _dict(_dict(a).get("package")).get("ecosystem") == VYOS_ECOSYSTEM
        for a in _list(data.get("affected"))
    )


def _events(rng: dict[str, Any]) -> list[tuple[str, str]]:
    """The (kind, version) events of one range, kinds named as in the Advisory."""
    out = []
    for event in map(_dict, _list(rng.get("events"))):
        for key, field in _EVENTS.items():
            if key in event and isinstance(event[key], str | int | float):
                out.append((field, str(event[key])))
    return out


def _vyos_intervals(events: list[tuple[str, str]]) -> list[dict[str, str]]:
    """Split one VyOS range into intervals (see the module docstring).

    Raises :class:`VersionError` for a version that is not a VyOS version."""
    limits = [v for k, v in events if k == "limit" and v != "*"]
    points = [(k, v) for k, v in events if k != "limit"]

    def order(event: tuple[str, str]) -> tuple[int, ...]:
        return () if event[1] == "0" else (1, *newness(parse_version(event[1])))

    cap = max(limits, key=lambda v: newness(parse_version(v))) if limits else None
    intervals: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for kind, version in sorted(points, key=order):
        if kind == "introduced" and current is None:
            current = {"introduced": version}
        elif kind != "introduced" and current is not None:
            current[kind] = version
            intervals.append(current)
            current = None
    if current is not None:
        intervals.append(current)
    return [{**i, "limit": cap} if cap else i for i in intervals]


def _package(affected: dict[str, Any], ecosystem: str, name: str) -> dict[str, Any]:
    ranges = [
        {"type": rng["type"], "events": [{k: v} for k, v in _events(rng)]}
        for rng in map(_dict, _list(affected.get("ranges")))
        if rng.get("type") in _RANGE_TYPES and _events(rng)
    ]
    versions = [str(v) for v in _list(affected.get("versions"))]
    return {"ecosystem": ecosystem, "name": name, "versions": versions, "ranges": ranges}


def osv_to_advisory(doc: SourceDocument) -> tuple[SourceDocument | None, list[ConfigError]]:
    """Convert an OSV record into the data of an ``Advisory`` document (same positions);
    None without errors for a withdrawn record."""
    data: dict[str, Any] = doc.data
    if data.get("withdrawn"):
        return None, []
    severity = record_severity(data) or (None if touches_vyos(data) else "unknown")
    if severity is None:
        return None, [
            ConfigError(
                "an OSV record naming VyOS versions needs database_specific.severity (LOW, "
                "MODERATE, HIGH or CRITICAL) or a CVSS_V3 or CVSS_V4 vector in severity",
                location=doc.location(("database_specific",)),
                field="database_specific.severity",
            )
        ]
    versions: list[str] = []
    ranges: list[dict[str, str]] = []
    packages: list[dict[str, Any]] = []
    # Unverified input: a field of the wrong type counts as absent, never as a crash.
    for i, affected in enumerate(map(_dict, _list(data.get("affected")))):
        package = _dict(affected.get("package"))
        ecosystem, name = package.get("ecosystem"), package.get("name")
        if not isinstance(ecosystem, str) or not isinstance(name, str) or not ecosystem:
            continue
        if ecosystem != VYOS_ECOSYSTEM:
            packages.append(_package(affected, ecosystem, name))
            continue
        versions.extend(str(v) for v in _list(affected.get("versions")))
        for rng in map(_dict, _list(affected.get("ranges"))):
            if rng.get("type") not in _RANGE_TYPES:
                continue
            try:
                ranges.extend(_vyos_intervals(_events(rng)))
            except VersionError as e:
                return None, [
                    ConfigError(
                        f"OSV range of ecosystem VyOS: {e}",
                        location=doc.location(("affected", i)),
                        field=f"affected[{i}].ranges",
                    )
                ]
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
            "packages": packages,
        },
    }
    return SourceDocument(doc.file, doc.index, converted, doc.positions), []
