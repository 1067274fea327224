"""The desired-state kinds of ``apiVersion: gitfirm.io/v1``.

Every kind is a Kubernetes-style document: ``apiVersion``, ``kind``, ``metadata`` and
``spec``. Models are strict (unknown fields are errors) and frozen. Defaults are the safe
choice: one canary, one device at a time, halt on the first failure, rollback on.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from reconciler.model.fields import (
    Cron,
    Duration,
    HttpUrl,
    LabelSelector,
    Name,
    SecretRef,
    Sha256,
    Strict,
    TimeZone,
    VersionConstraint,
    VersionText,
)

__all__ = [
    "API_VERSION",
    "KINDS",
    "AccessPolicy",
    "AccessPolicySpec",
    "AccessRule",
    "Advisory",
    "AdvisorySeverity",
    "AdvisorySpec",
    "AffectedPackage",
    "AffectedRange",
    "Arch",
    "Channel",
    "CommitSigner",
    "CompliancePolicy",
    "CompliancePolicySpec",
    "Credentials",
    "Device",
    "DeviceSpec",
    "DiscoveryPolicy",
    "DiscoveryPolicySpec",
    "Document",
    "HealthCheck",
    "Image",
    "ImageFeed",
    "ImageLocation",
    "ImageSignature",
    "ImageSource",
    "ImageSourceSpec",
    "ImageSpec",
    "KindRule",
    "Metadata",
    "MinisignKey",
    "MinisignSignature",
    "NotificationFilter",
    "NotificationPolicy",
    "NotificationPolicySpec",
    "NotificationTarget",
    "PackageEvent",
    "PackageRange",
    "Platform",
    "RollbackSpec",
    "RolloutPolicy",
    "RolloutPolicySpec",
    "RolloutStrategy",
    "RolloutTarget",
    "Sbom",
    "Severity",
    "SigstoreIdentity",
    "SigstoreSignature",
    "SigstoreTrust",
    "Tls",
    "TrustPolicy",
    "TrustPolicySpec",
    "Window",
]

API_VERSION = "gitfirm.io/v1"

Arch = Literal["amd64", "arm64"]
Channel = Literal["production", "testing", "development"]
Severity = Literal["none", "low", "medium", "high", "critical"]
SEVERITY_RANK: dict[str, int] = {"none": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
# An advisory on another ecosystem's package may come without a severity: it is exposure
# (ranked with low for ordering), but never judged against a maxCveSeverity.
AdvisorySeverity = Literal["none", "low", "medium", "high", "critical", "unknown"]
SEVERITY_RANK["unknown"] = 1


class Metadata(Strict):
    """Name, labels and free-form annotations of a document."""

    name: Name
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class Document(Strict):
    """Fields shared by every kind."""

    apiVersion: Literal["gitfirm.io/v1"]
    metadata: Metadata

    @property
    def name(self) -> str:
        """The document's ``metadata.name``."""
        return self.metadata.name


# --- Device -------------------------------------------------------------------------------


class Platform(Strict):
    """What hardware and build an image or device is: architecture and release flavor."""

    arch: Arch = "amd64"
    flavor: str = Field(default="generic", pattern=r"^[a-z0-9-]+$")


class Credentials(Strict):
    """How gitfirm authenticates to the device's API; a reference, never the key."""

    apiKey: SecretRef


_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")


class Tls(Strict):
    """How the device's certificate is verified. Verification is on by default."""

    caBundle: str | None = None
    fingerprint: str | None = Field(
        default=None, description="SHA-256 of the leaf certificate (hex, colons allowed)"
    )
    insecureSkipVerify: bool = Field(
        default=False,
        description="Explicit opt-out; only a signer with the AccessPolicy's adminRole may add "
        "or change a Device that says true; status shows it for every such device",
    )

    @field_validator("fingerprint")
    @classmethod
    def _fingerprint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        hexed = value.replace(":", "").lower()
        if not _FINGERPRINT.match(hexed):
            raise ValueError("a fingerprint is 64 hex digits of SHA-256, colons allowed")
        return hexed

    @model_validator(mode="after")
    def _one_mode(self) -> Tls:
        chosen = [self.caBundle is not None, self.fingerprint is not None, self.insecureSkipVerify]
        if sum(chosen) > 1:
            raise ValueError("choose one of caBundle, fingerprint or insecureSkipVerify")
        return self


