"""Rendering the status branch: stable bytes, the planner's ``observed:`` contract, no secrets."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
import yaml

from reconciler.errors import ReportError
from reconciler.model.facts import DeviceFacts
from reconciler.planning.inputs import facts_from_status
from reconciler.report.message import commit_message
from reconciler.report.render import load_documents, render_files, render_note
from reconciler.report.snapshot import (
    EVENT_CAP,
    Refusal,
    RolloutEvent,
    RolloutStatus,
    StatusSnapshot,
)
from tests.support.report import T0, TWO_DEVICE_FILES, facts, snapshot

REV = "a" * 40


def test_same_input_same_bytes_and_sorted_keys() -> None:
    snap = snapshot(REV, {"r2": "stage", "r1": "done"}, versions={"r1": "1.4.3"})
    first, second = render_files(snap), render_files(snap)
    assert first == second
    assert sorted(first) == TWO_DEVICE_FILES
    text = first["devices/r1.yaml"].decode()
    top = [line.split(":")[0] for line in text.splitlines() if line and not line.startswith(" ")]
    assert top == sorted(top)
    assert top == ["desired", "lastError", "lastTransition", "name", "observed", "phase", "tls"]


def test_observed_round_trips_as_device_facts_without_live_numbers() -> None:
    files = render_files(snapshot(REV, {"r1": "stage"}))
    doc = yaml.safe_load(files["devices/r1.yaml"])
    parsed = DeviceFacts.model_validate(doc["observed"])
    assert parsed.version == "1.4.2" and parsed.running_image == "1.4.2"
    assert "health" not in doc["observed"] and "rtt_ms" not in doc["observed"]
    assert doc["lastTransition"] == {"from": "pending", "to": "stage", "at": "2026-01-01T00:00:00Z"}
    assert doc["tls"] == {"insecure": False, "plaintext": False}
    # The planner's --status-dir reader gets the same facts back (live numbers aside).
    stems = {"r1": doc}
    assert facts_from_status(stems)["r1"] == parsed


def test_new_observation_time_alone_changes_no_byte() -> None:
    before = render_files(snapshot(REV, {"r1": "stage"}))
    later = snapshot(REV, {"r1": "stage"}, at=T0)
    # Same state, observed five minutes later with other live numbers.
    moved = dataclasses.replace(
        later,
        devices=tuple(
            dataclasses.replace(d, facts=facts(d.name, at=T0 + timedelta(minutes=5), rtt_ms=9.0))
            for d in later.devices
        ),
    )
    again = render_files(moved, previous=load_documents(before))
    assert again == before
    # A real change of facts takes the new observation time.
    upgraded = snapshot(REV, {"r1": "stage"}, versions={"r1": "1.4.3"}, at=T0)
    changed = render_files(
        dataclasses.replace(
            upgraded,
            devices=tuple(
                dataclasses.replace(d, facts=facts(d.name, "1.4.3", at=T0 + timedelta(minutes=5)))
                for d in upgraded.devices
            ),
        ),
        previous=load_documents(before),
    )
    observed = yaml.safe_load(changed["devices/r1.yaml"])["observed"]
    assert observed["observed_at"] == "2026-01-01T00:05:00Z"


def test_readme_summarizes_versions_rollouts_compliance() -> None:
    snap = snapshot(
        REV,
        {"r1": "done", "r2": "failed", "lab": "pending"},
        versions={"r1": "1.4.3"},
        errors={"r2": "health check bgp | failed"},
        halted=True,
        halt_reason="failureThreshold 1 reached",
    )
    readme = render_files(snap)["README.md"].decode()
    assert f"`{REV}`" in readme
    assert "| 1.4.3 | 1 |" in readme and "| 1.4.2 | 2 |" in readme
    assert "| core | 1.4.3 | 1/3 | halted |" in readme
    assert "failureThreshold 1 reached" in readme
    assert "1 of 3 devices compliant." in readme
    assert "CVE-2025-0001 (high)" in readme
    assert "health check bgp \\| failed" in readme  # a pipe cannot break the table
    assert "| lab | 1.4.2 | 1.4.3 | pending | off |" in readme


def test_events_are_capped_and_counts_derived() -> None:
    events = tuple(RolloutEvent(T0 + timedelta(seconds=i), f"e{i}") for i in range(EVENT_CAP + 20))
    rollout = RolloutStatus("p", REV, device_phases={"a": "done", "b": "done", "c": "stage"},
                            events=events)  # fmt: skip
    assert len(rollout.events) == EVENT_CAP and rollout.events[-1].message == f"e{EVENT_CAP + 19}"
    assert rollout.counts == {"done": 2, "stage": 1}


def test_planted_secrets_appear_nowhere() -> None:
    api_key = "Zx9SuperSecretApiKey42"
    snap = snapshot(
        REV,
        {"r1": "failed", "r2": "stage"},
        errors={
            "r1": f"device refused key {api_key} during stage",
            "r2": "GET https://mirror.example/vyos.iso?key=hunter2hunter2 failed: 403",
        },
        halted=True,
        halt_reason=f"token={api_key}",
    )
    files = render_files(snap, secrets=(api_key,))
    blob = b"".join(files.values()).decode()
    message = commit_message(REV, {}, load_documents(files), secrets=(api_key,))
    note = render_note(snap.rollouts[0], secrets=(api_key,))
    for text in (blob, message, note):
        assert api_key not in text
        assert "hunter2hunter2" not in text
    assert "key=***" in blob and "***" in note


def test_unsafe_names_are_refused() -> None:
    with pytest.raises(ReportError):
        render_files(snapshot(REV, {"../escape": "stage"}))


def test_refusals_are_listed_in_source_and_readme() -> None:
    snap = snapshot(REV, {"r1": "done"})
    refused = StatusSnapshot(
        snap.desired_revision,
        snap.devices,
        snap.rollouts,
        snap.compliance,
        refusals=(Refusal("b" * 40, "commit refused (unsigned): token=abc123"),),
    )
    files = render_files(refused)
    source = files["source.yaml"].decode()
    assert "b" * 40 in source
    assert "abc123" not in source
    assert "## Refused revisions" in files["README.md"].decode()
    assert "## Refused revisions" not in render_files(snap)["README.md"].decode()
