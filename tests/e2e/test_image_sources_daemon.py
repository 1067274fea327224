"""ImageSource through the real daemon: a new upstream build (really minisign-signed, on a
loopback feed) ends as a proposal branch with one signed commit that passes
``gitfirm validate`` and a pull request on a fake GitHub; a build signed by a key the
channel's TrustPolicy does not pin ends as a refusal in status, never a proposal."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import yaml
from pytest_httpserver import HTTPServer

from reconciler.cli import main
from reconciler.clock import SystemClock
from reconciler.forge import ForgeConfig, make_forge
from reconciler.images import minisign
from tests.support.daemon import running_gitops, wait_for
from tests.support.feeds import Feed
from tests.support.forge import FakeForge
from tests.support.gitrepo import git, rev_parse, ssh_key
from tests.support.images import FileServer, serve_files, trust_policy

GOOD = "2025.06.01-0020-rolling"
BAD = "2025.07.01-0020-rolling"


def _source(feed_url: str, kind: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "gitfirm.io/v1",
            "kind": "ImageSource",
            "metadata": {"name": "nightly"},
            "spec": {
                "feed": {kind: feed_url},
                "channel": "development",
                "key": "nightly",
                "interval": "1h",
                "upgradeFrom": ">=2025.01.01-0000-rolling",
            },
        }
    )


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def _branches(remote: Path) -> list[str]:
    heads = git(remote, "for-each-ref", "--format=%(refname:short)", "refs/heads").split()
    return sorted(h for h in heads if h.startswith("gitfirm/proposals/"))


@pytest.mark.parametrize("kind", ["index", "releases"])
async def test_a_new_build_becomes_one_signed_proposal_and_a_bad_one_a_refusal(
    tmp_path: Path, httpserver: HTTPServer, http: httpx.AsyncClient, kind: str
) -> None:
    nightly, evil = minisign.generate_keypair(), minisign.generate_keypair()
    bot = ssh_key(tmp_path / "keys", "gitfirm")
    fake = FakeForge(httpserver, "github")
    config = ForgeConfig("github", fake.repo, url=fake.api_root, token_env="T")
    forge = make_forge(config, fake.token, http=http, clock=SystemClock(), user_agent="gitfirm/t")
    async with serve_files(FileServer()) as server:
        feed = Feed(server, tmp_path / "feed")
        good_url = feed.publish(GOOD, nightly)
        url = f"{server.url}/isos/" if kind == "index" else f"{server.url}/releases"
        trust = trust_policy({"nightly": nightly.public}, channels=("development",), name="dev")
        extra = {
            "trust/dev.yaml": yaml.safe_dump(trust.model_dump(mode="json")),
            "sources/nightly.yaml": _source(url, kind),
        }
        async with running_gitops(
            tmp_path / "ops",
            extra_files=extra,
            pull_requests=forge,
            settings={"status_signing_key": bot.private},
        ) as ops:
            main_sha = rev_parse(ops.remote, "main")
            await wait_for(lambda: len(ops.daemon.proposals) >= 1, 60, "a proposal")
            (branch,) = _branches(ops.remote)
            assert branch.startswith("gitfirm/proposals/image/")
            assert rev_parse(ops.remote, "main") == main_sha
            assert git(ops.remote, "rev-list", "--count", f"main..{branch}").strip() == "1"
            signers = tmp_path / "allowed_signers"
            signers.write_text(f"gitfirm@localhost {bot.public}\n")
            verdict = git(
                ops.remote, "-c", f"gpg.ssh.allowedSignersFile={signers}",
                "log", "-1", "--format=%G?", branch,
            ).strip()  # fmt: skip
            assert verdict == "G"
            (path,) = git(ops.remote, "diff", "--name-only", "main", branch).split()
            image = yaml.safe_load(git(ops.remote, "show", f"{branch}:{path}"))
            spec = image["spec"]
            assert spec["version"] == GOOD and spec["channel"] == "development"
            assert spec["source"]["url"] == good_url
            data = server.files[good_url.removeprefix(server.url)]
            assert spec["sha256"] == hashlib.sha256(data).hexdigest()
            assert spec["size"] == len(data)
            assert spec["signature"]["minisign"]["key"] == "nightly"
            assert spec["upgradeFrom"] == ">=2025.01.01-0000-rolling"
            assert [p["head"]["ref"] for p in fake.pulls] == [branch]

            checkout = tmp_path / "proposed"
            git(tmp_path, "clone", "-q", "--branch", branch, str(ops.remote), str(checkout))
            assert main(["validate", str(checkout)]) == 0

            # A newer build signed by a key no TrustPolicy pins: refused, never proposed.
            feed.publish(BAD, evil)
            source = ops.daemon.state.desired.image_sources["nightly"]  # type: ignore[union-attr]
            await ops.daemon._propose_all("again", ops.daemon._new_image(source))
            assert _branches(ops.remote) == [branch] and len(fake.pulls) == 1
            (refused,) = ops.daemon.book.build_refusals
            assert refused.revision == f"nightly/vyos-{BAD}-generic-amd64.iso"
            assert "not pinned" in refused.reason

            def in_status() -> bool:
                try:
                    doc = yaml.safe_load(git(ops.remote, "show", "status:source.yaml"))
                except RuntimeError:
                    return False
                return any(BAD in r["build"] for r in (doc or {}).get("refusedBuilds") or [])

            await wait_for(in_status, 30, "the refused build on the status branch")