class DeviceSpec(Strict):
    """One VyOS router."""

    address: HttpUrl = Field(description="Base URL of the API, e.g. https://10.0.0.1:443")
    platform: Platform = Field(default_factory=Platform)
    credentials: Credentials
    tls: Tls = Field(default_factory=Tls)
    site: Name
    redundancyGroup: Name | None = None
    insecurePlaintext: bool = Field(
        default=False,
        description="Allow sending the API key over plain http://. Only a signer with the "
        "AccessPolicy's adminRole may add or change a Device that says true; status warns.",
    )


class Device(Document):
    """``kind: Device``."""

    kind: Literal["Device"]
    spec: DeviceSpec

    @property
    def selector_labels(self) -> dict[str, str]:
        """Labels a selector matches against, with the implicit ``gitfirm.io/*`` ones."""
        return {
            **self.metadata.labels,
            "gitfirm.io/site": self.spec.site,
            "gitfirm.io/arch": self.spec.platform.arch,
            "gitfirm.io/name": self.metadata.name,
        }


# --- Image --------------------------------------------------------------------------------

_URL_SCHEMES = ("http", "https", "file")


def _check_fetch_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in _URL_SCHEMES or not parts.path:
        raise ValueError(f"{value!r} is not an http, https or file URL")
    if parts.scheme != "file" and not parts.netloc:
        raise ValueError(f"{value!r} has no host")
    return value


FetchUrl = Annotated[str, Field(description="http, https or file URL")]


class ImageLocation(Strict):
    """Where the ISO is fetched from: ``url``, then each mirror in order."""

    url: FetchUrl
    mirrors: list[FetchUrl] = Field(default_factory=list)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_fetch_url(value)

    @field_validator("mirrors")
    @classmethod
    def _mirrors(cls, value: list[str]) -> list[str]:
        return [_check_fetch_url(v) for v in value]

    @property
    def file_name(self) -> str:
        """The ISO's file name, the last path segment of ``url``."""
        return urlsplit(self.url).path.rsplit("/", 1)[-1]


class MinisignSignature(Strict):
    """A minisign signature (``.minisig``), checked against a key pinned in a TrustPolicy."""

    url: FetchUrl | None = Field(default=None, description="Defaults to the ISO URL + .minisig")
    key: Name = Field(description="Name of a minisign key in a TrustPolicy")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_fetch_url(value)


class SigstoreSignature(Strict):
    """A sigstore bundle, checked offline against a TrustPolicy's root and identities."""

    bundleUrl: FetchUrl

    @field_validator("bundleUrl")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_fetch_url(value)


class ImageSignature(Strict):
    """Exactly one of ``minisign`` or ``sigstore``."""

    minisign: MinisignSignature | None = None
    sigstore: SigstoreSignature | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ImageSignature:
        self._require_one_of("minisign", "sigstore")
        return self


class Sbom(Strict):
    """The packages an image contains: a CycloneDX JSON or ``dpkg-query -W`` list, fetched
    and checked against ``sha256`` like the image. ``ecosystem`` names the OSV ecosystem
    of its packages (``Debian:12`` for VyOS 1.4 and 1.5)."""

    url: HttpUrl
    sha256: Sha256
    ecosystem: str = Field(pattern=r"^Debian:\d+$")


