"""Helpers for the report tests: snapshots, a config remote, and reading a status branch back.

Git itself comes from :mod:`tests.support.gitrepo` (isolated environment, real bare remotes).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.model.facts import DeviceFacts, Health, InstalledImage
from reconciler.report.snapshot import (
    ComplianceVerdict,
    CveExposure,
    DeviceStatus,
    PhaseChange,
    RolloutEvent,
    RolloutStatus,
    StatusSnapshot,
)
from tests.support.gitrepo import clone, commit_files, git, git_env, make_remote, push

__all__ = [
    "T0",
    "TWO_DEVICE_FILES",
    "ConfigRemote",
    "all_text",
    "facts",
    "isolate_git",
    "make_config_remote",
    "show",
    "snapshot",
]

T0 = datetime(2026, 1, 1, tzinfo=UTC)

TWO_DEVICE_FILES = [
    "README.md",
    "alerts.yaml",
    "compliance.yaml",
    "devices/r1.yaml",
    "devices/r2.yaml",
    "rollouts/core.yaml",
    "source.yaml",
]
"""The sorted paths a status branch holds for a :func:`snapshot` of devices r1 and r2."""


def isolate_git(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """Make the code under test run git as :func:`git_env` does (no user or system config)."""
    for name, value in git_env(home).items():
        if name.startswith("GIT_") or name == "HOME":
            monkeypatch.setenv(name, value)


class ConfigRemote:
    """A bare config repository with one commit on ``main`` (the desired revision)."""

    def __init__(self, path: Path, revision: str) -> None:
        self.path = path
        self.revision = revision


def make_config_remote(tmp: Path) -> ConfigRemote:
    """A bare remote whose ``main`` holds one desired-state commit."""
    remote = make_remote(tmp / "config.git")
    work = clone(remote, tmp / "config-work")
    sha = commit_files(work, {"fleet/README.md": "desired state\n"}, "desired state")
    push(work)
    return ConfigRemote(remote, sha)


def facts(name: str, version: str = "1.4.2", *, at: datetime = T0, **extra: object) -> DeviceFacts:
    """Reachable facts for ``name`` running ``version``, with live health numbers."""
    image = InstalledImage(name=version, default=True, running=True)
    return DeviceFacts.model_validate(
        {
            "name": name,
            "reachable": True,
            "observed_at": at,
            "version": version,
            "architecture": "amd64",
            "flavor": "generic",
            "hostname": name,
            "images": (image,),
            "health": Health(uptime_seconds=100.0, load1=0.2, memory_used_percent=30.0),
            "rtt_ms": 3.5,
            **extra,
        }
    )


def snapshot(
    revision: str,
    phases: Mapping[str, str],
    *,
    versions: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
    at: datetime = T0,
    halted: bool = False,
    halt_reason: str | None = None,
    policy: str = "core",
) -> StatusSnapshot:
    """A fleet of devices in ``phases`` under one rollout ``policy`` targeting 1.4.3."""
    versions = versions or {}
    errors = errors or {}
    devices = tuple(
        DeviceStatus(
            name=name,
            facts=facts(name, versions.get(name, "1.4.2"), at=at),
            desired_image="vyos-1.4.3",
            target_version="1.4.3",
            phase=phase,
            rollout=policy,
            last_transition=PhaseChange("pending", phase, at) if phase != "pending" else None,
            last_error=errors.get(name),
            tls_insecure=name.endswith("lab"),
        )
        for name, phase in sorted(phases.items())
    )
    events = tuple(
        RolloutEvent(at=at + timedelta(seconds=i), device=name, message=f"{name} entered {phase}")
        for i, (name, phase) in enumerate(sorted(phases.items()))
    )
    rollout = RolloutStatus(
        policy=policy,
        revision=revision,
        target_version="1.4.3",
        current_wave=1,
        total_waves=3,
        halted=halted,
        halt_reason=halt_reason,
        device_phases=dict(phases),
        events=events,
    )
    verdicts = tuple(
        ComplianceVerdict(
            device=name,
            compliant=versions.get(name, "1.4.2") != "1.4.2",
            reasons=("runs 1.4.2, below minimum 1.4.3",)
            if versions.get(name, "1.4.2") == "1.4.2"
            else (),
            exposures=(CveExposure("CVE-2025-0001", "high", "1.4.3"),)
            if versions.get(name, "1.4.2") == "1.4.2"
            else (),
        )
        for name in sorted(phases)
    )
    return StatusSnapshot(revision, devices, (rollout,), verdicts)


def show(repo: Path, rev: str, path: str) -> str:
    """A file's text at ``rev`` in ``repo`` (bare or not)."""
    return git(repo, "show", f"{rev}:{path}")


def all_text(repo: Path) -> str:
    """Every commit message, diff and note reachable from any ref of ``repo``."""
    log = git(repo, "log", "--all", "-p", "--format=%H%n%an <%ae>%n%B")
    refs = git(repo, "for-each-ref", "--format=%(refname)")
    return log + refs
