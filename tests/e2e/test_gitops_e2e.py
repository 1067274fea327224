"""End to end: bare remote, daemon, simulator. A merged change rolls out and is audited."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import httpx
import yaml

from tests.support.daemon import policy_yaml, running_gitops, wait_for
from tests.support.gitrepo import git

GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
OPERATOR_TOKEN = "operator-token-0c5e7a"


def _tree_text(remote: Path, ref: str) -> str:
    files = git(remote, "ls-tree", "-r", "--name-only", ref).split()
    return "\n".join(git(remote, "show", f"{ref}:{f}") for f in files)


async def test_merged_change_rolls_out_and_status_is_the_audit_trail(tmp_path: Path) -> None:
    env = {"GITFIRM_WEBHOOK_SECRET": GITHUB_SECRET, "GITFIRM_OPERATOR_TOKEN": OPERATOR_TOKEN}
    async with running_gitops(tmp_path, environ=env) as ops:
        assert set(ops.versions().values()) == {"1.4.3"}
        await wait_for(lambda: "status" in git(ops.remote, "branch"), 30, "first status commit")

        sha = ops.merge({"policies/fleet.yaml": policy_yaml("1.4.4")}, "Roll the fleet to 1.4.4")
        await wait_for(lambda: set(ops.versions().values()) == {"1.4.4"}, 90, "rollout")
        await wait_for(
            lambda: all(f"Device: {n}" in ops.status_log("--format=%B") for n in ops.fleet.names),
            30,
            "status commits for every device",
        )
        # No device ever ran two image operations at once.
        assert all(ops.fleet.device(n).image_ops_max <= 1 for n in ops.fleet.names)

        files = git(ops.remote, "ls-tree", "-r", "--name-only", "status").split()
        for name in ops.fleet.names:
            assert f"devices/{name}.yaml" in files
        assert {"README.md", "rollouts/fleet.yaml", "compliance.yaml"} <= set(files)
        first = ops.fleet.names[0]

        def observed_version() -> object:
            doc = yaml.safe_load(git(ops.remote, "show", f"status:devices/{first}.yaml"))
            return doc["observed"]["version"]

        await wait_for(lambda: observed_version() == "1.4.4", 30, "observed version in status")
        readme = git(ops.remote, "show", "status:README.md")
        assert sha in readme
        body = ops.status_log("--format=%B")
        assert f"Desired-Revision: {sha}" in body
        assert "Rollout: fleet" in body
        assert "Phase: " in body
        name = ops.fleet.names[-1]
        history = ops.status_log("--grep", f"Device: {name}", "--format=%H")
        assert history.strip(), "git log status --grep shows the device's history"
        assert not git(ops.remote, "rev-list", "--merges", "status").strip()

        await wait_for(
            lambda: "refs/notes/gitfirm" in git(ops.remote, "for-each-ref"), 30, "rollout note"
        )
        note = git(ops.remote, "notes", "--ref", "gitfirm", "show", sha)
        assert "fleet" in note

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ops.port}") as http:
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.get("/readyz")).status_code == 200
            operator = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
            metrics = (await http.get("/metrics", headers=operator)).text
            assert "gitfirm_device_transitions_total" in metrics
            hook = {"X-Hub-Signature-256": GITHUB_SIGNATURE, "Content-Type": "text/plain"}
            ok = await http.post("/webhooks/github", content=b"Hello, World!", headers=hook)
            assert ok.status_code == 202
            hook["X-Hub-Signature-256"] = "sha256=" + "0" * 64
            bad = await http.post("/webhooks/github", content=b"Hello, World!", headers=hook)
            assert bad.status_code == 401

        # Idle passes make no commit.
        await ops.daemon.writer.flush()
        before = ops.status_log("--format=%H").split()
        for _ in range(3):
            await ops.daemon.reconcile(None)
            await ops.daemon.writer.flush()
        assert ops.status_log("--format=%H").split() == before

        # Secrets are nowhere: status branch, notes, logs.
        key = ops.fleet.api_key
        texts = [
            _tree_text(ops.remote, "status"),
            ops.status_log("--format=%B"),
            git(ops.remote, "log", "refs/notes/gitfirm", "-p"),
            ops.logs.getvalue(),
        ]
        for text in texts:
            assert key not in text
            assert GITHUB_SECRET not in text
            assert OPERATOR_TOKEN not in text
        assert '"event": "transition"' in ops.logs.getvalue()


async def test_invalid_revision_keeps_last_good_in_force(tmp_path: Path) -> None:
    async with running_gitops(tmp_path) as ops:
        good = ops.daemon.state.verified
        bad = ops.merge({"policies/fleet.yaml": "kind: [\n"}, "broken YAML")
        await wait_for(
            lambda: bool(ops.daemon.book.refusals) and ops.daemon.book.refusals[-1].revision == bad,
            30,
            "refusal",
        )
        assert ops.daemon.state.verified == good
        await wait_for(
            lambda: bad in git(ops.remote, "show", "status:source.yaml"), 30, "refusal in status"
        )
        assert "invalid desired state" in git(ops.remote, "show", "status:source.yaml")
        assert set(ops.versions().values()) == {"1.4.3"}


def test_github_vector_is_what_we_think() -> None:
    digest = hmac.new(GITHUB_SECRET.encode(), b"Hello, World!", hashlib.sha256).hexdigest()
    assert f"sha256={digest}" == GITHUB_SIGNATURE


async def test_watching_a_local_repository_wakes_the_daemon(tmp_path: Path) -> None:
    # Polling once an hour: only the watch on the local remote can pick the push up fast.
    async with running_gitops(tmp_path, poll_interval=3600, watch_local=True) as ops:
        fetches = ops.daemon.poller.fetches
        sha = ops.merge({"policies/fleet.yaml": policy_yaml("1.4.4")}, "Roll to 1.4.4")
        await wait_for(lambda: ops.daemon.state.verified == sha, 30, "watch wake-up")
        assert ops.daemon.poller.fetches > fetches