class ImageSpec(Strict):
    """A signed VyOS image approved for a channel."""

    version: VersionText
    channel: Channel
    platforms: list[Platform] = Field(min_length=1)
    source: ImageLocation
    sha256: Sha256
    size: int = Field(gt=0, description="Exact size in bytes; a longer download is refused")
    signature: ImageSignature
    upgradeFrom: VersionConstraint | None = Field(
        default=None,
        description="Versions that may upgrade straight to this one. Naming another train's "
        "versions is how an image allows a change of train.",
    )
    revoked: bool = False
    revokedReason: str | None = None
    sbom: Sbom | None = None

    def supports(self, platform: Platform) -> bool:
        """Whether the image runs on that platform."""
        return platform in self.platforms


class Image(Document):
    """``kind: Image``."""

    kind: Literal["Image"]
    spec: ImageSpec


# --- RolloutPolicy ------------------------------------------------------------------------


class RolloutTarget(Strict):
    """Either a fixed ``version`` or the latest non-revoked image of a ``channel``."""

    version: VersionText | None = None
    channel: Channel | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> RolloutTarget:
        self._require_one_of("version", "channel")
        return self


_PERCENT_OR_COUNT = re.compile(r"^(\d+)%?$")


def _count_or_percent(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a count such as 2 or a percentage such as '10%'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("must be >= 0")
        return str(value)
    if isinstance(value, str) and (m := _PERCENT_OR_COUNT.match(value.strip())):
        if value.strip().endswith("%") and int(m.group(1)) > 100:
            raise ValueError("a percentage must be at most 100%")
        return value.strip()
    raise ValueError("expected a count such as 2 or a percentage such as '10%'")


class RolloutStrategy(Strict):
    """How the rollout proceeds. Every default is the cautious choice."""

    canary: int = Field(default=1, ge=0, description="Devices upgraded alone, first")
    waves: list[Annotated[int, Field(gt=0, le=100)]] = Field(
        default_factory=lambda: [10, 50, 100],
        description="Cumulative percentages of the remaining devices, one per wave",
    )
    maxParallel: int = Field(default=1, ge=1, description="Devices in flight at once")
    maxUnavailable: Annotated[str, Field(json_schema_extra={"type": ["string", "integer"]})] = (
        Field(default="1", description="Count or percentage; unreachable devices count")
    )
    failureThreshold: int = Field(default=1, ge=1, description="Failures that halt the rollout")
    pause: Duration = Field(default=timedelta(minutes=10), description="Wait between waves")
    allowDowngrade: bool = Field(
        default=False,
        description="Allow a step back to an older version (anti-rollback off). Only a signer "
        "with the AccessPolicy's adminRole may add or change a RolloutPolicy that says true",
    )
    stageEarly: bool = Field(
        default=True, description="On 1.5+, add the image before the window opens"
    )
    maxStepDuration: Duration = Field(
        default=timedelta(minutes=30),
        description="Longest a disruptive step (reboot to health verdict) may take; it "
        "starts only if the window stays open that long (or the longest measured so far)",
    )

    @field_validator("maxUnavailable", mode="before")
    @classmethod
    def _max_unavailable(cls, value: Any) -> Any:
        return _count_or_percent(value)

    @field_validator("waves")
    @classmethod
    def _increasing(cls, value: list[int]) -> list[int]:
        if any(b <= a for a, b in itertools.pairwise(value)):
            raise ValueError("wave percentages must increase")
        if value and value[-1] != 100:
            raise ValueError("the last wave must be 100 so every device is reached")
        return value


class Window(Strict):
    """A recurring window: opens at each ``schedule`` time and lasts ``duration``."""

    type: Literal["allow", "deny"] = "allow"
    schedule: Cron
    duration: Duration
    timeZone: TimeZone = "UTC"

    @field_validator("duration")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("a window must last longer than 0s")
        return value


class HealthCheck(Strict):
    """A ``show`` command whose output must match ``expect`` (and not ``reject``)."""

    name: Name
    show: list[str] = Field(min_length=1, description="Path for /show, e.g. [ip, bgp, summary]")
    expect: str | None = Field(default=None, description="Regex the output must match")
    reject: str | None = Field(default=None, description="Regex the output must not match")
    initialDelay: Duration = timedelta(seconds=30)
    interval: Duration = timedelta(seconds=10)
    timeout: Duration = timedelta(minutes=5)
    retries: int = Field(default=3, ge=0)
    successThreshold: int = Field(default=1, ge=1)
    failureThreshold: int = Field(default=3, ge=1)
    baseline: bool = Field(
        default=True,
        description="Measure the output before the upgrade (the numbers expect's first "
        "group captures, or its matching lines) and require at least as much after it",
    )
    baselineTolerance: int = Field(
        default=0, ge=0, le=100, description="Percent the measure may drop below the baseline"
    )

    @field_validator("expect", "reject")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as e:
                raise ValueError(f"not a valid regular expression: {e}") from None
        return value

    @model_validator(mode="after")
    def _something(self) -> HealthCheck:
        if self.expect is None and self.reject is None:
            raise ValueError("give 'expect', 'reject' or both")
        return self


class RollbackSpec(Strict):
    """Automatic rollback to the previous image when an upgrade fails."""

    automatic: bool = True
    onUnreachable: Literal["rollback", "pause"] = Field(
        default="rollback",
        description="A device that does not answer after its reboot (past the boot timeout "
        "or the health checks' retries) is rolled back, or the rollout pauses for a human",
    )


class RolloutPolicy(Document):
    """``kind: RolloutPolicy``."""

    kind: Literal["RolloutPolicy"]
    spec: RolloutPolicySpec


class RolloutPolicySpec(Strict):
    """Which devices go to which target, and how."""

    selector: LabelSelector
    target: RolloutTarget
    strategy: RolloutStrategy = Field(default_factory=RolloutStrategy)
    windows: list[Window] = Field(
        default_factory=list,
        description="With no allow window, nothing is ever activated",
    )
    healthChecks: list[HealthCheck] = Field(default_factory=list)
    rollback: RollbackSpec = Field(default_factory=RollbackSpec)
    keepImages: int = Field(
        default=2,
        ge=1,
        description="Images kept on a device after a healthy upgrade (running plus "
        "previous); the running, default-boot and rollback images are never deleted",
    )
    suspend: bool = False
    retryToken: str | None = None


# --- CompliancePolicy ---------------------------------------------------------------------


def _production_only() -> list[Channel]:
    return ["production"]


class CompliancePolicySpec(Strict):
    """What a compliant device runs."""

    selector: LabelSelector = Field(default_factory=LabelSelector)
    allowedChannels: list[Channel] = Field(default_factory=_production_only)
    minimumVersion: list[VersionText] = Field(
        default_factory=list, description="Lowest acceptable version, one per train"
    )
    forbiddenVersions: list[VersionText] = Field(default_factory=list)
    maxCveSeverity: Severity = "medium"
    enforcement: Literal["block", "warn"] = Field(
        default="block",
        description="block: no rollout moves a selected device to a version violating "
        "this policy; warn: such upgrades go ahead and the plan only says so",
    )


class CompliancePolicy(Document):
    """``kind: CompliancePolicy``."""

    kind: Literal["CompliancePolicy"]
    spec: CompliancePolicySpec


# --- TrustPolicy --------------------------------------------------------------------------

_MINISIGN_PUB = re.compile(r"^RW[A-Za-z0-9+/]{54}$")


class MinisignKey(Strict):
    """A pinned minisign public key (the base64 line of a ``.pub`` file)."""

    name: Name
    publicKey: str

    @field_validator("publicKey")
    @classmethod
    def _key(cls, value: str) -> str:
        if not _MINISIGN_PUB.match(value.strip()):
            raise ValueError("a minisign public key is 56 base64 characters starting with RW")
        return value.strip()


class SigstoreIdentity(Strict):
    """A certificate identity (SAN) and OIDC issuer that may sign images."""

    identity: str = Field(min_length=1)
    issuer: str = Field(min_length=1)


class SigstoreTrust(Strict):
    """A pinned trusted root and the identities allowed under it."""

    trustedRoot: str = Field(description="Path, relative to the config repo, of the root JSON")
    identities: list[SigstoreIdentity] = Field(min_length=1)


class TrustPolicySpec(Strict):
    """Keys and identities trusted for the images of some channels."""

    channels: list[Channel] = Field(min_length=1)
    minisign: list[MinisignKey] = Field(default_factory=list)
    sigstore: SigstoreTrust | None = None


class TrustPolicy(Document):
    """``kind: TrustPolicy``."""

    kind: Literal["TrustPolicy"]
    spec: TrustPolicySpec


# --- AccessPolicy -------------------------------------------------------------------------


class CommitSigner(Strict):
    """Someone who may sign commits, with a public key and roles."""

    name: Name
    sshKey: str | None = Field(default=None, description="e.g. 'ssh-ed25519 AAAA... alice'")
    pgpFingerprint: str | None = Field(default=None, pattern=r"^[0-9A-Fa-f]{40}$")
    roles: list[Name] = Field(min_length=1)

    @field_validator("sshKey")
    @classmethod
    def _ssh(cls, value: str | None) -> str | None:
        if value is not None and not re.match(
            r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-\S+|sk-\S+) \S+", value
        ):
            raise ValueError("expected an OpenSSH public key line such as 'ssh-ed25519 AAAA...'")
        return value

    @model_validator(mode="after")
    def _one_key(self) -> CommitSigner:
        self._require_one_of("sshKey", "pgpFingerprint")
        return self

    @property
    def key_id(self) -> str:
        """The key itself: the base64 blob of ``sshKey`` or the upper-case fingerprint."""
        if self.sshKey:
            return self.sshKey.split()[1]
        return (self.pgpFingerprint or "").upper()


