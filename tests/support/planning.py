"""Builders for planning tests: small, valid documents and facts with sensible defaults."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from reconciler.model.facts import DeviceFacts, Health, InstalledImage
from reconciler.model.kinds import (
    Advisory,
    CompliancePolicy,
    Device,
    Image,
    RolloutPolicy,
    Window,
)
from reconciler.model.state import DesiredState

__all__ = [
    "ALWAYS",
    "NOW",
    "advisory",
    "compliance",
    "desired",
    "device",
    "facts",
    "image",
    "policy",
]

NOW = datetime(2025, 6, 7, 1, 0, tzinfo=UTC)  # a Saturday, 03:00 in Berlin
# One allow window that is open all year: starts on 1 January and lasts 367 days.
ALWAYS = Window(type="allow", schedule="0 0 1 1 *", duration="8808h")

_META = {"apiVersion": "gitfirm.io/v1"}


def image(
    version: str,
    *,
    channel: str = "production",
    name: str | None = None,
    upgrade_from: str | None = None,
    revoked: bool = False,
    arches: Sequence[str] = ("amd64",),
) -> Image:
    """An Image of ``version`` named ``vyos-<version>`` unless ``name`` is given."""
    spec: dict[str, Any] = {
        "version": version,
        "channel": channel,
        "platforms": [{"arch": a, "flavor": "generic"} for a in arches],
        "source": {"url": f"https://images.example.net/vyos-{version}-generic-amd64.iso"},
        "sha256": "0" * 64,
        "size": 1024,
        "signature": {"minisign": {"key": "demo"}},
        "revoked": revoked,
    }
    if upgrade_from is not None:
        spec["upgradeFrom"] = upgrade_from
    return Image.model_validate(
        {**_META, "kind": "Image", "metadata": {"name": name or f"vyos-{version}"}, "spec": spec}
    )


def device(
    name: str,
    *,
    labels: Mapping[str, str] | None = None,
    site: str = "ams",
    group: str | None = None,
    arch: str = "amd64",
) -> Device:
    """A Device with labels ``{"fleet": "all"}`` unless others are given."""
    return Device.model_validate(
        {
            **_META,
            "kind": "Device",
            "metadata": {"name": name, "labels": dict(labels or {"fleet": "all"})},
            "spec": {
                "address": "https://10.0.0.1:443",
                "platform": {"arch": arch, "flavor": "generic"},
                "credentials": {"apiKey": {"env": "VYOS_KEY"}},
                "site": site,
                "redundancyGroup": group,
            },
        }
    )


def policy(
    name: str = "fleet",
    *,
    version: str | None = None,
    channel: str | None = None,
    match: Mapping[str, str] | None = None,
    canary: int = 1,
    waves: Sequence[int] = (10, 50, 100),
    windows: Iterable[Window] = (ALWAYS,),
    suspend: bool = False,
    retry_token: str | None = None,
    allow_downgrade: bool = False,
) -> RolloutPolicy:
    """A RolloutPolicy selecting ``fleet=all`` devices, always inside a window."""
    target = {"version": version} if version is not None else {"channel": channel}
    return RolloutPolicy.model_validate(
        {
            **_META,
            "kind": "RolloutPolicy",
            "metadata": {"name": name},
            "spec": {
                "selector": {"matchLabels": dict(match or {"fleet": "all"})},
                "target": target,
                "strategy": {
                    "canary": canary,
                    "waves": list(waves),
                    "allowDowngrade": allow_downgrade,
                },
                "windows": [w.model_dump(mode="json") for w in windows],
                "suspend": suspend,
                "retryToken": retry_token,
            },
        }
    )


def compliance(name: str = "baseline", **spec: Any) -> CompliancePolicy:
    """A CompliancePolicy with the given spec fields (camelCase)."""
    return CompliancePolicy.model_validate(
        {**_META, "kind": "CompliancePolicy", "metadata": {"name": name}, "spec": spec}
    )


def advisory(name: str, severity: str, **spec: Any) -> Advisory:
    """An Advisory with ``versions`` and/or ``ranges`` in ``spec``."""
    return Advisory.model_validate(
        {
            **_META,
            "kind": "Advisory",
            "metadata": {"name": name},
            "spec": {"severity": severity, **spec},
        }
    )


def facts(
    name: str,
    version: str | None,
    *,
    reachable: bool = True,
    load1: float | None = None,
    rtt_ms: float | None = None,
    error: str | None = None,
) -> DeviceFacts:
    """Facts of a device running ``version`` (one installed, running, default image)."""
    images = () if version is None else (InstalledImage(name=version, default=True, running=True),)
    return DeviceFacts(
        name=name,
        reachable=reachable,
        observed_at=NOW,
        error=error,
        version=version if reachable else None,
        images=images if reachable else (),
        health=Health(load1=load1),
        rtt_ms=rtt_ms,
    )


def desired(
    devices: Iterable[Device] = (),
    images: Iterable[Image] = (),
    policies: Iterable[RolloutPolicy] = (),
    compliance_policies: Iterable[CompliancePolicy] = (),
    advisories: Iterable[Advisory] = (),
    revision: str = "rev1",
) -> DesiredState:
    """A DesiredState of the given documents."""
    return DesiredState(
        devices={d.name: d for d in devices},
        images={i.name: i for i in images},
        rollout_policies={p.name: p for p in policies},
        compliance_policies={c.name: c for c in compliance_policies},
        advisories={a.name: a for a in advisories},
        revision=revision,
    )
