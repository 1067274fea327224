"""The read side of the status branch, behind ``gitfirm status``.

It fetches only the status branch into a scratch directory, reads gitfirm's own files and
prints them as tables or JSON. It never writes to the remote.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from reconciler.errors import ReportError
from reconciler.gitbot import GitIdentity
from reconciler.report.gitstore import GitStore
from reconciler.report.index import SHARDS_DIR
from reconciler.report.render import load_documents
from reconciler.sanitize import redact

__all__ = ["FleetView", "compliance_history", "fetch_view", "print_view", "view_document"]


@dataclass(frozen=True, slots=True)
class FleetView:
    """What the newest status commit says about the fleet."""

    branch: str
    commit: str
    desired_revision: str | None
    devices: dict[str, Any] = field(default_factory=dict)
    rollouts: dict[str, Any] = field(default_factory=dict)
    compliance: dict[str, Any] = field(default_factory=dict)
    shards: tuple[str, ...] = ()
    """The shard folders the view merges (empty on an unsharded branch)."""


def _mapping(value: Any) -> dict[str, Any]:
    # The branch is untrusted: a document of the wrong shape counts as empty.
    return value if isinstance(value, dict) else {}


def _merged(store: GitStore) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The documents of the branch: its root's, or every shard folder's merged (each device
    and rollout lives in one shard; compliance verdicts and summaries add up)."""
    shards = tuple(store.real_subdirs(SHARDS_DIR))
    if not shards:
        return load_documents(store.read_owned()), ()
    docs: dict[str, Any] = {}
    verdicts: dict[str, Any] = {}
    summary = {"compliant": 0, "noncompliant": 0}
    for shard in shards:
        mine = load_documents(store.read_owned(f"{SHARDS_DIR}/{shard}"))
        compliance = _mapping(mine.pop("compliance.yaml", None))
        verdicts |= _mapping(compliance.get("devices"))
        counts = _mapping(compliance.get("summary"))
        for key in summary:
            value = counts.get(key)
            summary[key] += value if isinstance(value, int) else 0
        docs |= {p: d for p, d in mine.items() if p.startswith(("devices/", "rollouts/"))}
    docs["compliance.yaml"] = {"summary": summary, "devices": verdicts}
    return docs, shards


def fetch_view(repo: str, branch: str = "status", *, timeout: float = 120.0) -> FleetView:
    """Fetch ``branch`` of ``repo`` into a temporary clone and read the fleet state from it."""
    with tempfile.TemporaryDirectory(prefix="gitfirm-status-") as scratch:
        store = GitStore(Path(scratch), repo, branch, GitIdentity(), timeout=timeout)
        store.open()
        commit = store.head()
        if commit is None:
            raise ReportError(f"{redact(repo)} has no {branch!r} branch yet")
        docs, shards = _merged(store)
        revisions = store.head_trailer("Desired-Revision")
    prefix = len("devices/")
    return FleetView(
        branch=branch,
        commit=commit,
        desired_revision=revisions[0] if revisions else None,
        devices={p[prefix:-5]: d for p, d in sorted(docs.items()) if p.startswith("devices/")},
        rollouts={p[9:-5]: d for p, d in sorted(docs.items()) if p.startswith("rollouts/")},
        compliance=docs.get("compliance.yaml") or {},
        shards=shards,
    )


def compliance_history(
    repo: str, branch: str = "status", *, days: int = 90, timeout: float = 120.0
) -> list[tuple[datetime, list[dict[str, Any]]]]:
    """The newest ``compliance.yaml`` documents (the root's, or every shard's) of each of the
    last ``days`` days that changed them, oldest first: the raw input of exposure over time."""
    with tempfile.TemporaryDirectory(prefix="gitfirm-status-") as scratch:
        store = GitStore(Path(scratch), repo, branch, GitIdentity(), timeout=timeout)
        store.open()
        if store.head() is None:
            raise ReportError(f"{redact(repo)} has no {branch!r} branch yet")
        newest_per_day: dict[str, tuple[str, datetime]] = {}
        for commit, when in store.history(_COMPLIANCE, f":(glob){SHARDS_DIR}/*/{_COMPLIANCE}"):
            newest_per_day.setdefault(when.astimezone(UTC).date().isoformat(), (commit, when))
        out = []
        for _, (commit, when) in sorted(newest_per_day.items())[-days:]:
            files = store.read_at(commit, _is_compliance)
            out.append((when, [_mapping(d) for d in _parsed(files).values()]))
        return out


_COMPLIANCE = "compliance.yaml"


def _is_compliance(path: str) -> bool:
    parts = path.split("/")
    return path == _COMPLIANCE or (
        len(parts) == 3 and parts[0] == SHARDS_DIR and parts[2] == _COMPLIANCE
    )


def _parsed(files: dict[str, bytes]) -> dict[str, Any]:
    # load_documents reads owned root paths; a shard's file is read under its root name.
    return {p: load_documents({_COMPLIANCE: data}).get(_COMPLIANCE) for p, data in files.items()}


def view_document(view: FleetView) -> dict[str, Any]:
    """The view as plain JSON-ready data."""
    return {
        "branch": view.branch,
        "commit": view.commit,
        "desiredRevision": view.desired_revision,
        "devices": view.devices,
        "rollouts": view.rollouts,
        "compliance": view.compliance,
        "shards": list(view.shards),
    }


def _text(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def _running(doc: dict[str, Any]) -> str:
    observed = doc.get("observed") or {}
    if not observed:
        return "never observed"
    if not observed.get("reachable"):
        return "unreachable"
    return _text(observed.get("version"))


def print_view(view: FleetView, console: Console) -> None:
    """Print the fleet and its rollouts as tables."""
    revision = (view.desired_revision or "unknown")[:12]
    console.print(f"status {view.commit[:12]} on {view.branch!r} · desired revision {revision}")
    if view.shards:
        console.print(f"shards: {', '.join(view.shards)}")
    devices = Table(title="Devices")
    for column in ("Device", "Version", "Target", "Phase", "Last error"):
        devices.add_column(column)
    for name, doc in view.devices.items():
        desired = doc.get("desired") or {}
        devices.add_row(
            name, _running(doc), _text(desired.get("version")), _text(doc.get("phase")),
            _text(doc.get("lastError")),
        )  # fmt: skip
    console.print(devices)
    rollouts = Table(title="Rollouts")
    for column in ("Policy", "Target", "Wave", "State", "Devices per phase"):
        rollouts.add_column(column)
    for name, doc in view.rollouts.items():
        wave = doc.get("wave") or {}
        state = "halted" if doc.get("halted") else "suspended" if doc.get("suspended") else "active"
        if doc.get("haltReason"):
            state += f": {doc['haltReason']}"
        counts = ", ".join(f"{k}={v}" for k, v in sorted((doc.get("counts") or {}).items()))
        position = f"{_text(wave.get('current'))}/{_text(wave.get('total'))}"
        target = _text((doc.get("target") or {}).get("version"))
        rollouts.add_row(name, target, position, state, counts)
    console.print(rollouts)
    summary = view.compliance.get("summary")
    if summary:
        total = summary["compliant"] + summary["noncompliant"]
        console.print(f"compliance: {summary['compliant']} of {total} devices compliant")
