"""The loader: every bad input is reported with its file, line, column and field path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.model.loader import load_repository
from tests.support.configrepo import DEVICE, IMAGE, POLICY, TRUST, write_repo

BASE = {"fleet.yaml": DEVICE, "images.yaml": IMAGE, "trust.yaml": TRUST, "policy.yaml": POLICY}


def _errors(tmp_path: Path, changes: dict[str, str]) -> list[str]:
    write_repo(tmp_path, {**BASE, **changes})
    result = load_repository(tmp_path)
    assert not result.ok
    assert result.state is None
    return [str(e) for e in result.errors]


def test_base_repository_is_valid(tmp_path: Path) -> None:
    result = load_repository(write_repo(tmp_path, BASE))
    assert result.errors == []
    assert result.state is not None
    assert result.state.counts()["Device"] == 1
    assert result.state.rollout_policies["prod"].spec.strategy.maxParallel == 2


BAD_INPUTS = [
    pytest.param(
        {"policy.yaml": POLICY.replace("maxParallel: 2", "maxParallel: [2")},
        "policy.yaml:13:10: YAML syntax error: did not find expected ',' or ']'",
        id="syntax-error",
    ),
    pytest.param(
        {"fleet.yaml": DEVICE + "  site: dc2\n"},
        "fleet.yaml:13:3: spec.site: duplicate key 'site' (first defined at line 12)",
        id="duplicate-key",
    ),
    pytest.param(
        {"policy.yaml": POLICY.replace("maxParallel: 2", "maxParalel: 2")},
        "policy.yaml:12:5: spec.strategy.maxParalel: unknown field",
        id="unknown-field",
    ),
    pytest.param(
        {"policy.yaml": POLICY.replace("maxParallel: 2", "maxParallel: two")},
        "policy.yaml:12:5: spec.strategy.maxParallel: Input should be a valid integer",
        id="wrong-type",
    ),
    pytest.param(
        {"policy.yaml": POLICY.replace("maxParallel: 2", "maxParallel: 0")},
        "policy.yaml:12:5: spec.strategy.maxParallel: must be >= 1",
        id="below-minimum",
    ),
    pytest.param(
        {"policy.yaml": POLICY.replace("0 2 * * sat", "0 25 * * sat")},
        "policy.yaml:14:7: spec.windows[0].schedule: '0 25 * * sat' is not a 5-field cron",
        id="bad-cron",
    ),
    pytest.param(
        {"policy.yaml": POLICY.replace("Europe/Berlin", "Europe/Atlantis")},
        "policy.yaml:16:7: spec.windows[0].timeZone: 'Europe/Atlantis' is not an IANA time zone",
        id="bad-time-zone",
    ),
    pytest.param(
        {"policy.yaml": POLICY.replace("duration: 4h", "duration: 4 hours")},
        "policy.yaml:15:7: spec.windows[0].duration: '4 hours' is not a duration",
        id="bad-duration",
    ),
    pytest.param(
        {"policy.yaml": POLICY.replace('version: "1.4.3"', 'version: "1.9.9"')},
        "policy.yaml:9:3: spec.target: no approved Image for target 1.9.9",
        id="dangling-target",
    ),
    pytest.param(
        {"fleet.yaml": DEVICE.replace("apiKey:\n      env: VYOS_KEY", "apiKey: s3cr3t-key")},
        "fleet.yaml:10:5: spec.credentials.apiKey: a literal secret is not allowed",
        id="literal-secret",
    ),
    pytest.param(
        {"fleet2.yaml": DEVICE},
        "fleet2.yaml:4:3: metadata.name: duplicate Device name 'r1' (first defined at fleet.yaml:1:1)",
        id="duplicate-name",
    ),
    pytest.param(
        {"extra.yaml": "- a\n- b\n"},
        "extra.yaml:1:1: a document must be a mapping",
        id="non-mapping",
    ),
    pytest.param(
        {"fleet.yaml": DEVICE.replace("site: dc1", "site: !!python/object:os.system dc1")},
        "fleet.yaml:12:9: spec.site: tag 'tag:yaml.org,2002:python/object:os.system' is not allowed",
        id="language-tag",
    ),
    pytest.param(
        {"big.yaml": "# padding\n" * 120_000},
        "big.yaml: file is larger than 1024 KiB",
        id="oversized-file",
    ),
    pytest.param(
        {"many.yaml": "---\na: 1\n" * 10_001},
        "many.yaml:20002:1: file holds more than 10000 documents",
        id="too-many-documents",
    ),
    pytest.param(
        {"fleet.yaml": DEVICE.replace("kind: Device", "kind: Router")},
        "fleet.yaml:2:1: kind: unknown kind 'Router'",
        id="unknown-kind",
    ),
    pytest.param(
        {"fleet.yaml": DEVICE.replace("apiVersion: gitfirm.io/v1", "apiVersion: v1")},
        "fleet.yaml:1:1: apiVersion: apiVersion must be 'gitfirm.io/v1'",
        id="wrong-api-version",
    ),
    pytest.param(
        {"fleet.yaml": DEVICE.replace("  site: dc1\n", "")},
        "fleet.yaml:7:1: spec.site: required field is missing",
        id="missing-field",
    ),
    pytest.param(
        {"images.yaml": IMAGE.replace("sha256: abab", "sha256: zzab")},
        "images.yaml:12:3: spec.sha256: 'zzab",
        id="bad-sha256",
    ),
    pytest.param(
        {"images.yaml": IMAGE.replace('version: "1.4.3"', 'version: "1.4"')},
        "images.yaml:6:3: spec.version: '1.4' is not a VyOS version",
        id="bad-version",
    ),
    pytest.param(
        {"images.yaml": IMAGE.replace("key: release", "key: unknown-key")},
        "images.yaml:16:7: spec.signature.minisign.key: minisign key 'unknown-key' is not pinned",
        id="untrusted-key",
    ),
    pytest.param(
        {
            "policy.yaml": POLICY.replace(
                "      role: core\n",
                "      role: core\n    matchExpressions:\n      - key: site\n        operator: Maybe\n",
            )
        },
        "policy.yaml:11:9: spec.selector.matchExpressions[0].operator: Input should be 'In'",
        id="bad-selector-operator",
    ),
    pytest.param(
        {"policy.yaml": POLICY.replace("strategy:\n", "strategy:\n    waves: [50, 20]\n")},
        "policy.yaml:12:5: spec.strategy.waves: wave percentages must increase",
        id="waves-not-increasing",
    ),
]


@pytest.mark.parametrize(("changes", "expected"), BAD_INPUTS)
def test_bad_input_names_location_and_field(
    tmp_path: Path, changes: dict[str, str], expected: str
) -> None:
    errors = _errors(tmp_path, changes)
    assert any(e.startswith(expected) for e in errors), errors


@pytest.mark.parametrize(("changes", "expected"), BAD_INPUTS)
def test_validate_command_exits_1_with_location(
    tmp_path: Path, changes: dict[str, str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    write_repo(tmp_path, {**BASE, **changes})
    assert main(["validate", str(tmp_path)]) == 1
    assert expected in capsys.readouterr().err


def test_every_error_is_reported_not_just_the_first(tmp_path: Path) -> None:
    errors = _errors(
        tmp_path,
        {
            "policy.yaml": POLICY.replace("maxParallel: 2", "maxParallel: 0").replace(
                "Europe/Berlin", "Mars/Olympus"
            ),
            "extra.yaml": "- a\n",
        },
    )
    assert len(errors) >= 3


def test_literal_secret_is_not_echoed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = "s3cr3t-key-value-1234"
    bad = DEVICE.replace("apiKey:\n      env: VYOS_KEY", f"apiKey: {secret}")
    write_repo(tmp_path, {**BASE, "fleet.yaml": bad})
    assert main(["validate", str(tmp_path), "--format", "json"]) == 1
    out = capsys.readouterr()
    assert secret not in out.out + out.err
    assert "{env: VYOS_API_KEY}" in out.out


def test_json_output_parses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_repo(
        tmp_path, {**BASE, "policy.yaml": POLICY.replace("maxParallel: 2", "maxParallel: 0")}
    )
    assert main(["validate", str(tmp_path), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False
    assert report["errors"][0] == {
        "file": "policy.yaml",
        "line": 12,
        "column": 5,
        "field": "spec.strategy.maxParallel",
        "message": "must be >= 1",
    }


def test_warning_passes_unless_strict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lonely = POLICY.replace("name: prod", "name: edge").replace("role: core", "role: edge")
    write_repo(tmp_path, {**BASE, "edge.yaml": lonely})
    assert main(["validate", str(tmp_path)]) == 0
    assert "selector matches no device" in capsys.readouterr().err
    assert main(["validate", str(tmp_path), "--strict"]) == 1


def test_summary_line_counts_kinds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_repo(tmp_path, BASE)
    assert main(["validate", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("valid: 1 Device, 1 Image, 1 RolloutPolicy")


def test_hidden_directories_and_other_json_are_ignored(tmp_path: Path) -> None:
    write_repo(tmp_path, {**BASE, ".git/config.yaml": "- x\n", "root.json": '{"a": 1}'})
    assert load_repository(tmp_path).ok


def test_osv_advisory_is_imported(tmp_path: Path) -> None:
    osv = {
        "schema_version": "1.6.0",
        "id": "GHSA-abcd-1234",
        "summary": "x",
        "affected": [
            {
                "package": {"ecosystem": "VyOS", "name": "vyos"},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "1.4.0"}, {"fixed": "1.4.3"}]}
                ],
            },
            {"package": {"ecosystem": "PyPI", "name": "other"}, "versions": ["9.9"]},
        ],
        "database_specific": {"severity": "MODERATE"},
    }
    write_repo(tmp_path, {**BASE, "advisories/a.json": json.dumps(osv)})
    result = load_repository(tmp_path)
    assert result.state is not None
    advisory = result.state.advisories["ghsa-abcd-1234"]
    assert advisory.spec.severity == "medium"
    assert advisory.spec.ranges[0].fixed == "1.4.3"
    assert advisory.spec.versions == []
    assert any("1.4.0" in str(w) for w in result.warnings)  # no Image declares 1.4.0


def test_osv_without_severity_is_an_error(tmp_path: Path) -> None:
    osv = {"id": "OSV-1", "affected": [{"package": {"ecosystem": "VyOS", "name": "vyos"}}]}
    errors = _errors(tmp_path, {"a.json": json.dumps(osv)})
    assert any(e.startswith("a.json:1:1: database_specific.severity") for e in errors), errors
