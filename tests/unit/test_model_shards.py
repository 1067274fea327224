"""Shard selectors, and the split of a repository into shards (reconciler.model.shards)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.model.fields import LabelSelector
from reconciler.model.loader import load_repository
from reconciler.model.shards import (
    ShardError,
    check_shards,
    load_shards,
    parse_selector,
    parse_shard,
    restrict,
)
from tests.support.configrepo import IMAGE, POLICY, TRUST, write_repo


def _device(name: str, site: str, group: str | None = None, role: str = "core") -> str:
    extra = f"  redundancyGroup: {group}\n" if group else ""
    return f"""\
apiVersion: gitfirm.io/v1
kind: Device
metadata:
  name: {name}
  labels:
    role: {role}
spec:
  address: https://10.0.0.1:443
  credentials:
    apiKey:
      env: VYOS_KEY
  site: {site}
{extra}"""


def _policy(name: str, site: str | None) -> str:
    text = POLICY.replace("name: prod", f"name: {name}")
    if site is None:
        return text
    return text.replace("      role: core\n", f"      role: core\n      gitfirm.io/site: {site}\n")


def _labels(site: str, **extra: str) -> dict[str, str]:
    return {"gitfirm.io/site": site, "gitfirm.io/arch": "amd64", "gitfirm.io/name": "r", **extra}


@pytest.mark.parametrize(
    ("text", "inside", "outside"),
    [
        ("site in (fra, ams)", [_labels("fra"), _labels("ams")], [_labels("lab")]),
        ("site=fra", [_labels("fra")], [_labels("ams")]),
        ("site==fra", [_labels("fra")], [_labels("ams")]),
        ("site!=lab", [_labels("fra")], [_labels("lab")]),
        ("site notin (lab, dev)", [_labels("fra")], [_labels("dev")]),
        ("tier", [_labels("fra", tier="edge")], [_labels("fra")]),
        ("!canary", [_labels("fra")], [_labels("fra", canary="yes")]),
        (
            "site in (fra,ams), tier=edge, !canary",
            [_labels("ams", tier="edge")],
            [_labels("ams", tier="core"), _labels("ams", tier="edge", canary="1")],
        ),
        ("gitfirm.io/site=fra", [_labels("fra")], [_labels("ams")]),
        ("example.com/zone = a", [_labels("x", **{"example.com/zone": "a"})], [_labels("x")]),
    ],
)
def test_selector_text_selects_like_a_policy(
    text: str, inside: list[dict[str, str]], outside: list[dict[str, str]]
) -> None:
    selector = parse_selector(text)
    assert isinstance(selector, LabelSelector)
    assert all(selector.matches(labels) for labels in inside)
    assert not any(selector.matches(labels) for labels in outside)


def test_short_keys_are_the_implicit_labels() -> None:
    assert parse_selector("site in (fra, ams)").model_dump() == {
        "matchLabels": {},
        "matchExpressions": [
            {"key": "gitfirm.io/site", "operator": "In", "values": ["ams", "fra"]}
        ],
    }
    assert parse_selector("name=r1, arch=arm64").matchLabels == {
        "gitfirm.io/name": "r1",
        "gitfirm.io/arch": "arm64",
    }


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "every device"),
        ("  ", "every device"),
        ("site in (fra", "unbalanced"),
        ("site in fra)", "unbalanced"),
        ("site in ()", "needs values"),
        ("site in (fra,)", "needs values"),
        ("site=fra,,tier", "empty requirement"),
        ("site=fra, site=ams", "two values"),
        ("site ~ fra", "cannot read"),
        ("site=fra; rm -rf", "cannot read"),
        ("-bad=1", "cannot read"),
    ],
)
def test_unreadable_selectors_are_refused(text: str, says: str) -> None:
    with pytest.raises(ShardError, match=says):
        parse_selector(text)


@pytest.mark.parametrize("name", ["", "FRA", "fra/../x", "a" * 64, "-fra", "fra_1"])
def test_shard_names_must_be_folder_safe(name: str) -> None:
    with pytest.raises(ShardError, match="shard name"):
        parse_shard(name, "site=fra")


def _repo(tmp_path: Path, files: dict[str, str]) -> Path:
    base = {"images/i.yaml": IMAGE, "trust/t.yaml": TRUST}
    return write_repo(tmp_path / "repo", {**base, **files})


def test_a_clean_split_passes_and_restricts_each_shard(tmp_path: Path) -> None:
    root = _repo(
        tmp_path,
        {
            "fleet/fra.yaml": _device("fra1", "fra", "fra-pair")
            + "---\n"
            + _device("fra2", "fra", "fra-pair"),
            "fleet/ams.yaml": _device("ams1", "ams"),
            "policies/fra.yaml": _policy("fra", "fra"),
            "policies/ams.yaml": _policy("ams", "ams"),
        },
    )
    state = load_repository(root).state
    assert state is not None
    fra, ams = parse_shard("fra", "site=fra"), parse_shard("ams", "site in (ams)")
    assert check_shards(state, [fra, ams]) == []
    mine = restrict(state, fra)
    assert sorted(mine.devices) == ["fra1", "fra2"]
    assert sorted(mine.rollout_policies) == ["fra"]
    assert sorted(mine.images) == sorted(state.images)
    assert sorted(restrict(state, ams).devices) == ["ams1"]


def test_groups_policies_and_double_claims_across_shards_are_refused(tmp_path: Path) -> None:
    root = _repo(
        tmp_path,
        {
            "fleet/pair.yaml": _device("fra1", "fra", "edge-pair")
            + "---\n"
            + _device("ams1", "ams", "edge-pair"),
            "policies/all.yaml": _policy("everywhere", None),
        },
    )
    state = load_repository(root).state
    assert state is not None
    shards = [parse_shard("fra", "site=fra"), parse_shard("ams", "site=ams")]
    errors = [str(e) for e in check_shards(state, shards)]
    assert len(errors) == 2, errors
    assert "fleet/pair.yaml" in errors[0]
    assert "spec.redundancyGroup" in errors[0]
    assert (
        "redundancy group 'edge-pair' spans shards: ams (1 device: ams1), fra (1 device: fra1)"
        in errors[0]
    )
    assert "policies/all.yaml" in errors[1]
    assert "spec.selector" in errors[1]
    assert "RolloutPolicy 'everywhere' spans shards" in errors[1]
    # One shard alone: the far side is "no listed shard", still two owners.
    alone = [str(e) for e in check_shards(state, shards[:1])]
    assert "fra (1 device: fra1), no listed shard (1 device: ams1)" in alone[0]
    # Overlapping shards claim a device twice.
    twice = check_shards(state, [*shards, parse_shard("all", "role=core")])
    assert any("selected by shards" in str(e) and "fra1" in str(e) for e in twice)


def test_shards_file(tmp_path: Path) -> None:
    path = tmp_path / "shards.yaml"
    path.write_text("shards:\n  fra: site=fra\n  ams: 'site in (ams, lab)'\n", "utf-8")
    assert [s.name for s in load_shards(path)] == ["fra", "ams"]
    path.write_text("- site=fra\n", "utf-8")
    with pytest.raises(ShardError, match="mapping of shard name"):
        load_shards(path)
    path.write_text("fra: [site]\n", "utf-8")
    with pytest.raises(ShardError, match="must be text"):
        load_shards(path)


def test_validate_refuses_a_split_across_shards(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _repo(
        tmp_path,
        {
            "fleet/pair.yaml": _device("fra1", "fra", "edge-pair")
            + "---\n"
            + _device("ams1", "ams", "edge-pair"),
            "policies/all.yaml": _policy("everywhere", None),
        },
    )
    shards = tmp_path / "shards.yaml"
    shards.write_text("fra: site=fra\nams: site=ams\n", "utf-8")
    assert main(["validate", str(root), "--shards", str(shards)]) == 2
    err = capsys.readouterr().err
    assert "fleet/pair.yaml" in err and "spec.redundancyGroup" in err
    assert "Traceback" not in err
    assert main(["validate", str(root), "--shard", "fra=site=fra"]) == 2
    # Without shards the same repository is valid (the group only warns of two sites).
    assert main(["validate", str(root)]) == 0
    assert main(["validate", str(root), "--shard", "fra"]) == 2
    assert "NAME=SELECTOR" in capsys.readouterr().err
    assert main(["validate", str(root), "--shard", "fra=site in (fra"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize(
    ("flags", "env", "says"),
    [
        (["--shard", "site=fra"], {}, "shard and shard_name go together"),
        ([], {"GITFIRM_SHARD": "site=fra"}, "shard and shard_name go together"),
        (["--shard", "site in (fra", "--shard-name", "fra"], {}, "unbalanced"),
        ([], {"GITFIRM_SHARD": "site=fra", "GITFIRM_SHARD_NAME": "Fra"}, "shard name 'Fra'"),
    ],
)
def test_run_refuses_a_bad_shard_in_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    flags: list[str],
    env: dict[str, str],
    says: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    base = ["run", "--repo", str(tmp_path / "nowhere"), "--state-dir", str(tmp_path / "s")]
    assert main([*base, *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert says in err
