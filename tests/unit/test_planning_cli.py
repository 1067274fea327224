"""`gitfirm plan`: formats, observation sources and --detailed-exitcode semantics."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from reconciler.cli import main
from reconciler.model.loader import load_repository
from reconciler.planning.render import MARKDOWN_LIMIT
from tests.support.planning import NOW, facts

EXAMPLE = Path(__file__).resolve().parents[2] / "example-repo"
# A Saturday 03:00 in Berlin: inside the example lts-fleet window.
AT = "2025-06-07T01:00:00+00:00"


def _fleet_facts(
    lts: str = "1.4.2", rolling: str = "2025.11.03-0019-rolling"
) -> list[dict[str, object]]:
    state = load_repository(EXAMPLE).state
    assert state is not None
    return [
        facts(name, lts if d.metadata.labels.get("train") == "lts" else rolling).model_dump(
            mode="json"
        )
        for name, d in sorted(state.devices.items())
    ]


def _observed(tmp_path: Path, **kwargs: str) -> Path:
    path = tmp_path / "observed.json"
    doc = {"observedAt": NOW.isoformat(), "devices": _fleet_facts(**kwargs)}
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_example_repo_without_observations_has_no_changes(
    fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["plan", str(EXAMPLE), "--format", fmt, "--detailed-exitcode", "--now", AT])
    out = capsys.readouterr().out
    assert code == 0
    assert "ams-core-1" in out
    if fmt == "json":
        body = json.loads(out)
        assert body["observed"] is False
        assert {d["action"] for d in body["devices"]} == {"unreachable"}
    if fmt == "markdown":
        assert len(out) < MARKDOWN_LIMIT


def test_observed_file_with_changes_exits_2_only_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    observed = str(_observed(tmp_path))
    args = ["plan", str(EXAMPLE), "--observed", observed, "--now", AT]
    assert main([*args, "--detailed-exitcode", "--format", "json"]) == 2
    body = json.loads(capsys.readouterr().out)
    core = next(d for d in body["devices"] if d["name"] == "ams-core-1")
    assert (core["action"], core["targetVersion"]) == ("upgrade", "1.4.3")
    assert main(args) == 0
    assert "ams-core-1" in capsys.readouterr().out


def test_observed_file_at_target_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    observed = str(_observed(tmp_path, lts="1.4.3", rolling="2030.01.01-0000-rolling"))
    code = main(["plan", str(EXAMPLE), "--observed", observed, "--detailed-exitcode"])
    body = capsys.readouterr().out
    assert code == 0, body


def test_status_dir_is_read_tolerantly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = tmp_path / "status" / "devices"
    status.mkdir(parents=True)
    for item in _fleet_facts():
        observed = {k: v for k, v in item.items() if k not in ("health", "rtt_ms")}
        observed["addedLater"] = {"by": "a newer writer"}
        doc = {"name": item["name"], "observed": observed, "phase": "pending", "tls": {}}
        (status / f"{item['name']}.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    (status / "never-seen.yaml").write_text("observed: null\n", encoding="utf-8")
    code = main(
        [
            "plan",
            str(EXAMPLE),
            "--status-dir",
            str(tmp_path / "status"),
            "--format",
            "json",
            "--detailed-exitcode",
            "--now",
            "2025-06-07T01:00:00",  # naive: read as UTC
        ]
    )
    assert code == 2
    body = json.loads(capsys.readouterr().out)
    assert body["observed"] is True and body["now"] == "2025-06-07T01:00:00Z"
    assert body["summary"]["actions"]["upgrade"] > 0


def test_invalid_repository_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo)
    (repo / "fleet" / "broken.yaml").write_text(
        "apiVersion: gitfirm.io/v1\nkind: Device\nmetadata: {name: x}\nspec: {}\n",
        encoding="utf-8",
    )
    assert main(["plan", str(repo), "--detailed-exitcode"]) == 1
    assert "error" in capsys.readouterr().err


def test_device_in_two_policies_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo)
    doc = {
        "apiVersion": "gitfirm.io/v1",
        "kind": "RolloutPolicy",
        "metadata": {"name": "everything"},
        "spec": {"selector": {}, "target": {"version": "1.4.3"}},
    }
    (repo / "policies" / "extra.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    # The loader already refuses it with file:line; the planner's own check (tested in
    # test_planning_planner) guards callers that build desired state themselves.
    code = main(["plan", str(repo), "--format", "markdown", "--detailed-exitcode"])
    assert code == 1
    assert "selected by several rollout policies" in capsys.readouterr().err


def test_unreadable_observation_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"devices": "nope"}', encoding="utf-8")
    assert main(["plan", str(EXAMPLE), "--observed", str(bad)]) == 1
    assert main(["plan", str(EXAMPLE), "--observed", str(tmp_path / "missing.json")]) == 1
    assert "error:" in capsys.readouterr().err


def test_live_without_credentials_touches_no_device(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in list(os.environ):
        if name.startswith("VYOS_API_KEY"):
            monkeypatch.delenv(name)
    code = main(["plan", str(EXAMPLE), "--live", "--format", "json", "--detailed-exitcode"])
    body = json.loads(capsys.readouterr().out)
    assert code == 0
    assert all(d["action"] == "unreachable" for d in body["devices"])
    assert all(d["reason"].startswith("credentials") for d in body["devices"])


def test_planted_secret_never_appears(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "planted-api-key-7f3a9c"
    monkeypatch.setenv("VYOS_API_KEY_DC_AMS", secret)
    observed = str(_observed(tmp_path))
    for fmt in ("text", "markdown", "json"):
        main(["plan", str(EXAMPLE), "--observed", observed, "--format", fmt, "--now", AT])
        captured = capsys.readouterr()
        assert secret not in captured.out + captured.err
