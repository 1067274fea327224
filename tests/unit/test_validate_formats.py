"""`gitfirm validate --format github|sarif`: annotations CI shows on the diff, and a SARIF
2.1.0 log whose shape sarif-pydantic (the SARIF 2.1.0 object model) accepts field by field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from sarif_pydantic import Sarif

from reconciler.cli import main
from tests.support.configrepo import DEVICE, IMAGE, POLICY, TRUST, write_repo

EXAMPLE = Path(__file__).resolve().parents[2] / "example-repo"
# maxParallel: 0 on line 12, column 18 of the policy; an unknown field in the device.
BAD_POLICY = POLICY.replace("maxParallel: 2", "maxParallel: 0")
BAD_DEVICE = DEVICE.replace("  site: dc1\n", "  site: dc1\n  colour: blue\n")


def _repo(root: Path) -> Path:
    return write_repo(root, {
        "fleet/r1.yaml": BAD_DEVICE, "images/i.yaml": IMAGE, "trust/t.yaml": TRUST,
        "policies/core.yaml": BAD_POLICY,
    })  # fmt: skip


def _findings(capsys: pytest.CaptureFixture[str], root: str) -> list[dict[str, Any]]:
    assert main(["validate", root, "--format", "json"]) == 1
    errors: list[dict[str, Any]] = json.loads(capsys.readouterr().out)["errors"]
    assert len(errors) >= 2
    return errors


def test_github_annotations_point_at_file_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _repo(tmp_path / "config")
    monkeypatch.chdir(tmp_path)  # the checkout root; the config lives in config/
    errors = _findings(capsys, "config")
    assert main(["validate", "config", "--format", "github"]) == 1
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == len(errors)
    for line, e in zip(lines, errors, strict=True):
        expected = (
            f"::error file=config/{e['file']},line={e['line']},col={e['column']},"
            f"title=gitfirm validate::{e['field']}: {e['message']}"
        )
        assert line == expected.replace("%", "%25")
    assert any("file=config/policies/core.yaml,line=" in line for line in lines)
    assert any("spec.strategy.maxParallel" in line for line in lines)
    assert err.startswith("invalid: ")


def test_github_annotations_escape_what_would_break_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A file name with a comma and a colon must not end the file= property early.
    write_repo(tmp_path / "cfg", {"fleet/a,b:c.yaml": "apiVersion: gitfirm.io/v1\nkind: Nope\n"})
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "cfg", "--format", "github"]) == 1
    (line,) = [x for x in capsys.readouterr().out.splitlines() if "Nope" in x]
    assert line.startswith("::error file=cfg/fleet/a%2Cb%3Ac.yaml,line=")
    assert "\n" not in line


def test_a_valid_repository_prints_no_annotation(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(EXAMPLE.parent)
    assert main(["validate", "example-repo", "--format", "github"]) == 0
    out, err = capsys.readouterr()
    assert not [x for x in out.splitlines() if x.startswith("::error")]
    assert err.startswith("valid: ")


def _no_unknown_fields(model: BaseModel, where: str = "sarif") -> None:
    """sarif-pydantic keeps unknown keys as extras: a misspelt SARIF field would hide there."""
    assert not model.model_extra, f"{where}: not SARIF 2.1.0 fields: {sorted(model.model_extra)}"
    for name in type(model).model_fields:
        value = getattr(model, name)
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            if isinstance(item, BaseModel):
                _no_unknown_fields(item, f"{where}.{name}[{i}]")


def test_sarif_is_a_valid_2_1_0_log_with_one_result_per_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _repo(tmp_path / "config")
    monkeypatch.chdir(tmp_path)
    errors = _findings(capsys, "config")
    assert main(["validate", "config", "--format", "sarif"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["version"] == "2.1.0"
    assert doc["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json"
    log = Sarif.model_validate(doc)
    (run,) = log.runs
    # $schema is the schema_uri alias; columnKind is a Run field the model leaves to extras.
    assert set(log.model_extra or {}) <= {"$schema"}
    assert set(run.model_extra or {}) <= {"columnKind"}
    _no_unknown_fields(run.tool)
    for result in run.results or []:
        _no_unknown_fields(result)
    assert run.tool.driver.name == "gitfirm"
    results = run.results or []
    assert len(results) == len(errors)
    rules = [r.id for r in run.tool.driver.rules or []]
    for result, e in zip(results, errors, strict=True):
        assert result.level == "error"
        assert result.rule_id in rules and rules[result.rule_index or 0] == result.rule_id
        (loc,) = result.locations or []
        physical = loc.physical_location
        assert physical is not None and physical.artifact_location is not None
        assert physical.artifact_location.uri == f"config/{e['file']}"
        assert physical.region is not None
        assert (physical.region.start_line, physical.region.start_column) == (
            e["line"],
            e["column"],
        )
        assert result.message.text == f"{e['field']}: {e['message']}"


def test_sarif_of_a_valid_repository_has_no_results(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(EXAMPLE.parent)
    assert main(["validate", "example-repo", "--format", "sarif"]) == 0
    log = Sarif.model_validate_json(capsys.readouterr().out)
    assert [r for r in log.runs[0].results or [] if r.level == "error"] == []
