"""Commit statuses through the real daemon: real git, the simulator and the fake forge.

A merged change rolls a small fleet out; the forge must see ``gitfirm/fleet`` on the merged
commit go pending (naming the wave and the counts) and end in success, with the dashboard's
rollout card as its target URL, and the token in no log. A canary that fails its health gate halts
the rollout: the status must end in failure. The forge's requests are counted in
``gitfirm_forge_requests_total{forge,result}``.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import httpx
import pytest
import yaml
from pytest_httpserver import HTTPServer

from reconciler.cli import main
from reconciler.planning.progress import Phase
from tests.e2e.test_daemon_process import gitfirm_run
from tests.support.daemon import (
    ALWAYS_OPEN,
    config_files,
    free_port,
    make_daemon,
    policy_yaml,
    running_gitops,
    wait_for,
)
from tests.support.forge import FORGES, FakeForge
from tests.support.gitrepo import commit_files, git, git_env, push, seeded_remote
from tests.support.metrics import families, sample
from tests.support.rollout import OLD, TARGET, make_device
from tests.support.simulator import KEY_ENV, running_simulator

OPERATOR = "operator-token-forge-statuses"
TOKEN_ENV = "FORGE_TOKEN_TEST"


def _settings(fake: FakeForge) -> dict[str, object]:
    return {
        "forge": fake.kind,
        "forge_url": fake.api_root,
        "forge_repo": fake.repo,
        "forge_token_env": TOKEN_ENV,
        "forge_status_interval": 0.5,
    }


def _states(fake: FakeForge, sha: str) -> list[tuple[str, str]]:
    """(state, description) of every status the daemon posted for gitfirm/fleet on ``sha``."""
    key = "name" if fake.kind == "gitlab" else "context"
    return [
        (r.body["state"], r.body["description"])
        for r in fake.calls("POST", f"/statuses/{sha}$")
        if r.body.get(key) == "gitfirm/fleet"
    ]


@pytest.mark.parametrize("kind", FORGES)
async def test_a_rollout_reports_pending_then_success_on_the_merged_commit(
    tmp_path: Path, httpserver: HTTPServer, kind: str
) -> None:
    fake = FakeForge(httpserver, kind)  # type: ignore[arg-type]
    env = {TOKEN_ENV: fake.token, "GITFIRM_OPERATOR_TOKEN": OPERATOR}
    async with running_gitops(tmp_path, devices=3, environ=env, settings=_settings(fake)) as ops:
        running = {"github": "pending", "gitlab": "running", "gitea": "pending"}[kind]
        done = "success"
        # The first revision holds the fleet where it is: nothing to do is a success.
        initial = git(ops.work, "rev-parse", "HEAD").strip()
        await wait_for(lambda: bool(_states(fake, initial)), 30, "the first revision's status")
        assert _states(fake, initial) == [(done, "fleet to 1.4.3: 3 done")]
        sha = ops.merge({"policies/fleet.yaml": policy_yaml("1.4.4")}, "Roll the fleet to 1.4.4")
        await wait_for(lambda: set(ops.versions().values()) == {"1.4.4"}, 90, "rollout")
        await wait_for(
            lambda: (
                (fake.latest_status(sha, "gitfirm/fleet") or {}).get(
                    "status" if kind == "gitlab" else "state"
                )
                == done
            ),
            30,
            "the success status",
        )
        posted = _states(fake, sha)
        states = [s for s, _ in posted]
        assert states[0] == running and states[-1] == done, posted
        assert done not in states[:-1], "success only once the rollout completed"
        # The description names the wave and the counts while the rollout runs.
        first = posted[0][1]
        assert first.startswith("fleet to 1.4.4: ") and "pending" in first, first
        assert any("wave" in d for s, d in posted if s == running), posted
        assert posted[-1][1] == "fleet to 1.4.4: 3 done in 2 waves", posted
        latest = fake.latest_status(sha, "gitfirm/fleet")
        assert latest is not None
        assert latest["target_url"] == f"http://127.0.0.1:{ops.port}/ui/rollouts#rollout-fleet"

        # Idle passes post nothing new: a status is sent only when it changes.
        before = len(fake.calls("POST", "/statuses/"))
        for _ in range(3):
            await ops.daemon.reconcile(None)
        await asyncio.sleep(1.5)  # three retry intervals of the status loop
        assert len(fake.calls("POST", "/statuses/")) == before

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ops.port}") as http:
            # The target URL leads to the rollout's card on the dashboard.
            assert (await http.post("/ui/login", data={"token": OPERATOR})).status_code == 303
            page = await http.get(latest["target_url"], headers={"Accept": "text/html"})
            assert page.status_code == 200 and 'id="rollout-fleet"' in page.text
            text = (
                await http.get("/metrics", headers={"Authorization": f"Bearer {OPERATOR}"})
            ).text
        fams = families(text)
        ok = sample(fams, "gitfirm_forge_requests_total", forge=kind, result="success")
        assert ok is not None and ok >= len(posted), text
        for other in FORGES:
            assert sample(fams, "gitfirm_forge_requests_total", forge=other, result="failure") == 0
        assert fake.token not in ops.logs.getvalue()
    for request in fake.requests:  # every request carried the token the forge expects
        assert fake.token in " ".join(request.headers.values())


@pytest.mark.parametrize("kind", FORGES)
async def test_a_rollout_superseded_while_pending_says_so_on_its_commit(
    tmp_path: Path, httpserver: HTTPServer, kind: str
) -> None:
    fake = FakeForge(httpserver, kind)  # type: ignore[arg-type]
    key = "status" if kind == "gitlab" else "state"
    async with running_gitops(
        tmp_path, devices=2, environ={TOKEN_ENV: fake.token}, settings=_settings(fake)
    ) as ops:
        # A window that opens only on January 1st: the rollout waits, pending.
        waiting = ops.merge(
            {"policies/fleet.yaml": policy_yaml("1.4.4", window=("0 0 1 1 *", "1h"))}, "wait"
        )
        await wait_for(lambda: bool(_states(fake, waiting)), 30, "the pending status")
        assert _states(fake, waiting)[-1][0] == ("running" if kind == "gitlab" else "pending")
        newer = ops.merge({"policies/fleet.yaml": policy_yaml("1.4.3")}, "back to 1.4.3")
        await wait_for(
            lambda: (fake.latest_status(newer, "gitfirm/fleet") or {}).get(key) == "success",
            30,
            "the newer revision's status",
        )
        await wait_for(lambda: len(_states(fake, waiting)) >= 2, 30, "the superseded status")
        state, description = _states(fake, waiting)[-1]
        assert state == ("canceled" if kind == "gitlab" else "error")
        assert description == f"fleet: superseded by {newer[:12]}, which is rolled out instead"
        assert set(ops.versions().values()) == {"1.4.3"}  # nobody was touched


async def test_a_halted_rollout_ends_in_failure_and_a_refused_post_is_retried(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    fake = FakeForge(httpserver, "github")
    devices = [make_device(f"r{i}") for i in range(3)]
    for d in devices:
        d.faults.degrade_after_upgrade = True  # whichever device is the canary loses BGP
    async with running_simulator(devices=devices, boot_seconds=1.0) as fleet:
        files, _ = config_files(tmp_path / "upstream", fleet, [OLD, TARGET])
        files["policies/fleet.yaml"] = policy_yaml(OLD, window=ALWAYS_OPEN)
        remote, work = seeded_remote(tmp_path / "git", files)
        # The forge is down for the first status posts: the loop retries on its interval.
        for _ in range(6):
            fake.fail_next(503, {"message": "Service Unavailable"})
        logs = io.StringIO()
        daemon = make_daemon(
            remote,
            tmp_path / "state",
            free_port(),
            {KEY_ENV: fleet.api_key, TOKEN_ENV: fake.token},
            logs,
            poll_interval=0.2,
            status_coalesce=0,
            **_settings(fake),
        )
        stop = asyncio.Event()
        task = asyncio.create_task(daemon.run(stop))
        try:
            await wait_for(lambda: daemon.state.desired is not None or task.done(), 30, "start")
            doc = yaml.safe_load(policy_yaml(TARGET, window=ALWAYS_OPEN, maxParallel=1))
            doc["spec"]["healthChecks"] = [
                {"name": "bgp", "show": ["ip", "bgp", "summary"], "expect": r"\s\d+\s+\d+\s+N/A$",
                 "initialDelay": "1s", "interval": "1s", "timeout": "10s", "failureThreshold": 1},
            ]  # fmt: skip
            sha = commit_files(work, {"policies/fleet.yaml": yaml.safe_dump(doc)}, "to target")
            push(work)
            await wait_for(
                lambda: (
                    (fake.latest_status(sha, "gitfirm/fleet") or {}).get("state") == "failure"
                    or task.done()
                ),
                120,
                "the failure status",
            )
            assert not task.done()
            latest = fake.latest_status(sha, "gitfirm/fleet")
            assert latest is not None and latest["description"].startswith("fleet to ")
            assert "halted" in latest["description"] and "1 failed" in latest["description"]
            roll = daemon.journal.rollout("fleet")
            assert roll is not None and roll.halted
            assert Phase.FAILED in {
                r.phase for n in fleet.names if (r := daemon.journal.device("fleet", n))
            }
            # Whatever the outage hid, the last word on the commit is the failure.
            assert _states(fake, sha)[-1][0] == "failure"
            assert 503 in fake.answers  # the outage happened, and the statuses still arrived
            assert "forge-status-failed" in logs.getvalue()
            assert fake.token not in logs.getvalue()
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)


def test_run_refuses_a_forge_it_cannot_use_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    remote, _ = seeded_remote(tmp_path / "git", {"README.md": "x\n"})
    base = ["run", "--repo", str(remote), "--state-dir", str(tmp_path / "state")]
    monkeypatch.delenv("FORGE_TOKEN_UNSET", raising=False)
    cases = [
        (["--forge", "github", "--forge-repo", "acme/fleet", "--forge-token-env",
          "FORGE_TOKEN_UNSET"], "forge token variable FORGE_TOKEN_UNSET is not set"),
        (["--forge", "gitea", "--forge-repo", "acme/fleet", "--forge-token-env", "X"],
         "needs --forge-url"),
        (["--forge", "github", "--forge-token-env", "X"], "owner/name"),
    ]  # fmt: skip
    for flags, expected in cases:
        assert main([*base, *flags]) == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith("error: ") and expected in line, line


async def test_gitfirm_run_posts_statuses_with_the_token_from_a_file(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    # The real `gitfirm run` process, configured by its flags alone.
    fake = FakeForge(httpserver, "gitea")
    token_file = tmp_path / "forge-token"
    token_file.write_text(fake.token + "\n")
    async with running_simulator(2, releases=["1.4"]) as fleet:
        files, _ = config_files(tmp_path / "upstream", fleet, ["1.4.3", "1.4.4"])
        files["policies/fleet.yaml"] = policy_yaml("1.4.3", window=ALWAYS_OPEN)
        remote, work = seeded_remote(tmp_path / "git", files)
        initial = git(work, "rev-parse", "HEAD").strip()
        port = free_port()
        args = [
            "--repo", str(remote), "--state-dir", str(tmp_path / "state"),
            "--listen", f"127.0.0.1:{port}", "--poll-interval", "0.3",
            "--observe-interval", "3600", "--status-coalesce", "0",
            "--forge", "gitea", "--forge-url", fake.api_root, "--forge-repo", fake.repo,
            "--forge-token-file", str(token_file),
        ]  # fmt: skip
        env = git_env(tmp_path, {KEY_ENV: fleet.api_key, "PYTHONUNBUFFERED": "1"})
        async with gitfirm_run(args, env) as child:
            await wait_for(
                lambda: (
                    (fake.latest_status(initial, "gitfirm/fleet") or {}).get("state") == "success"
                ),
                60,
                "the first revision's status from gitfirm run",
            )
            assert await child.terminate() == 0
        logged = "".join(text for _, text in child.lines)
        assert '"event": "forge-status"' in logged
        assert fake.token not in logged
        (call, *_) = fake.calls("POST", f"/statuses/{initial}$")
        assert call.headers["authorization"] == f"token {fake.token}"
        assert call.headers["user-agent"].startswith("gitfirm/")
