"""Every kind: a valid document loads, safe defaults hold, and invalid ones are refused."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from reconciler.model.fields import LabelSelector, format_duration, parse_duration
from reconciler.model.kinds import KINDS, Device, DiscoveryPolicy, ImageSource, RolloutPolicy
from reconciler.model.loader import load_repository

META = {"apiVersion": "gitfirm.io/v1", "metadata": {"name": "x1"}}
KEY = "RWTR1ty93Oyontk6caB9WqmiQC4fgeyd/ejgRxCRGd2MQej7nqebHneP"
SSH = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl a@b"
SHA = "ab" * 32

VALID: dict[str, dict[str, Any]] = {
    "Device": {
        "address": "https://10.0.0.1/api",
        "credentials": {"apiKey": {"file": "/run/secrets/k"}},
        "tls": {"fingerprint": ":".join(["AB"] * 32)},
        "site": "dc1",
        "redundancyGroup": "pair-1",
    },
    "Image": {
        "version": "2025.01.10-0020-rolling",
        "channel": "testing",
        "platforms": [{"arch": "arm64"}],
        "source": {"url": "https://h/x.iso", "mirrors": ["file:///srv/x.iso"]},
        "sha256": SHA.upper(),
        "size": 10,
        "signature": {"sigstore": {"bundleUrl": "https://h/x.iso.sigstore"}},
        "upgradeFrom": ">=1.4.0 || rolling",
    },
    "RolloutPolicy": {
        "selector": {"matchExpressions": [{"key": "site", "operator": "Exists"}]},
        "target": {"channel": "production"},
        "windows": [{"type": "deny", "schedule": "0 0 * * *", "duration": "1h30m"}],
        "healthChecks": [{"name": "bgp", "show": ["ip", "bgp", "summary"], "expect": "Estab"}],
    },
    "CompliancePolicy": {"minimumVersion": ["1.4.0"], "maxCveSeverity": "high"},
    "TrustPolicy": {
        "channels": ["production"],
        "minisign": [{"name": "release", "publicKey": KEY}],
        "sigstore": {"trustedRoot": "root.json", "identities": [{"identity": "a", "issuer": "b"}]},
    },
    "AccessPolicy": {
        "signers": [{"name": "alice", "sshKey": SSH, "roles": ["admin"]}],
        "rules": [{"paths": ["policies/**"], "roles": ["admin"]}],
    },
    "Advisory": {"severity": "high", "ranges": [{"introduced": "1.4.0", "fixed": "1.4.3"}]},
}

INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("Device", {"address": "ftp://h"}, "URL scheme"),
    ("Device", {"tls": {"fingerprint": "abc"}}, "64 hex digits"),
    ("Device", {"tls": {"caBundle": "/ca.pem", "insecureSkipVerify": True}}, "choose one"),
    ("Device", {"credentials": {"apiKey": {"env": "A", "file": "/f"}}}, "exactly one"),
    ("Device", {"platform": {"arch": "mips"}}, "amd64"),
    ("Image", {"size": 0}, "greater than 0"),
    ("Image", {"platforms": []}, "at least 1"),
    ("Image", {"upgradeFrom": ">>1.4"}, "not a VyOS version"),
    ("Image", {"source": {"url": "gopher://h/x.iso"}}, "not an http, https or file URL"),
    ("Image", {"signature": {}}, "exactly one"),
    ("Image", {"channel": "beta"}, "production"),
    ("RolloutPolicy", {"target": {"version": "1.4.3", "channel": "testing"}}, "exactly one"),
    ("RolloutPolicy", {"strategy": {"maxUnavailable": "150%"}}, "at most 100%"),
    ("RolloutPolicy", {"strategy": {"waves": [10, 50]}}, "last wave must be 100"),
    ("RolloutPolicy", {"healthChecks": [{"name": "h", "show": ["x"]}]}, "expect"),
    ("RolloutPolicy", {"healthChecks": [{"name": "h", "show": ["x"], "expect": "("}]}, "regular"),
    ("RolloutPolicy", {"windows": [{"schedule": "@daily", "duration": "1h"}]}, "5-field cron"),
    ("RolloutPolicy", {"windows": [{"schedule": "0 0 * * *", "duration": "0s"}]}, "longer than"),
    ("CompliancePolicy", {"maxCveSeverity": "severe"}, "critical"),
    ("TrustPolicy", {"minisign": [{"name": "k", "publicKey": "RWxyz"}]}, "56 base64"),
    ("TrustPolicy", {"channels": []}, "at least 1"),
    ("AccessPolicy", {"mode": "paranoid"}, "strict"),
    ("AccessPolicy", {"signers": [{"name": "a", "sshKey": "bogus", "roles": ["x"]}]}, "OpenSSH"),
    ("Advisory", {"ranges": [{"fixed": "1.4.3"}]}, "introduced"),
]


def _doc(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {**META, "kind": kind, "spec": spec}


@pytest.mark.parametrize("kind", sorted(VALID))
def test_valid_document_of_every_kind(kind: str) -> None:
    obj = KINDS[kind].model_validate(_doc(kind, VALID[kind]))
    assert obj.name == "x1"
    dumped = obj.model_dump(mode="json")
    assert KINDS[kind].model_validate(dumped) == obj


@pytest.mark.parametrize(("kind", "change", "message"), INVALID)
def test_invalid_document(kind: str, change: dict[str, Any], message: str) -> None:
    spec = {**VALID[kind], **change}
    with pytest.raises(ValidationError) as info:
        KINDS[kind].model_validate(_doc(kind, spec))
    assert message in str(info.value)


@pytest.mark.parametrize("kind", sorted(VALID))
def test_unknown_field_is_an_error_in_every_kind(kind: str) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        KINDS[kind].model_validate(_doc(kind, {**VALID[kind], "bogus": 1}))


def test_rollout_defaults_are_safe() -> None:
    policy = RolloutPolicy.model_validate(_doc("RolloutPolicy", VALID["RolloutPolicy"]))
    strategy = policy.spec.strategy
    assert strategy.canary == 1
    assert strategy.maxParallel == 1
    assert strategy.failureThreshold == 1
    assert strategy.maxUnavailable == "1"
    assert strategy.allowDowngrade is False
    assert policy.spec.rollback.automatic is True
    assert policy.spec.suspend is False


def test_device_fingerprint_is_normalised_and_labels_include_site() -> None:
    device = Device.model_validate(_doc("Device", VALID["Device"]))
    assert device.spec.tls.fingerprint == "ab" * 32
    labels = device.selector_labels
    assert labels["gitfirm.io/site"] == "dc1"
    assert labels["gitfirm.io/arch"] == "amd64"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90s", 90), ("10m", 600), ("4h", 14400), ("1h30m", 5400), ("250ms", 0.25), (5, 5)],
)
def test_durations(text: str | int, expected: float) -> None:
    parsed = parse_duration(text)
    assert parsed.total_seconds() == expected
    assert parse_duration(format_duration(parsed)) == parsed


@pytest.mark.parametrize("text", ["", "10", "4 hours", "m", "1d", "-5s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_format_duration() -> None:
    assert format_duration(timedelta(hours=1, seconds=5)) == "1h5s"
    assert format_duration(timedelta(0)) == "0s"


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ({}, {}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
        (
            {"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]},
            {"a": "2"},
            True,
        ),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        (
            {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]},
            {"a": "1"},
            False,
        ),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": ""}, False),
    ],
)
def test_selectors(selector: dict[str, Any], labels: dict[str, str], matches: bool) -> None:
    assert LabelSelector.model_validate(selector).matches(labels) is matches


def test_selector_operator_values_must_fit() -> None:
    with pytest.raises(ValidationError, match="takes no values"):
        LabelSelector.model_validate(
            {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}
        )


def _image_source(**spec: object) -> dict[str, object]:
    base: dict[str, object] = {
        "feed": {"index": "https://mirror.example/isos/"},
        "channel": "testing",
        "key": "release",
    }
    return {
        "apiVersion": "gitfirm.io/v1",
        "kind": "ImageSource",
        "metadata": {"name": "nightly"},
        "spec": {**base, **spec},
    }


def test_an_image_source_never_feeds_production() -> None:
    assert ImageSource.model_validate(_image_source()).spec.channel == "testing"
    with pytest.raises(ValidationError, match="never feeds production"):
        ImageSource.model_validate(_image_source(channel="production"))
    with pytest.raises(ValidationError, match="named group"):
        ImageSource.model_validate(_image_source(namePattern=r"^vyos-.*\.iso$"))
    with pytest.raises(ValidationError, match="releases"):
        ImageSource.model_validate(
            _image_source(feed={"index": "https://a.example/", "releases": "https://b.example/"})
        )


def test_a_discovery_policy_scans_bounded_networks() -> None:
    def policy(**spec: object) -> DiscoveryPolicy:
        return DiscoveryPolicy.model_validate(
            {
                "apiVersion": "gitfirm.io/v1",
                "kind": "DiscoveryPolicy",
                "metadata": {"name": "lab"},
                "spec": {"cidrs": ["10.1.2.3/24"], "site": "lab", **spec},
            }
        )

    assert policy().spec.cidrs == ["10.1.2.0/24"] and policy().spec.ports == [443]
    with pytest.raises(ValidationError, match="more than 65536"):
        policy(cidrs=["10.0.0.0/8"])
    with pytest.raises(ValidationError, match="not a CIDR"):
        policy(cidrs=["10.0.0.300/24"])
    with pytest.raises(ValidationError, match="once a minute"):
        policy(interval="10s")


def test_an_image_source_key_must_be_pinned_for_its_channel(tmp_path: Path) -> None:
    trust = {
        "apiVersion": "gitfirm.io/v1",
        "kind": "TrustPolicy",
        "metadata": {"name": "testing"},
        "spec": {
            "channels": ["testing"],
            "minisign": [
                {
                    "name": "release",
                    "publicKey": "RWTR1ty93Oyontk6caB9WqmiQC4fgeyd/ejgRxCRGd2MQej7nqebHneP",
                }
            ],
        },
    }
    (tmp_path / "trust.yaml").write_text(yaml.safe_dump(trust))
    (tmp_path / "source.yaml").write_text(yaml.safe_dump(_image_source(key="release")))
    assert load_repository(tmp_path).errors == []
    (tmp_path / "source.yaml").write_text(yaml.safe_dump(_image_source(key="nightly")))
    (error,) = load_repository(tmp_path).errors
    assert "'nightly' is not pinned by the TrustPolicy of channel testing" in str(error)
    assert "source.yaml" in str(error)
