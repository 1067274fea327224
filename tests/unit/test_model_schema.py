"""The checked-in schema/ matches the models, and example-repo validates clean."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.model.loader import load_repository
from reconciler.model.schema import render_schemas

ROOT = Path(__file__).resolve().parents[2]


def test_checked_in_schemas_are_current(tmp_path: Path) -> None:
    assert main(["schema", "export", str(tmp_path)]) == 0
    fresh = {p.name: p.read_text() for p in tmp_path.iterdir()}
    checked_in = {p.name: p.read_text() for p in (ROOT / "schema").iterdir()}
    assert fresh == checked_in, "schema/ is stale: run `gitfirm schema export`"


def test_schemas_are_deterministic_and_cover_every_kind() -> None:
    first, second = render_schemas(), render_schemas()
    assert first == second
    index = json.loads(first["index.json"])
    assert set(index["kinds"]) == {
        "Device", "Image", "RolloutPolicy", "CompliancePolicy", "TrustPolicy", "AccessPolicy",
        "Advisory", "DiscoveryPolicy", "ImageSource", "NotificationPolicy",
    }  # fmt: skip
    device = json.loads(first["device.json"])
    assert device["additionalProperties"] is False


def test_example_repo_validates_clean(capsys: pytest.CaptureFixture[str]) -> None:
    result = load_repository(ROOT / "example-repo")
    assert result.errors == []
    assert result.warnings == []
    state = result.state
    assert state is not None
    assert len(state.devices) >= 12
    assert {d.spec.site for d in state.devices.values()} == {"dc-fra", "dc-ams", "edge-ber"}
    assert {d.spec.platform.arch for d in state.devices.values()} == {"amd64", "arm64"}
    assert {i.spec.channel for i in state.images.values()} == {
        "production",
        "testing",
        "development",
    }
    assert main(["validate", str(ROOT / "example-repo")]) == 0


def test_example_yaml_files_point_at_their_schema() -> None:
    for path in (ROOT / "example-repo").rglob("*.yaml"):
        first = path.read_text().splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema="), path
        target = (path.parent / first.split("=", 1)[1]).resolve()
        assert target.is_file(), f"{path}: {target} does not exist"
