"""The whole desired state of one config-repository revision, as plain data."""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.errors import Location
from reconciler.model.kinds import (
    AccessPolicy,
    Advisory,
    CompliancePolicy,
    Device,
    DiscoveryPolicy,
    Image,
    ImageSource,
    NotificationPolicy,
    RolloutPolicy,
    TrustPolicy,
)

__all__ = ["DesiredState"]


@dataclass(frozen=True)
class DesiredState:
    """Every document of one revision, keyed by kind and name.

    ``root`` is the directory the revision was loaded from (trusted roots and other files
    are relative to it); ``revision`` is the commit SHA when it came from Git.
    """

    devices: dict[str, Device] = field(default_factory=dict)
    images: dict[str, Image] = field(default_factory=dict)
    rollout_policies: dict[str, RolloutPolicy] = field(default_factory=dict)
    compliance_policies: dict[str, CompliancePolicy] = field(default_factory=dict)
    trust_policies: dict[str, TrustPolicy] = field(default_factory=dict)
    access_policies: dict[str, AccessPolicy] = field(default_factory=dict)
    advisories: dict[str, Advisory] = field(default_factory=dict)
    discovery_policies: dict[str, DiscoveryPolicy] = field(default_factory=dict)
    image_sources: dict[str, ImageSource] = field(default_factory=dict)
    notification_policies: dict[str, NotificationPolicy] = field(default_factory=dict)
    locations: dict[tuple[str, str], Location] = field(default_factory=dict)
    root: str = ""
    revision: str = ""

    def location(self, kind: str, name: str) -> Location | None:
        """Where the document was declared."""
        return self.locations.get((kind, name))

    def counts(self) -> dict[str, int]:
        """Documents per kind, for one-line summaries."""
        return {
            "Device": len(self.devices),
            "Image": len(self.images),
            "RolloutPolicy": len(self.rollout_policies),
            "CompliancePolicy": len(self.compliance_policies),
            "TrustPolicy": len(self.trust_policies),
            "AccessPolicy": len(self.access_policies),
            "Advisory": len(self.advisories),
            "DiscoveryPolicy": len(self.discovery_policies),
            "ImageSource": len(self.image_sources),
            "NotificationPolicy": len(self.notification_policies),
        }
