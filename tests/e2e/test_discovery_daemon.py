"""Discovery through the real daemon: a DiscoveryPolicy in the config repository makes the
daemon scan simulated routers over HTTPS on loopback addresses; each new router becomes a
proposal branch on the config remote and a pull request on a (fake, pytest-httpserver)
GitHub, opened once, never a push to main."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
import yaml
from pytest_httpserver import HTTPServer

from reconciler.proposals import ProposalOutcome
from tests.support.daemon import running_gitops, wait_for
from tests.support.discovery import KEY, lan
from tests.support.forge import FakeForge
from tests.support.gitrepo import git, push, rev_parse


def _policy(ports: list[int]) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "gitfirm.io/v1",
            "kind": "DiscoveryPolicy",
            "metadata": {"name": "lab"},
            "spec": {
                "cidrs": ["127.0.0.2/31", "127.0.0.4/31"],
                "ports": ports,
                "site": "lab",
                "interval": "1h",
                "credentials": {"apiKey": {"env": "VYOS_API_KEY_LAB"}},
            },
        }
    )


def _proposal_branches(remote: Path) -> list[str]:
    heads = git(remote, "for-each-ref", "--format=%(refname:short)", "refs/heads").split()
    return sorted(h for h in heads if h.startswith("gitfirm/proposals/"))


@pytest.mark.parametrize("kind", ["github", "gitea"])
async def test_the_daemon_proposes_each_new_router_once(
    tmp_path: Path, httpserver: HTTPServer, kind: Literal["github", "gitea"]
) -> None:
    fake = FakeForge(httpserver, kind)
    # The daemon's own forge wiring (gitfirm run --forge ...), as an operator sets it.
    forge = {
        "forge": kind,
        "forge_url": fake.api_root,
        "forge_repo": fake.repo,
        "forge_token_env": "GITFIRM_TEST_FORGE_TOKEN",
    }
    async with lan(tmp_path / "tls", releases=("1.4", "info")) as net:
        extra = {"discovery/lab.yaml": _policy(net.ports)}
        async with running_gitops(
            tmp_path / "ops",
            extra_files=extra,
            environ={"VYOS_API_KEY_LAB": KEY, "GITFIRM_TEST_FORGE_TOKEN": fake.token},
            settings=forge,
        ) as ops:
            main = rev_parse(ops.remote, "main")
            await wait_for(lambda: len(ops.daemon.proposals) >= 2, 60, "two proposals")
            branches = _proposal_branches(ops.remote)
            assert len(branches) == 2
            assert all(b.startswith("gitfirm/proposals/discovery/") for b in branches)
            assert rev_parse(ops.remote, "main") == main  # never a push to the desired branch
            assert sorted(p["head"]["ref"] for p in fake.pulls) == branches
            assert {p["base"]["ref"] for p in fake.pulls} == {"main"}
            for router in net.routers:
                messages = {b: git(ops.remote, "log", "-1", "--format=%B", b) for b in branches}
                (branch,) = [b for b, text in messages.items() if router.address in text]
                files = git(ops.remote, "diff", "--name-only", "main", branch).split()
                (path,) = files
                doc = yaml.safe_load(git(ops.remote, "show", f"{branch}:{path}"))
                assert doc["spec"]["tls"]["fingerprint"] == router.fingerprint
                assert doc["spec"]["credentials"]["apiKey"] == {"env": "VYOS_API_KEY_LAB"}
                version = doc["metadata"]["annotations"]["gitfirm.io/discovered-version"]
                assert version == router.device.release

            # The next scan finds the same routers: nothing new is opened.
            policy = ops.daemon.state.desired.discovery_policies["lab"]  # type: ignore[union-attr]
            before = len(ops.daemon.proposals)
            await ops.daemon._propose_all("again", ops.daemon._discover(policy))
            again = ops.daemon.proposals[before:]
            assert [r.outcome for r in again] == [ProposalOutcome.KNOWN] * 2
            assert len(fake.pulls) == 2 and _proposal_branches(ops.remote) == branches
            assert KEY not in ops.logs.getvalue() and fake.token not in ops.logs.getvalue()

            # A person merges one proposal: the daemon declares the router and observes it
            # over HTTPS with the pinned certificate; the next scan marks it declared.
            first = net.routers[0]
            (chosen,) = [
                b
                for b in branches
                if first.address in git(ops.remote, "log", "-1", "--format=%B", b)
            ]
            git(ops.work, "fetch", "-q", "origin", chosen)
            git(ops.work, "merge", "-q", "--ff-only", "FETCH_HEAD")
            push(ops.work)
            merged = rev_parse(ops.remote, "main")
            await wait_for(lambda: ops.daemon.state.verified == merged, 30, "the merge applied")
            desired = ops.daemon.state.desired
            assert desired is not None
            (name,) = [
                n
                for n, d in desired.devices.items()
                if str(d.spec.address).rstrip("/") == first.address
            ]
            await ops.daemon.reconcile(None)  # an observation pass
            facts = ops.daemon.state.facts[name]
            assert facts.reachable, facts.error
            assert facts.version == first.device.release
            found = await ops.daemon._discover(policy)
            assert all(first.address not in p.body for p in found)
            assert len(found) == 1
