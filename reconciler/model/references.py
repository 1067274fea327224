"""Cross-reference checks over a whole desired state.

Errors: a policy's target missing or not supporting a selected device's platform, a device
selected by several rollout policies, a redundancy group split across policies, an image
signature key or sigstore trust that no TrustPolicy of its channel provides, a missing
trusted-root file, several AccessPolicies, two TrustPolicies covering one channel (one trust
root per channel: its keys are the only keys for that channel), two Images declaring the
same version for the same channel and platform (the planner must never choose by name).
Warnings: a selector matching no device, a redundancy group of one, an advisory naming a
version no Image declares, an access rule naming a role nobody holds, a device whose API
key would cross the network in clear text (``insecurePlaintext``) or is never sent (plain
``http://`` without it).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from reconciler.errors import ConfigError, Location
from reconciler.model.kinds import Device, Image, RolloutPolicy
from reconciler.model.state import DesiredState
from reconciler.model.versions import parse_version

__all__ = ["Locate", "check_references", "select_devices", "target_images"]

Locate = Callable[[str, str, tuple[str | int, ...]], Location]


def select_devices(policy: RolloutPolicy, devices: dict[str, Device]) -> list[Device]:
    """The devices a rollout policy's selector matches, sorted by name."""
    selector = policy.spec.selector
    return [d for _, d in sorted(devices.items()) if selector.matches(d.selector_labels)]


def target_images(policy: RolloutPolicy, images: dict[str, Image]) -> list[Image]:
    """The non-revoked images a policy's target can resolve to."""
    target = policy.spec.target
    out = []
    for image in images.values():
        if image.spec.revoked:
            continue
        by_version = target.version is not None and image.spec.version == target.version
        by_channel = target.channel is not None and image.spec.channel == target.channel
        if by_version or by_channel:
            out.append(image)
    return sorted(out, key=lambda i: i.name)


def _check_policies(
    state: DesiredState, locate: Locate, errors: list[ConfigError], warnings: list[ConfigError]
) -> None:
    selected_by: dict[str, list[str]] = defaultdict(list)
    for name, policy in sorted(state.rollout_policies.items()):
        devices = select_devices(policy, state.devices)
        if not devices:
            warnings.append(
                ConfigError(
                    "selector matches no device",
                    location=locate("RolloutPolicy", name, ("spec", "selector")),
                    field="spec.selector",
                )
            )
        for device in devices:
            selected_by[device.name].append(name)
        if not policy.spec.windows or all(w.type == "deny" for w in policy.spec.windows):
            warnings.append(
                ConfigError(
                    "no allow window: nothing will ever be activated",
                    location=locate("RolloutPolicy", name, ("spec",)),
                    field="spec.windows",
                )
            )
        images = target_images(policy, state.images)
        where = locate("RolloutPolicy", name, ("spec", "target"))
        if not images:
            wanted = policy.spec.target.version or f"channel {policy.spec.target.channel}"
            errors.append(
                ConfigError(
                    f"no approved Image for target {wanted}", location=where, field="spec.target"
                )
            )
            continue
        for device in devices:
            if not any(i.spec.supports(device.spec.platform) for i in images):
                p = device.spec.platform
                errors.append(
                    ConfigError(
                        f"no target image supports device {device.name!r} ({p.arch}/{p.flavor})",
                        location=where,
                        field="spec.target",
                    )
                )
    for device_name, policies in sorted(selected_by.items()):
        if len(policies) > 1:
            errors.append(
                ConfigError(
                    f"selected by several rollout policies: {', '.join(policies)}",
                    location=locate("Device", device_name, ("metadata", "labels")),
                    field="metadata.labels",
                )
            )
    _check_groups(state, selected_by, locate, errors, warnings)