class AccessRule(Strict):
    """Paths (git-style globs) that only the listed roles may change."""

    paths: list[str] = Field(min_length=1)
    roles: list[Name] = Field(min_length=1)


_CHANNEL_KINDS = ("Image", "TrustPolicy")


class KindRule(Strict):
    """Roles that may add, change or remove documents of one kind, wherever they live.

    For ``Image`` and ``TrustPolicy``, ``channels`` narrows the rule to documents of those
    channels (empty: every channel). A document matched by no rule falls back to the
    defaults: ``TrustPolicy`` and ``production`` ``Image`` documents need ``adminRole``,
    anything else any known signer.
    """

    kind: Literal["Device", "Image", "RolloutPolicy", "CompliancePolicy", "TrustPolicy", "Advisory"]
    """The AccessPolicy itself is not listed: it always needs ``adminRole``."""
    channels: list[Channel] = Field(default_factory=list)
    roles: list[Name] = Field(min_length=1)

    @model_validator(mode="after")
    def _channels_for_channel_kinds(self) -> KindRule:
        if self.channels and self.kind not in _CHANNEL_KINDS:
            raise ValueError(f"channels apply only to {' and '.join(_CHANNEL_KINDS)} rules")
        return self


class AccessPolicySpec(Strict):
    """Who may change what. With ``mode: strict`` every commit is checked.

    ``kinds`` governs documents by kind (and channel), ``rules`` by path; a change must
    satisfy both. ``adminRole`` names the role that may change the AccessPolicy itself, and
    by default every TrustPolicy, every production Image and any Device with
    ``insecurePlaintext: true``.
    """

    mode: Literal["none", "head", "strict"] = "strict"
    adminRole: Name = "admin"
    signers: list[CommitSigner] = Field(default_factory=list)
    kinds: list[KindRule] = Field(default_factory=list)
    rules: list[AccessRule] = Field(default_factory=list)

    @field_validator("signers")
    @classmethod
    def _unique_signers(cls, value: list[CommitSigner]) -> list[CommitSigner]:
        # A name is git's SSH principal and a key maps to one set of roles: no ambiguity.
        names: set[str] = set()
        keys: set[str] = set()
        for signer in value:
            if signer.name in names:
                raise ValueError(f"duplicate signer name {signer.name!r}")
            if signer.key_id in keys:
                raise ValueError(f"signer {signer.name!r} repeats another signer's key")
            names.add(signer.name)
            keys.add(signer.key_id)
        return value


