"""``gitfirm image discover`` by hand: a config checkout with an ImageSource on a loopback
feed of really signed builds; ``--propose`` pushes one proposal branch and opens its pull
request on a fake GitHub; a badly signed newer build is refused (exit 1), never proposed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml
from pytest_httpserver import HTTPServer

from reconciler.cli import main
from reconciler.images import minisign
from tests.support.feeds import Feed
from tests.support.forge import FakeForge
from tests.support.gitrepo import clone, commit_files, git, make_remote, push, rev_parse
from tests.support.images import FileServer, serve_files, trust_policy
from tests.support.report import isolate_git


def _source(url: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "gitfirm.io/v1",
            "kind": "ImageSource",
            "metadata": {"name": "nightly"},
            "spec": {"feed": {"index": url}, "channel": "testing", "key": "nightly"},
        }
    )


async def test_image_discover_proposes_a_verified_build_and_refuses_a_bad_one(
    tmp_path: Path,
    httpserver: HTTPServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    isolate_git(monkeypatch, tmp_path)
    fake = FakeForge(httpserver, "github")
    monkeypatch.setenv("FORGE_T", fake.token)
    nightly, evil = minisign.generate_keypair(), minisign.generate_keypair()
    async with serve_files(FileServer()) as server:
        feed = Feed(server, tmp_path / "feed")
        feed.publish("1.4.5", nightly)
        trust = trust_policy({"nightly": nightly.public}, channels=("testing",), name="t")
        remote = make_remote(tmp_path / "config.git")
        work = clone(remote, tmp_path / "work")
        files = {
            "trust/testing.yaml": yaml.safe_dump(trust.model_dump(mode="json")),
            "sources/nightly.yaml": _source(f"{server.url}/isos/"),
        }
        good = commit_files(work, files, "image source")
        push(work)
        args = ["image", "discover", "--repo", str(work), "--cache-dir", str(tmp_path / "c")]
        args += ["--propose", "--forge", "github", "--forge-repo", fake.repo]
        args += ["--forge-url", fake.api_root, "--forge-token-env", "FORGE_T"]
        code = await asyncio.to_thread(main, args)
        out = capsys.readouterr()
        assert code == 0, out.err
        image = yaml.safe_load(out.out.split("---")[0])
        assert image["spec"]["version"] == "1.4.5" and image["spec"]["channel"] == "testing"
        heads = git(remote, "for-each-ref", "--format=%(refname:short)", "refs/heads").split()
        (branch,) = [h for h in heads if h.startswith("gitfirm/proposals/image/")]
        assert rev_parse(remote, "main") == good
        assert [p["head"]["ref"] for p in fake.pulls] == [branch]
        assert fake.token not in out.err + out.out

        # Again: the same build is the same proposal, nothing new.
        assert await asyncio.to_thread(main, args) == 0
        assert len(fake.pulls) == 1

        feed.publish("1.4.6", evil)
        code = await asyncio.to_thread(main, args)
        err = capsys.readouterr().err
        assert code == 1 and "refused vyos-1.4.6-generic-amd64.iso" in err
        assert "key-not-trusted" in err or "not pinned" in err
        heads = git(remote, "for-each-ref", "--format=%(refname:short)", "refs/heads").split()
        assert [h for h in heads if h.startswith("gitfirm/proposals/")] == [branch]
        assert len(fake.pulls) == 1

        # Signed by the pinned key, but the bytes changed after signing: refused too.
        url = feed.publish("1.4.7", nightly)
        path = url.removeprefix(server.url)
        server.files[path] = server.files[path][:-1] + bytes([server.files[path][-1] ^ 1])
        code = await asyncio.to_thread(main, args)
        err = capsys.readouterr().err
        assert code == 1 and "refused vyos-1.4.7-generic-amd64.iso" in err
        assert "does not match the file" in err
        assert len(fake.pulls) == 1