def _check_groups(
    state: DesiredState,
    selected_by: dict[str, list[str]],
    locate: Locate,
    errors: list[ConfigError],
    warnings: list[ConfigError],
) -> None:
    groups: dict[str, list[Device]] = defaultdict(list)
    for device in state.devices.values():
        if device.spec.redundancyGroup:
            groups[device.spec.redundancyGroup].append(device)
    for group, members in sorted(groups.items()):
        members.sort(key=lambda d: d.name)
        first = members[0]
        where = locate("Device", first.name, ("spec", "redundancyGroup"))
        if len(members) == 1:
            warnings.append(
                ConfigError(
                    f"redundancy group {group!r} has only one member",
                    location=where,
                    field="spec.redundancyGroup",
                )
            )
            continue
        if len({m.spec.site for m in members}) > 1:
            warnings.append(
                ConfigError(
                    f"redundancy group {group!r} spans several sites",
                    location=where,
                    field="spec.redundancyGroup",
                )
            )
        owners = {tuple(selected_by.get(m.name, [])) for m in members}
        if len(owners) > 1:
            errors.append(
                ConfigError(
                    f"members of redundancy group {group!r} are selected by different rollout "
                    "policies, so gitfirm could not keep them from upgrading together",
                    location=where,
                    field="spec.redundancyGroup",
                )
            )


def _in_file_order(
    kind: str, locate: Locate
) -> Callable[[tuple[str, object]], tuple[str, int, int]]:
    def key(item: tuple[str, object]) -> tuple[str, int, int]:
        where = locate(kind, item[0], ())
        return (where.file, where.line, where.column)

    return key


def _check_trust(state: DesiredState, locate: Locate, errors: list[ConfigError]) -> None:
    keys_by_channel: dict[str, set[str]] = defaultdict(set)
    sigstore_channels: set[str] = set()
    governs: dict[str, str] = {}
    # In file order, so the error lands on the later declaration.
    for name, trust in sorted(
        state.trust_policies.items(), key=_in_file_order("TrustPolicy", locate)
    ):
        for index, channel in enumerate(trust.spec.channels):
            if channel in governs:
                first = locate("TrustPolicy", governs[channel], ("spec", "channels"))
                errors.append(
                    ConfigError(
                        f"channel {channel} is already covered by TrustPolicy "
                        f"{governs[channel]!r} ({first}); one TrustPolicy governs a channel",
                        location=locate("TrustPolicy", name, ("spec", "channels", index)),
                        field=f"spec.channels[{index}]",
                    )
                )
                continue
            governs[channel] = name
            keys_by_channel[channel].update(k.name for k in trust.spec.minisign)
            if trust.spec.sigstore is not None:
                sigstore_channels.add(channel)
        if trust.spec.sigstore is not None and state.root:
            root_file = Path(state.root) / trust.spec.sigstore.trustedRoot
            if not root_file.is_file():
                errors.append(
                    ConfigError(
                        f"trusted root file {trust.spec.sigstore.trustedRoot!r} does not exist",
                        location=locate("TrustPolicy", name, ("spec", "sigstore", "trustedRoot")),
                        field="spec.sigstore.trustedRoot",
                    )
                )
    for name, image in sorted(state.images.items()):
        sig = image.spec.signature
        channel = image.spec.channel
        if sig.minisign is not None and sig.minisign.key not in keys_by_channel[channel]:
            errors.append(
                ConfigError(
                    f"minisign key {sig.minisign.key!r} is not pinned by any TrustPolicy for "
                    f"channel {channel}",
                    location=locate("Image", name, ("spec", "signature", "minisign", "key")),
                    field="spec.signature.minisign.key",
                )
            )
        if sig.sigstore is not None and channel not in sigstore_channels:
            errors.append(
                ConfigError(
                    f"no TrustPolicy pins a sigstore root and identities for channel {channel}",
                    location=locate("Image", name, ("spec", "signature", "sigstore")),
                    field="spec.signature.sigstore",
                )
            )
    for name, source in sorted(state.image_sources.items()):
        # Its builds are verified with this key: a source nothing could verify is an error.
        if source.spec.key not in keys_by_channel[source.spec.channel]:
            errors.append(
                ConfigError(
                    f"minisign key {source.spec.key!r} is not pinned by the TrustPolicy of "
                    f"channel {source.spec.channel}",
                    location=locate("ImageSource", name, ("spec", "key")),
                    field="spec.key",
                )
            )