class AccessPolicy(Document):
    """``kind: AccessPolicy``."""

    kind: Literal["AccessPolicy"]
    spec: AccessPolicySpec


# --- Advisory -----------------------------------------------------------------------------


class AffectedRange(Strict):
    """One interval of affected VyOS versions, in the order of the ``VyOS`` ecosystem.

    ``introduced`` is inclusive (``"0"``: from the first version); the end is ``fixed``
    (exclusive) or ``lastAffected`` (inclusive), or none (still affected); ``limit``
    (exclusive) caps the interval. The ecosystem orders versions within a train, and
    trains by generation (1.3 < 1.4 < ... < rolling < integration), so a range may span
    trains, as an OSV range does.
    """

    introduced: VersionText | Literal["0"]
    fixed: VersionText | None = None
    lastAffected: VersionText | None = None
    limit: VersionText | None = None

    @model_validator(mode="after")
    def _one_end(self) -> AffectedRange:
        if self.fixed is not None and self.lastAffected is not None:
            raise ValueError("a range ends with fixed or lastAffected, not both")
        return self


class PackageEvent(Strict):
    """One OSV range event of another ecosystem: exactly one of the four fields."""

    introduced: str | None = Field(default=None, min_length=1)
    fixed: str | None = Field(default=None, min_length=1)
    lastAffected: str | None = Field(default=None, min_length=1)
    limit: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one(self) -> PackageEvent:
        given = [f for f in ("introduced", "fixed", "lastAffected", "limit") if getattr(self, f)]
        if len(given) != 1:
            raise ValueError("an event gives exactly one of introduced, fixed, lastAffected, limit")
        return self


