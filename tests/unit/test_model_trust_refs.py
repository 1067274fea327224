"""Model checks for trust and authority: one TrustPolicy per channel, unique image versions,
unique signers, kind rules, and bounded reading of unverified YAML."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from reconciler.errors import ConfigError
from reconciler.model.kinds import AccessPolicy, KindRule
from reconciler.model.loader import load_repository
from reconciler.model.yamlsource import MAX_DEPTH, read_documents
from reconciler.source.authority import requirements
from tests.support.configrepo import DEVICE, IMAGE, POLICY, TRUST, write_repo

BASE = {"fleet.yaml": DEVICE, "images.yaml": IMAGE, "trust.yaml": TRUST, "policy.yaml": POLICY}


def _errors(tmp_path: Path, extra: dict[str, str]) -> list[str]:
    result = load_repository(write_repo(tmp_path, {**BASE, **extra}))
    return [str(e) for e in result.errors]


def test_two_trust_policies_for_one_channel_is_an_error(tmp_path: Path) -> None:
    second = TRUST.replace("name: vyos", "name: other").replace(
        "[production]", "[testing, production]"
    )
    errors = _errors(tmp_path, {"zz/trust.yaml": second})
    assert errors == [
        "zz/trust.yaml:6:23: spec.channels[1]: channel production is already covered by "
        "TrustPolicy 'vyos' (trust.yaml:6:3); one TrustPolicy governs a channel"
    ]


def test_two_images_with_one_version_channel_and_platform_is_an_error(tmp_path: Path) -> None:
    name = yaml.safe_load(IMAGE)["metadata"]["name"]
    twin = IMAGE.replace(f"name: {name}", "name: twin")
    errors = _errors(tmp_path, {"zz/twin.yaml": twin})
    assert len(errors) == 1
    assert errors[0].startswith("zz/twin.yaml:")
    assert f"Image '{name}' (images.yaml:1:1) already declares version" in errors[0]


def _policy(**spec: object) -> dict[str, object]:
    return {
        "apiVersion": "gitfirm.io/v1",
        "kind": "AccessPolicy",
        "metadata": {"name": "a"},
        "spec": spec,
    }


def _signer(name: str, key: str, roles: list[str]) -> dict[str, object]:
    return {"name": name, "sshKey": f"ssh-ed25519 {key} {name}", "roles": roles}


def test_duplicate_signer_names_and_keys_are_errors() -> None:
    with pytest.raises(ValidationError, match="duplicate signer name 'ops'"):
        AccessPolicy.model_validate(
            _policy(signers=[_signer("ops", "AAAA1", ["admin"]), _signer("ops", "AAAA2", ["x"])])
        )
    with pytest.raises(ValidationError, match="repeats another signer's key"):
        AccessPolicy.model_validate(
            _policy(signers=[_signer("a", "AAAA1", ["admin"]), _signer("b", "AAAA1", ["x"])])
        )


def test_kind_rule_role_held_by_nobody_is_a_warning(tmp_path: Path) -> None:
    policy = _policy(
        signers=[_signer("a", "AAAA1", ["admin"])],
        kinds=[{"kind": "Device", "roles": ["netops"]}],
    )
    result = load_repository(write_repo(tmp_path, {**BASE, "access.yaml": yaml.safe_dump(policy)}))
    assert [str(w) for w in result.warnings] == [
        "access.yaml:8:5: spec.kinds[0].roles: role 'netops' is held by no signer"
    ]


def test_kind_rule_channels_only_for_channel_kinds() -> None:
    with pytest.raises(ValidationError, match="channels apply only to Image and TrustPolicy"):
        KindRule.model_validate({"kind": "Device", "channels": ["testing"], "roles": ["x"]})


def test_requirements_defaults_rules_and_unknown_channels() -> None:
    spec = AccessPolicy.model_validate(
        _policy(kinds=[{"kind": "Image", "channels": ["testing"], "roles": ["release"]}])
    ).spec

    def needs(kind: str, spec_data: dict[str, object]) -> list[tuple[str, ...]]:
        return [roles for _, roles in requirements(spec, kind, {"spec": spec_data})]

    assert needs("Image", {"channel": "testing"}) == [("release",)]
    assert needs("Image", {"channel": "production"}) == [("admin",)]
    assert needs("Image", {"channel": "development"}) == []
    # Not a known channel: every channel's rules, so never less than a valid document.
    assert needs("Image", {"channel": ["odd"]}) == [("release",), ("admin",)]
    assert needs("TrustPolicy", {"channels": ["development"]}) == [("admin",)]
    assert needs("AccessPolicy", {}) == [("admin",)]
    assert needs("Device", {}) == []
    assert needs("Device", {"insecurePlaintext": True}) == [("admin",)]


def test_deep_nesting_and_alias_bombs_are_config_errors() -> None:
    deep = "a:\n" + "".join(" " * i + "b:\n" for i in range(1, MAX_DEPTH + 2))
    with pytest.raises(ConfigError, match=f"exceeds {MAX_DEPTH} levels of nesting"):
        read_documents(deep, "deep.yaml")
    with pytest.raises(ConfigError, match="maximum nesting depth"):
        read_documents("[" * 5000 + "]" * 5000, "deep.json")
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for level in "bcdefg":
        prev = chr(ord(level) - 1)
        bomb += f"{level}: &{level} [{', '.join([f'*{prev}'] * 10)}]\n"
    with pytest.raises(ConfigError, match="aliases count each time"):
        read_documents(bomb, "bomb.yaml")


def test_a_number_too_long_to_convert_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"x.yaml:1:4: a: int value cannot be read"):
        read_documents("a: " + "1" * 5000, "x.yaml")


def test_non_utf8_document_is_a_config_error(tmp_path: Path) -> None:
    write_repo(tmp_path, BASE)
    (tmp_path / "bad.yaml").write_bytes(b"kind: \xff\xfe\n")
    result = load_repository(tmp_path)
    assert [str(e) for e in result.errors] == ["bad.yaml: file is not UTF-8 text"]
