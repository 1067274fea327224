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

__all__ = ["Exposure", "Packages", "Verdict", "affects", "evaluate"]


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


class Exposure:
    """Advisories affecting versions and images, worked out once per version and per image
    for one desired state (a plan judges thousands of devices on few versions)."""

    def __init__(self, desired: DesiredState, sboms: Packages | None = None) -> None:
        ordered = [a for _, a in sorted(desired.advisories.items())]
        self._vyos = [a for a in ordered if a.spec.versions or a.spec.ranges]
        self._packaged = [a for a in ordered if a.spec.packages]
        self._sboms = sboms or {}
        self._versions: dict[str, tuple[Advisory, ...]] = {}
        self._images: dict[str, tuple[Advisory, ...]] = {}
        self._combined: dict[tuple[str, ...], tuple[Advisory, ...]] = {}

    def of_version(self, version: Version) -> tuple[Advisory, ...]:
        """Advisories naming the VyOS version."""
        if version.text not in self._versions:
            found = tuple(a for a in self._vyos if affects(a, version))
            self._versions[version.text] = found
        return self._versions[version.text]

    def of_image(self, image: Image) -> tuple[Advisory, ...]:
        """Advisories on the packages of the image's SBOM (none without one)."""
        if image.name not in self._images:
            sbom, packages = image.spec.sbom, self._sboms.get(image.name)
            found: tuple[Advisory, ...] = ()
            if sbom is not None and packages is not None:
                hits = package_advisories(self._packaged, sbom.ecosystem, packages)
                found = tuple(a for a, _ in hits)
            self._images[image.name] = found
        return self._images[image.name]

    def of(self, device: Device, version: Version, images: Iterable[Image]) -> tuple[Advisory, ...]:
        """Advisories on the version, then on the packages of the images (of the device's
        platform) that it comes from."""
        platform = device.spec.platform
        mine = [i for i in images if i.spec.supports(platform)]
        key = (version.text, *sorted(i.name for i in mine))
        if key not in self._combined:
            affecting = list(self.of_version(version))
            seen = {a.name for a in affecting}
            for image in mine:
                for advisory in self.of_image(image):
                    if advisory.name not in seen:
                        seen.add(advisory.name)
                        affecting.append(advisory)
            self._combined[key] = tuple(affecting)
        return self._combined[key]


def evaluate(
    device: Device,
    version: Version,
    desired: DesiredState,
    *,
    hop: bool = False,
    exposure: Exposure | None = None,
) -> Verdict:
    """Evaluate every CompliancePolicy selecting ``device`` against ``version``.

    With ``hop`` the version is an intermediate step of a path: only the rules about the
    image itself apply (approved, allowed channel, not forbidden). Pass one ``exposure``
    for many calls on one desired state; with the SBOMs it was given, it adds the exposure
    of the image's packages (:mod:`reconciler.planning.packages`)."""
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
    affecting = (exposure or Exposure(desired)).of(device, version, approving)
    # Ordered sets: hundreds of package advisories make list membership quadratic.
    violations: dict[str, None] = {}
    blocking: dict[str, None] = {}
    for policy in policies:
        for reason in _policy_violations(policy, version, channels, affecting, hop):
            violations[reason] = None
            if policy.spec.enforcement == "block":
                blocking[reason] = None
    return Verdict(bool(policies), tuple(violations), affecting, tuple(blocking))