class PackageRange(Strict):
    """An OSV range of another ecosystem, its events kept as given (their order is the
    ecosystem's, e.g. dpkg's for ``Debian:12``)."""

    type: Literal["ECOSYSTEM", "SEMVER"]
    events: list[PackageEvent] = Field(min_length=1)


class AffectedPackage(Strict):
    """A package of another ecosystem (``Debian:12``, ``PyPI`` ...) that an advisory
    affects, kept for matching against the packages an image contains."""

    ecosystem: str = Field(min_length=1)
    name: str = Field(min_length=1)
    versions: list[str] = Field(default_factory=list)
    ranges: list[PackageRange] = Field(default_factory=list)


class AdvisorySpec(Strict):
    """A vulnerability (the YAML twin of an OSV record): ``versions`` and ``ranges`` are
    VyOS versions (OSV ecosystem ``VyOS``); ``packages`` are those of other ecosystems."""

    summary: str = ""
    severity: AdvisorySeverity
    aliases: list[str] = Field(default_factory=list)
    versions: list[VersionText] = Field(default_factory=list)
    ranges: list[AffectedRange] = Field(default_factory=list)
    packages: list[AffectedPackage] = Field(default_factory=list)


class Advisory(Document):
    """``kind: Advisory``."""

    kind: Literal["Advisory"]
    spec: AdvisorySpec


# --- DiscoveryPolicy ----------------------------------------------------------------------

MAX_SCAN_ADDRESSES = 65_536
"""Addresses one DiscoveryPolicy may scan (a /16): a typo such as /8 must not flood a network."""


def _check_cidr(value: str) -> str:
    try:
        network = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError as e:
        raise ValueError(f"{value!r} is not a CIDR such as 10.0.0.0/24: {e}") from None
    if network.num_addresses > MAX_SCAN_ADDRESSES:
        raise ValueError(f"{value!r} has more than {MAX_SCAN_ADDRESSES} addresses; split it")
    return str(network)