def _check_image_versions(state: DesiredState, locate: Locate, errors: list[ConfigError]) -> None:
    seen: dict[tuple[str, str, str, str], str] = {}
    for name, image in sorted(state.images.items(), key=_in_file_order("Image", locate)):
        for index, platform in enumerate(image.spec.platforms):
            key = (image.spec.version, image.spec.channel, platform.arch, platform.flavor)
            if key in seen and seen[key] != name:
                first = locate("Image", seen[key], ())
                errors.append(
                    ConfigError(
                        f"Image {seen[key]!r} ({first}) already declares version "
                        f"{image.spec.version} for channel {image.spec.channel} on "
                        f"{platform.arch}/{platform.flavor}",
                        location=locate("Image", name, ("spec", "platforms", index)),
                        field=f"spec.platforms[{index}]",
                    )
                )
            seen.setdefault(key, name)


def _check_access(
    state: DesiredState, locate: Locate, errors: list[ConfigError], warnings: list[ConfigError]
) -> None:
    names = sorted(state.access_policies)
    for extra in names[1:]:
        errors.append(
            ConfigError(
                f"only one AccessPolicy may be in force (found {', '.join(names)})",
                location=locate("AccessPolicy", extra, ("metadata", "name")),
                field="metadata.name",
            )
        )
    for name in names:
        spec = state.access_policies[name].spec
        held = {role for s in spec.signers for role in s.roles}
        listed = [("rules", i, r.roles) for i, r in enumerate(spec.rules)]
        listed += [("kinds", i, r.roles) for i, r in enumerate(spec.kinds)]
        for section, i, roles in listed:
            for role in roles:
                if role not in held:
                    warnings.append(
                        ConfigError(
                            f"role {role!r} is held by no signer",
                            location=locate("AccessPolicy", name, ("spec", section, i, "roles")),
                            field=f"spec.{section}[{i}].roles",
                        )
                    )


def _check_advisories(state: DesiredState, locate: Locate, warnings: list[ConfigError]) -> None:
    known = {i.spec.version for i in state.images.values()}
    for name, advisory in sorted(state.advisories.items()):
        named = list(advisory.spec.versions)
        for rng in advisory.spec.ranges:
            bounds = (rng.introduced, rng.fixed, rng.lastAffected, rng.limit)
            named.extend(b for b in bounds if b is not None and b != "0")
        for version in named:
            if version not in known:
                warnings.append(
                    ConfigError(
                        f"advisory names version {version!r}, which no Image declares",
                        location=locate("Advisory", name, ("spec",)),
                        field="spec",
                    )
                )


def _check_plaintext(state: DesiredState, locate: Locate, warnings: list[ConfigError]) -> None:
    for name, device in sorted(state.devices.items()):
        plain = device.spec.address.scheme == "http"
        if device.spec.insecurePlaintext:
            text = "insecurePlaintext: true: the API key crosses the network in clear text"
        elif plain:
            text = "plain http:// address without insecurePlaintext: the API key is never sent"
        else:
            continue
        warnings.append(
            ConfigError(text, location=locate("Device", name, ("spec",)), field="spec.address")
        )


def _check_compliance(state: DesiredState, locate: Locate, errors: list[ConfigError]) -> None:

    for name, policy in sorted(state.compliance_policies.items()):
        trains = [parse_version(v).train for v in policy.spec.minimumVersion]
        if len(trains) != len(set(trains)):
            errors.append(
                ConfigError(
                    "give at most one minimumVersion per release train",
                    location=locate("CompliancePolicy", name, ("spec", "minimumVersion")),
                    field="spec.minimumVersion",
                )
            )


def check_references(
    state: DesiredState, locate: Locate
) -> tuple[list[ConfigError], list[ConfigError]]:
    """Check references between documents; returns (errors, warnings)."""
    errors: list[ConfigError] = []
    warnings: list[ConfigError] = []
    _check_policies(state, locate, errors, warnings)
    _check_trust(state, locate, errors)
    _check_image_versions(state, locate, errors)
    _check_access(state, locate, errors, warnings)
    _check_advisories(state, locate, warnings)
    _check_plaintext(state, locate, warnings)
    _check_compliance(state, locate, errors)
    return errors, warnings
