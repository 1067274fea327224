"""Render a :class:`StatusSnapshot` into the status branch's files, byte for byte stable.

Layout (DESIGN.md, "The status branch")::

    README.md               fleet summary (Markdown tables, renders on any forge)
    devices/<name>.yaml     observed, desired, phase, lastTransition, lastError, tls
    rollouts/<policy>.yaml  revision, wave, counts, per-device phase, recent events
    compliance.yaml         per-device verdicts and CVE exposure
    alerts.yaml             the alert centre: active and resolved alerts

Determinism: sorted keys, UTF-8, every string through :func:`reconciler.sanitize.redact`.
Observations carry values that change on every pass without any change of state; they would
turn each observation into a commit, a heartbeat. So under ``observed:``:

- ``health`` and ``rtt_ms`` are left out (live numbers; the dashboard and metrics show them);
- ``observed_at`` is the time of the observation that first showed the facts now written:
  :func:`stabilize` carries the previous value over while the rest of ``observed`` is equal.

``observed`` still validates as :class:`~reconciler.model.facts.DeviceFacts`, which is what
``gitfirm plan --status-dir`` reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import yaml

from reconciler.alerts.model import Alert
from reconciler.errors import ReportError
from reconciler.report.readme import render_readme
from reconciler.report.snapshot import (
    ComplianceVerdict,
    DeviceStatus,
    RolloutStatus,
    StatusSnapshot,
)
from reconciler.sanitize import redact

__all__ = [
    "VOLATILE_FACTS",
    "alerts_document",
    "build_documents",
    "compliance_document",
    "device_path",
    "dump_yaml",
    "entry_document",
    "is_owned",
    "load_documents",
    "render_files",
    "render_note",
    "rollout_path",
    "source_document",
    "stabilize",
    "stabilize_one",
]

VOLATILE_FACTS = frozenset({"health", "rtt_ms"})
"""DeviceFacts fields that change on every observation; they stay out of Git."""

# libyaml when present: several times faster, and the same bytes as the pure-Python emitter.
_DUMPER: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
_OWNED = re.compile(
    r"^(README\.md|compliance\.yaml|source\.yaml|alerts\.yaml|(devices|rollouts)/[^/]+\.yaml)$"
)


def is_owned(path: str) -> bool:
    """True when ``path`` (POSIX, relative to the branch root) is a file gitfirm generates."""
    return _OWNED.match(path) is not None


def _iso(when: datetime) -> str:
    # Same text as pydantic's JSON mode, so every timestamp on the branch reads alike.
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _file_name(name: str) -> str:
    if not _SAFE_NAME.match(name):
        raise ReportError(f"refusing unsafe status file name {name!r}")
    return name


def _clean(value: Any, secrets: tuple[str, ...]) -> Any:
    """Redact every string in a plain data tree (keys are validated names)."""
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, Mapping):
        return {key: _clean(item, secrets) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(item, secrets) for item in value]
    return value


def _device_doc(device: DeviceStatus) -> dict[str, Any]:
    observed = None
    if device.facts is not None:
        observed = device.facts.model_dump(mode="json", exclude=set(VOLATILE_FACTS))
    transition = device.last_transition
    return {
        "name": device.name,
        "observed": observed,
        "desired": {
            "image": device.desired_image,
            "version": device.target_version,
            "rollout": device.rollout,
        },
        "phase": str(device.phase),
        "lastTransition": None
        if transition is None
        else {
            "from": str(transition.from_phase),
            "to": str(transition.to_phase),
            "at": _iso(transition.at),
        },
        "lastError": device.last_error,
        "tls": {"insecure": device.tls_insecure, "plaintext": device.plaintext},
    }


def _rollout_doc(rollout: RolloutStatus) -> dict[str, Any]:
    return {
        "policy": rollout.policy,
        "revision": rollout.revision,
        "target": {"version": rollout.target_version},
        "wave": {"current": rollout.current_wave, "total": rollout.total_waves},
        "halted": rollout.halted,
        "haltReason": rollout.halt_reason,
        "waitingReason": rollout.waiting_reason,
        "suspended": rollout.suspended,
        "counts": rollout.counts,
        "devices": dict(rollout.device_phases),
        "events": [
            {"at": _iso(e.at), "device": e.device, "message": e.message} for e in rollout.events
        ],
    }


def _compliance_doc(verdicts: Iterable[ComplianceVerdict]) -> dict[str, Any]:
    devices = {
        v.device: {
            "compliant": v.compliant,
            "reasons": list(v.reasons),
            "exposures": [
                {"id": x.id, "severity": x.severity, "fixed": x.fixed}
                for x in sorted(v.exposures, key=lambda x: x.id)
            ],
            **({"recommendation": v.recommendation} if v.recommendation else {}),
        }
        for v in verdicts
    }
    compliant = sum(1 for d in devices.values() if d["compliant"])
    return {
        "summary": {"compliant": compliant, "noncompliant": len(devices) - compliant},
        "devices": devices,
    }


def device_path(name: str) -> str:
    """The status file of one device."""
    return f"devices/{_file_name(name)}.yaml"


def rollout_path(policy: str) -> str:
    """The status file of one rollout policy."""
    return f"rollouts/{_file_name(policy)}.yaml"


def entry_document(entry: DeviceStatus | RolloutStatus, secrets: tuple[str, ...]) -> Any:
    """The sanitized document of one device or rollout entry of a snapshot."""
    if isinstance(entry, DeviceStatus):
        return _clean(_device_doc(entry), secrets)
    return _clean(_rollout_doc(entry), secrets)


def compliance_document(
    verdicts: Iterable[ComplianceVerdict], secrets: tuple[str, ...]
) -> dict[str, Any]:
    """The sanitized ``compliance.yaml`` document."""
    return dict(_clean(_compliance_doc(verdicts), secrets))


def source_document(snapshot: StatusSnapshot, secrets: tuple[str, ...]) -> dict[str, Any]:
    """The sanitized ``source.yaml`` document: the applied revision and recent refusals."""
    refused = [{"revision": r.revision, "reason": r.reason} for r in snapshot.refusals]
    doc: dict[str, Any] = {"applied": snapshot.desired_revision, "refused": refused}
    if snapshot.refused_builds:  # upstream builds an ImageSource offered, refused
        doc["refusedBuilds"] = [
            {"build": r.revision, "reason": r.reason} for r in snapshot.refused_builds
        ]
    return dict(_clean(doc, secrets))


def alerts_document(alerts: Iterable[Alert], secrets: tuple[str, ...]) -> dict[str, Any]:
    """The sanitized ``alerts.yaml`` document: the alert centre's alerts, as the dashboard
    shows them (active first)."""

    def one(a: Alert) -> dict[str, Any]:
        return {
            "event": a.event,
            "subject": a.subject,
            "severity": a.severity,
            "message": a.message,
            "firstSeen": _iso(a.first_seen),
            "lastSeen": _iso(a.last_seen),
            "count": a.count,
            "policy": a.policy,
            "site": a.site,
            "resolvedAt": None if a.resolved_at is None else _iso(a.resolved_at),
        }

    listed = list(alerts)
    active = [one(a) for a in listed if a.active]
    resolved = [one(a) for a in listed if not a.active]
    doc = {
        "summary": {"active": len(active), "resolved": len(resolved)},
        "active": active,
        "resolved": resolved,
    }
    return dict(_clean(doc, secrets))


def build_documents(snapshot: StatusSnapshot, secrets: Iterable[str] = ()) -> dict[str, Any]:
    """The YAML files of the branch as sanitized plain data, keyed by path."""
    known = tuple(secrets)
    docs: dict[str, Any] = {}
    for device in snapshot.devices:
        docs[device_path(device.name)] = entry_document(device, known)
    for rollout in snapshot.rollouts:
        docs[rollout_path(rollout.policy)] = entry_document(rollout, known)
    docs["compliance.yaml"] = compliance_document(snapshot.compliance, known)
    docs["source.yaml"] = source_document(snapshot, known)
    docs["alerts.yaml"] = alerts_document(snapshot.alerts, known)
    return docs


def stabilize_one(doc: Any, old: Any) -> Any:
    """``doc`` with the previous ``observed_at`` kept when its other observed facts equal
    those of ``old`` (the same document as last written)."""
    new_obs = doc.get("observed") if isinstance(doc, dict) else None
    old_obs = old.get("observed") if isinstance(old, dict) else None
    if not (isinstance(new_obs, dict) and isinstance(old_obs, dict)):
        return doc
    same = {k: v for k, v in new_obs.items() if k != "observed_at"} == {
        k: v for k, v in old_obs.items() if k != "observed_at"
    }
    if same and "observed_at" in old_obs:
        return {**doc, "observed": {**new_obs, "observed_at": old_obs["observed_at"]}}
    return doc


def stabilize(docs: Mapping[str, Any], previous: Mapping[str, Any]) -> dict[str, Any]:
    """Keep the previous ``observed_at`` of each device whose other observed facts are equal."""
    return {path: stabilize_one(doc, previous.get(path)) for path, doc in docs.items()}


def dump_yaml(data: Any) -> bytes:
    """Stable YAML bytes: sorted keys, block style, UTF-8."""
    text = yaml.dump(
        data, Dumper=_DUMPER, sort_keys=True, default_flow_style=False, allow_unicode=True
    )
    return text.encode("utf-8")


def load_documents(files: Mapping[str, bytes]) -> dict[str, Any]:
    """Parse the owned YAML files of a checkout (unreadable ones are simply regenerated)."""
    docs: dict[str, Any] = {}
    for path, data in files.items():
        if not (is_owned(path) and path.endswith(".yaml")):
            continue
        try:
            docs[path] = yaml.load(data.decode("utf-8"), Loader=_LOADER)  # noqa: S506 (safe)
        except (yaml.YAMLError, UnicodeDecodeError):
            continue
    return docs


def render_files(
    snapshot: StatusSnapshot,
    secrets: Iterable[str] = (),
    previous: Mapping[str, Any] | None = None,
) -> dict[str, bytes]:
    """Every generated file of the branch, path to bytes; same input, same bytes."""
    known = tuple(secrets)
    docs = stabilize(build_documents(snapshot, known), previous or {})
    files = {path: dump_yaml(doc) for path, doc in sorted(docs.items())}
    readme = render_readme(snapshot.desired_revision, docs)
    files["README.md"] = redact(readme, known).encode("utf-8")
    return files


def render_note(rollout: RolloutStatus, secrets: Iterable[str] = ()) -> str:
    """The git note recording one rollout's outcome on its desired commit."""
    outcome = "halted" if rollout.halted else "finished"
    counts = ", ".join(f"{phase}={n}" for phase, n in sorted(rollout.counts.items()))
    lines = [
        f"gitfirm rollout {rollout.policy}: {outcome}",
        f"Rollout: {rollout.policy}",
        f"Target: {rollout.target_version or '-'}",
        f"Outcome: {outcome}",
        f"Counts: {counts or '-'}",
    ]
    if rollout.halted and rollout.halt_reason:
        lines.append(f"Reason: {' '.join(rollout.halt_reason.split())}")
    return redact("\n".join(lines) + "\n", tuple(secrets))