class DiscoveryPolicySpec(Strict):
    """Networks the daemon scans for VyOS HTTP APIs on a schedule. A router it finds that no
    Device declares (by address or TLS fingerprint) becomes a proposal, never a Device by
    itself. Only a signer with the AccessPolicy's adminRole may add or change one."""

    cidrs: list[str] = Field(min_length=1, description="Networks to scan, at most a /16 each")
    ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(
        default_factory=lambda: [443], min_length=1, max_length=64
    )
    site: Name = Field(description="The site of the proposed Devices")
    interval: Duration = Field(default=timedelta(hours=24), description="Time between scans")
    credentials: Credentials | None = Field(
        default=None,
        description="API key for show version (platform, flavor); also the reference the "
        "proposed Devices carry. Without it, only the version /info gives is read.",
    )

    @field_validator("cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        return [_check_cidr(v) for v in value]

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: timedelta) -> timedelta:
        if value < timedelta(minutes=1):
            raise ValueError("scan at most once a minute")
        return value


class DiscoveryPolicy(Document):
    """``kind: DiscoveryPolicy``."""

    kind: Literal["DiscoveryPolicy"]
    spec: DiscoveryPolicySpec


# --- ImageSource --------------------------------------------------------------------------

_DEFAULT_PATTERN = r"^vyos-(?P<version>.+)-generic-amd64\.iso$"


class ImageFeed(Strict):
    """Exactly one of ``releases`` (a GitHub-releases-style JSON API: a list of releases,
    each with ``assets`` of ``name`` and ``browser_download_url``) or ``index`` (an HTTP
    directory index whose links name the ISOs and their ``.minisig`` files)."""

    releases: FetchUrl | None = None
    index: FetchUrl | None = None

    @field_validator("releases", "index")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_fetch_url(value)

    @model_validator(mode="after")
    def _exactly_one(self) -> ImageFeed:
        self._require_one_of("releases", "index")
        return self

    @property
    def url(self) -> str:
        """The feed's URL, whichever kind it is."""
        return self.releases or self.index or ""


class ImageSourceSpec(Strict):
    """An upstream feed of signed builds. A new build that passes verification against the
    channel's TrustPolicy becomes a proposal adding its Image; one that fails is reported.
    Only a signer with the AccessPolicy's adminRole may add or change one."""

    feed: ImageFeed
    namePattern: str = Field(
        default=_DEFAULT_PATTERN,
        description="Regex an ISO file name must match; its group 'version' is the version",
    )
    channel: Channel = Field(description="testing or development; never production")
    platform: Platform = Field(default_factory=Platform)
    key: Name = Field(description="Name of the minisign key, in the channel's TrustPolicy")
    interval: Duration = Field(default=timedelta(hours=6), description="Time between looks")
    maxSize: int = Field(
        default=4 << 30, gt=0, description="Largest build downloaded, in bytes (default 4 GiB)"
    )
    upgradeFrom: VersionConstraint | None = Field(
        default=None, description="Copied into each proposed Image"
    )

    @field_validator("channel")
    @classmethod
    def _not_production(cls, value: str) -> str:
        if value == "production":
            raise ValueError(
                "an ImageSource never feeds production: use testing or development, and "
                "promote a tested Image to production by hand"
            )
        return value

    @field_validator("namePattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as e:
            raise ValueError(f"not a valid regular expression: {e}") from None
        if "version" not in compiled.groupindex:
            raise ValueError("the pattern needs a named group (?P<version>...)")
        return value

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: timedelta) -> timedelta:
        if value < timedelta(minutes=1):
            raise ValueError("look at most once a minute")
        return value


class ImageSource(Document):
    """``kind: ImageSource``."""

    kind: Literal["ImageSource"]
    spec: ImageSourceSpec


RolloutPolicy.model_rebuild()

# --- NotificationPolicy -------------------------------------------------------------------

NOTIFY_SECRET_PREFIX = "NOTIFY_SECRET_"  # noqa: S105 (a variable-name prefix, no secret)
"""Environment variables a notification target's secrets may name, and no others."""
AlertEvent = Literal[
    "rollout-started",
    "wave-passed",
    "rollout-halted",
    "rollout-completed",
    "device-failed",
    "device-rolled-back",
    "revision-refused",
    "image-refused",
    "cve-exposure",
    "device-unreachable",
    "store-capacity",
]
AlertSeverity = Literal["info", "warning", "critical"]
_PLACEHOLDER = re.compile(r"\{([A-Za-z][A-Za-z0-9_]*)\}")


