"""``gitfirm discover`` end to end: simulated routers on loopback, a real config repository
with one router declared, printed documents that pass ``gitfirm validate``, and
``--propose`` pushing one proposal branch per new router (never to main)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml

from reconciler.cli import main
from tests.support.discovery import KEY, lan
from tests.support.gitrepo import clone, commit_files, git, make_remote, push, rev_parse
from tests.support.report import isolate_git

CIDRS = ["127.0.0.2/31", "127.0.0.4/31", "127.0.0.6/32"]


def _declared(address: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "gitfirm.io/v1",
            "kind": "Device",
            "metadata": {"name": "edge-1"},
            "spec": {
                "address": address,
                "credentials": {"apiKey": {"env": "VYOS_API_KEY"}},
                "site": "lab",
            },
        }
    )


async def test_discover_prints_valid_devices_and_proposes_the_new_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate_git(monkeypatch, tmp_path)
    monkeypatch.setenv("LAB_KEY", KEY)
    async with lan(tmp_path / "tls") as net:
        remote = make_remote(tmp_path / "config.git")
        work = clone(remote, tmp_path / "work")
        good = commit_files(work, {"fleet/edge.yaml": _declared(net.routers[0].address)}, "edge")
        push(work)
        ports = ",".join(str(p) for p in net.ports)
        args = ["discover", *CIDRS, "--ports", ports, "--api-key-env", "LAB_KEY"]
        args += ["--site", "lab", "--format", "json", "--repo", str(work), "--propose"]
        code = await asyncio.to_thread(main, args)
    out = capsys.readouterr()
    assert code == 0, out.err
    docs = json.loads(out.out)
    assert sorted(d["spec"]["address"] for d in docs) == sorted(r.address for r in net.routers)
    declared = [d for d in docs if "gitfirm.io/declared-as" in d["metadata"]["annotations"]]
    assert [d["spec"]["address"] for d in declared] == [net.routers[0].address]
    assert "found 3 router(s), 2 not declared" in out.err

    # Two proposal branches, one per new router; main is untouched.
    heads = git(remote, "for-each-ref", "--format=%(refname:short)", "refs/heads").split()
    proposals = sorted(h for h in heads if h.startswith("gitfirm/proposals/discovery/"))
    assert len(proposals) == 2 and rev_parse(remote, "main") == good
    for branch in proposals:
        git(work, "fetch", "-q", "origin", branch)
        git(work, "checkout", "-q", "FETCH_HEAD")
        assert main(["validate", str(work)]) == 0  # the proposed tree is a valid config
    git(work, "checkout", "-q", "main")

    # Printed documents are valid on their own too.
    repo = tmp_path / "printed"
    (repo / "fleet").mkdir(parents=True)
    (repo / "fleet" / "found.yaml").write_text(yaml.safe_dump_all(docs))
    assert main(["validate", str(repo)]) == 0


def test_discover_refuses_what_it_cannot_do(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["discover", "10.0.0.0/8"]) == 2
    assert "narrow the scan" in capsys.readouterr().err
    assert main(["discover", "10.0.0.0/30", "--ports", "9-1"]) == 2
    assert "1-65535" in capsys.readouterr().err
    assert main(["discover", "10.0.0.0/30", "--api-key-env", "GITFIRM_TEST_UNSET_VAR"]) == 2
    assert "is not set" in capsys.readouterr().err
    assert main(["discover", "10.0.0.0/30", "--propose"]) == 2
    assert "--propose needs --repo" in capsys.readouterr().err
