"""The status branch's ``README.md``: a fleet summary in plain Markdown tables.

It is built from the already sanitized documents of :mod:`reconciler.report.render`, so it
shows exactly what the YAML files say, and it carries no wall-clock value of its own.

A status commit renders it again from every document; with a ``cache`` (the status
writer's), the parts made from a document that is the very object seen last time (a
device's table row, the compliance section) are reused: at 10,000 devices the table alone
cost 0.2 s of every commit. The text is the same with or without a cache.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

__all__ = ["ReadmeCache", "render_readme"]

ReadmeCache = dict[str, tuple[object, Any]]
"""Per document path: the document last rendered and what was made of it."""


def _cell(value: Any) -> str:
    """One table cell: no pipes or newlines may break the row."""
    if value is None or value == "":
        return "-"
    text = " ".join(str(value).split())
    return text.replace("|", "\\|")


def _line(row: list[Any]) -> str:
    return "| " + " | ".join(_cell(c) for c in row) + " |"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return [*lines, *map(_line, rows), ""]


def _of(docs: Mapping[str, Any], prefix: str) -> list[dict[str, Any]]:
    return [doc for path, doc in sorted(docs.items()) if path.startswith(prefix)]


def _reused(cache: ReadmeCache | None, path: str, doc: object, make: Any) -> Any:
    """``make(doc)``, or what it made of this very document last time."""
    if cache is None:
        return make(doc)
    hit = cache.get(path)
    if hit is None or hit[0] is not doc:
        hit = cache[path] = (doc, make(doc))
    return hit[1]


def _version(device: Mapping[str, Any]) -> str | None:
    observed = device.get("observed") or {}
    if not observed.get("reachable", False):
        return None
    version = observed.get("version")
    return str(version) if version else None


def _versions(versions: list[str | None]) -> list[str]:
    counts = Counter(v or "unknown/unreachable" for v in versions)
    rows: list[list[Any]] = [[v, n] for v, n in sorted(counts.items())]
    return ["## Versions", "", *_table(["Version", "Devices"], rows)]


def _rollouts(rollouts: list[dict[str, Any]]) -> list[str]:
    if not rollouts:
        return ["## Rollouts", "", "No rollout policy in force.", ""]
    rows: list[list[Any]] = []
    for r in rollouts:
        wave = r["wave"]
        state = "halted" if r["halted"] else "suspended" if r["suspended"] else "active"
        counts = ", ".join(f"{k}={v}" for k, v in sorted(r["counts"].items()))
        position = f"{wave['current']}/{wave['total']}" if wave["current"] is not None else None
        rows.append([r["policy"], r["target"]["version"], position, state, counts, r["haltReason"]])
    header = ["Policy", "Target", "Wave", "State", "Devices per phase", "Halt reason"]
    return ["## Rollouts", "", *_table(header, rows)]


def _compliance(compliance: Mapping[str, Any] | None) -> list[str]:
    lines = ["## Compliance", ""]
    if not compliance or not compliance["devices"]:
        return [*lines, "No compliance verdicts.", ""]
    summary = compliance["summary"]
    total = summary["compliant"] + summary["noncompliant"]
    lines += [f"{summary['compliant']} of {total} devices compliant.", ""]
    rows: list[list[Any]] = []
    for name, verdict in sorted(compliance["devices"].items()):
        if verdict["compliant"] and not verdict["exposures"]:
            continue
        cves = ", ".join(f"{x['id']} ({x['severity']})" for x in verdict["exposures"])
        compliant = "yes" if verdict["compliant"] else "no"
        advice = verdict.get("recommendation") or "-"
        rows.append([name, compliant, "; ".join(verdict["reasons"]), cves, advice])
    if rows:
        lines += _table(["Device", "Compliant", "Reasons", "CVE exposure", "Recommended"], rows)
    return lines


def _device_row(d: Mapping[str, Any]) -> tuple[str | None, str]:
    """A device's running version and its line of the devices table."""
    tls = "off" if d["tls"]["insecure"] else "verified"
    if d["tls"].get("plaintext"):
        tls = "PLAINTEXT allowed"
    version = _version(d)
    return version, _line(
        [d["name"], version, d["desired"]["version"], d["phase"], tls, d["lastError"]]
    )


def _devices(lines: list[str]) -> list[str]:
    header = ["Device", "Running", "Target", "Phase", "TLS", "Last error"]
    return ["## Devices", "", *_table(header, [])[:-1], *lines, ""]


def _refusals(source: Mapping[str, Any] | None) -> list[str]:
    refused = (source or {}).get("refused") or []
    if not refused:
        return []
    rows = [[f"`{r['revision'][:12]}`", r["reason"]] for r in refused]
    return ["## Refused revisions", "", *_table(["revision", "reason"], rows)]


def render_readme(
    desired_revision: str, docs: Mapping[str, Any], cache: ReadmeCache | None = None
) -> str:
    """The Markdown summary of the fleet for the given documents (see the module's note
    on ``cache``)."""
    devices = [(path, doc) for path, doc in sorted(docs.items()) if path.startswith("devices/")]
    rows: list[tuple[str | None, str]] = [
        _reused(cache, path, doc, _device_row) for path, doc in devices
    ]
    if cache is not None and len(cache) > len(rows) + 1:  # devices left: forget them
        for gone in set(cache) - {p for p, _ in devices} - {"compliance.yaml"}:
            del cache[gone]
    compliance = _reused(cache, "compliance.yaml", docs.get("compliance.yaml"), _compliance)
    lines = [
        "# gitfirm fleet status",
        "",
        "Written by gitfirm on every state change; never edit this branch by hand.",
        "",
        f"Desired revision: `{desired_revision}` · devices: {len(devices)}",
        "",
        *_refusals(docs.get("source.yaml")),
        *_versions([version for version, _ in rows]),
        *_rollouts(_of(docs, "rollouts/")),
        *compliance,
        *_devices([line for _, line in rows]),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"