class NotificationTarget(Strict):
    """Where notices go: an Apprise URL whose ``{placeholders}`` are secrets by reference.

    ``url: "mailto://gitfirm:{password}@smtp.example.org?to=ops@example.org"`` with
    ``secrets: {password: {env: NOTIFY_SECRET_SMTP}}``: the value is read from the daemon's
    environment when the policy is applied, and never written to Git, logs or status.
    """

    name: Name
    url: str = Field(min_length=4, description="Apprise URL, e.g. mailto://, json://, slack://")
    secrets: dict[str, SecretRef] = Field(
        default_factory=dict,
        description="Placeholder -> {env: NOTIFY_SECRET_...}; only NOTIFY_SECRET_* variables",
    )

    @field_validator("url")
    @classmethod
    def _apprise_url(cls, value: str) -> str:
        whole = _PLACEHOLDER.fullmatch(value) is not None  # the whole URL is a secret
        if not whole and not re.match(r"^[a-z][a-z0-9+.-]*://", value):
            raise ValueError(
                "an Apprise URL starts with a scheme such as mailto:// or json://, or is one "
                "{placeholder}"
            )
        return value

    @model_validator(mode="after")
    def _secrets_by_reference(self) -> NotificationTarget:
        used = set(_PLACEHOLDER.findall(self.url))
        if used != set(self.secrets):
            missing, unused = sorted(used - set(self.secrets)), sorted(set(self.secrets) - used)
            raise ValueError(
                f"every {{placeholder}} of url needs a secret and every secret a placeholder "
                f"(missing: {missing or '-'}, unused: {unused or '-'})"
            )
        for name, ref in self.secrets.items():
            if ref.env is None or not ref.env.startswith(NOTIFY_SECRET_PREFIX):
                raise ValueError(
                    f"secret {name!r}: give {{env: {NOTIFY_SECRET_PREFIX}...}}; notification "
                    "secrets come from NOTIFY_SECRET_* variables only"
                )
        return self


class NotificationFilter(Strict):
    """Which alerts are sent; an empty list matches everything."""

    severity: AlertSeverity = Field(default="warning", description="The lowest severity sent")
    events: list[AlertEvent] = Field(default_factory=list)
    policies: list[Name] = Field(default_factory=list, description="RolloutPolicy names")
    sites: list[Name] = Field(default_factory=list)


class NotificationPolicySpec(Strict):
    """Who is told about which alerts, and how often."""

    targets: list[NotificationTarget] = Field(min_length=1)
    filter: NotificationFilter = Field(default_factory=NotificationFilter)
    dedupeWindow: Duration = Field(
        default=timedelta(minutes=5),
        description="The same subject and message is sent once per window (as Flux does)",
    )
    sendResolved: bool = Field(default=True, description="Send a notice when an alert clears")
    suspend: bool = False

    @field_validator("targets")
    @classmethod
    def _unique(cls, value: list[NotificationTarget]) -> list[NotificationTarget]:
        names = [t.name for t in value]
        if len(set(names)) != len(names):
            raise ValueError("target names must be unique")
        return value


class NotificationPolicy(Document):
    """``kind: NotificationPolicy``."""

    kind: Literal["NotificationPolicy"]
    spec: NotificationPolicySpec


KINDS: dict[str, type[Document]] = {
    "Device": Device,
    "Image": Image,
    "RolloutPolicy": RolloutPolicy,
    "CompliancePolicy": CompliancePolicy,
    "TrustPolicy": TrustPolicy,
    "AccessPolicy": AccessPolicy,
    "Advisory": Advisory,
    "DiscoveryPolicy": DiscoveryPolicy,
    "ImageSource": ImageSource,
    "NotificationPolicy": NotificationPolicy,
}
