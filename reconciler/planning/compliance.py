"""Compliance and CVE exposure of one version on one device (basic checks).

Every CompliancePolicy whose selector matches the device applies; their violations add up.
A policy is violated when the version:

- is not approved by any non-revoked Image, or only by Images of channels outside
  ``allowedChannels``;
- is below the ``minimumVersion`` given for its train (trains without one pass);
- is listed in ``forbiddenVersions``;
- is affected by an Advisory more severe than ``maxCveSeverity``.

With ``enforcement: block`` (the default) a violated policy is also a gate: the planner
never sends a device to such a target (nor through a forbidden or unapproved step).

An Advisory affects a version listed in its ``versions`` or inside one of its ``ranges``
(``introduced`` inclusive, ``"0"`` from the first version; ``fixed`` and ``limit``
exclusive; ``lastAffected`` inclusive), in the order of the OSV ``VyOS`` ecosystem
(:func:`~reconciler.model.versions.newness`: trains by generation, then within a train).
Exposure to every affecting advisory is reported whatever the threshold. With the SBOMs
of images, exposure also counts advisories on the packages of the image a version comes
from (Debian OSV records matched in dpkg order).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from reconciler.model.kinds import (
    SEVERITY_RANK,
    Advisory,
    AffectedRange,
    CompliancePolicy,
    Device,
    Image,
)
from reconciler.model.state import DesiredState
from reconciler.model.versions import Version, newness
from reconciler.planning.packages import package_advisories
from reconciler.planning.paths import version_of

__all__ = ["Packages", "Verdict", "affects", "evaluate"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """The compliance of one version: ``applies`` is False when no policy selects the
    device; ``violations`` are readable reasons; ``blocking`` those of policies with
    ``enforcement: block``; ``advisories`` affect the version."""

    applies: bool
    violations: tuple[str, ...]
    advisories: tuple[Advisory, ...]
    blocking: tuple[str, ...] = ()

    @property
    def risk(self) -> tuple[int, int]:
        """Exposure as a sort key: the worst advisory's severity rank, then their number."""
        worst = max((SEVERITY_RANK[a.spec.severity] for a in self.advisories), default=0)
        return worst, len(self.advisories)


def _same(a: Version, b: Version) -> bool:
    return a.train == b.train and a.key == b.key


def _at_or_after(version: Version, bound: str) -> bool:
    return newness(version) >= newness(version_of(bound))


def _in_range(affected: AffectedRange, version: Version) -> bool:
    if affected.introduced != "0" and not _at_or_after(version, affected.introduced):
        return False
    if affected.fixed is not None and _at_or_after(version, affected.fixed):
        return False
    if affected.lastAffected is not None and newness(version) > newness(
        version_of(affected.lastAffected)
    ):
        return False
    return affected.limit is None or not _at_or_after(version, affected.limit)


def affects(advisory: Advisory, version: Version) -> bool:
    """Whether the advisory names the version or a range containing it."""
    if any(_same(version_of(v), version) for v in advisory.spec.versions):
        return True
    return any(_in_range(r, version) for r in advisory.spec.ranges)


def _policy_violations(
    policy: CompliancePolicy,
    version: Version,
    channels: set[str],
    advisories: Iterable[Advisory],
    hop: bool,
) -> list[str]:
    spec, found = policy.spec, []
    where = f"(compliance policy {policy.name})"
    if not channels:
        found.append(f"{version} is not approved by any non-revoked Image {where}")
    elif not channels & set(spec.allowedChannels):
        found.append(
            f"{version} comes from channel {', '.join(sorted(channels))}, not one of "
            f"{', '.join(spec.allowedChannels)} {where}"
        )
    if any(_same(version_of(v), version) for v in spec.forbiddenVersions):
        found.append(f"{version} is a forbidden version {where}")
    if hop:
        return found  # a step on the way may be old and exposed; that is why it is left
    for minimum in (version_of(m) for m in spec.minimumVersion):
        if minimum.comparable(version) and version < minimum:
            found.append(f"{version} is below the minimum {minimum} of train {minimum.train}")
    limit = SEVERITY_RANK[spec.maxCveSeverity]
    for advisory in advisories:
        severity = advisory.spec.severity
        if severity != "unknown" and SEVERITY_RANK[severity] > limit:
            found.append(
                f"{advisory.name} ({advisory.spec.severity}) affects {version}; "
                f"the limit is {spec.maxCveSeverity} {where}"
            )
    return found


Packages = Mapping[str, Mapping[str, str]]
"""Image name -> the packages of its SBOM (name -> dpkg version)."""


def _exposure(
    device: Device, version: Version, desired: DesiredState, approving: list[Image], sboms: Packages
) -> tuple[Advisory, ...]:
    """Advisories on the VyOS version, then those on packages of the image it runs."""
    ordered = [a for _, a in sorted(desired.advisories.items())]
    affecting = [a for a in ordered if affects(a, version)]
    for image in approving:
        sbom, packages = image.spec.sbom, sboms.get(image.name)
        if sbom is None or packages is None or not image.spec.supports(device.spec.platform):
            continue
        for advisory, _ in package_advisories(ordered, sbom.ecosystem, packages):
            if advisory not in affecting:
                affecting.append(advisory)
    return tuple(affecting)


def evaluate(
    device: Device,
    version: Version,
    desired: DesiredState,
    *,
    hop: bool = False,
    sboms: Packages | None = None,
) -> Verdict:
    """Evaluate every CompliancePolicy selecting ``device`` against ``version``.

    With ``hop`` the version is an intermediate step of a path: only the rules about the
    image itself apply (approved, allowed channel, not forbidden). ``sboms`` add the
    exposure of the image's packages (:mod:`reconciler.planning.packages`)."""
    policies = [
        p
        for _, p in sorted(desired.compliance_policies.items())
        if p.spec.selector.matches(device.selector_labels)
    ]
    approving = [
        i
        for i in desired.images.values()
        if _same(version_of(i.spec.version), version) and not i.spec.revoked
    ]
    channels: set[str] = {i.spec.channel for i in approving}
    affecting = _exposure(device, version, desired, approving, sboms or {})
    violations: list[str] = []
    blocking: list[str] = []
    for policy in policies:
        for reason in _policy_violations(policy, version, channels, affecting, hop):
            if reason not in violations:
                violations.append(reason)
            if policy.spec.enforcement == "block" and reason not in blocking:
                blocking.append(reason)
    return Verdict(bool(policies), tuple(violations), affecting, tuple(blocking))
