"""The daemon never goes quiet: supervised loops, failing passes, a verified revision that
survives restarts, and image fetches that recover. Through the real daemon, real git and
signatures, and the simulator (issue 9 points 4 and 6, issue 10 point 11).
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import httpx
import yaml

from reconciler.daemon import Daemon
from reconciler.model.kinds import AccessPolicy
from reconciler.simulator.iso import iso_file_name
from reconciler.source.policy import policy_fingerprint
from tests.support.daemon import ALWAYS_OPEN, policy_yaml, wait_for
from tests.support.gitrepo import SshKey, access_policy, commit_files, git, push, ssh_key
from tests.support.scheduling import Stage, staged_gitops

_POLICY = {"policies/fleet.yaml": policy_yaml("1.4.3", window=ALWAYS_OPEN)}


async def _until_health(stage: Stage, status: int) -> str:
    """Poll ``/healthz`` until it answers ``status``; its body."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stage.port}") as http:
        for _ in range(600):
            answer = await http.get("/healthz")
            if answer.status_code == status:
                return answer.text
            await asyncio.sleep(0.05)
    raise AssertionError(f"/healthz never answered {status}")


def _status_refusals(stage: Stage) -> dict[str, str]:
    try:
        doc = yaml.safe_load(git(stage.remote, "show", "status:source.yaml"))
    except RuntimeError:  # no status branch, or no source.yaml on it yet
        return {}
    return {r["revision"]: r["reason"] for r in (doc or {}).get("refused") or []}


async def test_a_dead_loop_is_restarted_and_healthz_is_503_meanwhile(tmp_path: Path) -> None:
    released = asyncio.Event()

    def break_observe(daemon: Daemon) -> None:
        loop = daemon.loops["observe"]

        async def failing() -> None:
            if not released.is_set():
                raise RuntimeError("injected failure")
            await loop()

        daemon.loops["observe"] = failing

    async with staged_gitops(tmp_path, _POLICY, start=False) as stage:
        stage.prepare = break_observe
        daemon = await stage.start()
        assert "observe" in await _until_health(stage, 503)
        released.set()
        assert await _until_health(stage, 200) == "ok\n"
        assert daemon.supervisor.deaths["observe"] >= 1
        died = [e for e in stage.events("loop-died") if e.get("loop") == "observe"]
        assert died and "injected failure" in died[0]["reason"]
        # The source loop was never touched: a commit still applies.
        sha = stage.merge({"policies/fleet.yaml": policy_yaml("1.4.4", window=ALWAYS_OPEN)}, "go")
        await wait_for(lambda: daemon.state.verified == sha, 30, "the commit applied")


def _nested(depth: int) -> str:
    # Unsigned, and too deep for a recursive parser: it must be refused, not kill a loop.
    return '{\n"kind": "AccessPolicy",\n"spec": ' + "[" * depth + "]" * depth + "}\n"


def _strict(tmp: Path) -> tuple[SshKey, dict[str, str], str]:
    """An admin key, the files of a strict repository it governs, and the policy's pin."""
    admin = ssh_key(tmp / "keys", "admin")
    access = access_policy([(admin, ["admin"])], [(["**"], ["admin"])])
    pin = policy_fingerprint(AccessPolicy.model_validate(yaml.safe_load(access)))
    assert pin is not None
    return admin, {**_POLICY, "trust/access.yaml": access}, pin


def _sign_seed(stage: Stage, admin: SshKey) -> str:
    """Sign the seeded commit by the admin (a strict repository starts signed)."""
    git(stage.work, "-c", "gpg.format=ssh", "-c", f"user.signingkey={admin.private}",
        "commit", "--amend", "--quiet", "--no-edit", "-S")  # fmt: skip
    push(stage.work, force=True)
    return stage.head()


async def test_an_exception_in_a_pass_refuses_the_revision_and_a_good_one_applies(
    tmp_path: Path,
) -> None:
    admin, files, pin = _strict(tmp_path)
    async with staged_gitops(tmp_path, files, start=False, access_pin=pin) as stage:
        good = _sign_seed(stage, admin)
        daemon = await stage.start()
        assert daemon.state.verified == good
        bad = stage.merge({"trust/evil.json": _nested(5000)}, "deeply nested")
        await wait_for(lambda: bad in _status_refusals(stage), 60, "the refusal in status")
        assert _status_refusals(stage)[bad]
        assert daemon.state.verified == good
        assert daemon.metrics.passes.labels("failure")._value.get() >= 1
        assert any(e.get("revision") == bad for e in stage.events("pass-failed"))
        # The loop goes on: the admin's next commit applies.
        git(stage.work, "reset", "--quiet", "--hard", good)
        fixed = commit_files(
            stage.work, {"policies/fleet.yaml": _POLICY["policies/fleet.yaml"] + "# ok\n"},
            "a good commit", key=admin,
        )  # fmt: skip
        push(stage.work, force=True)
        await wait_for(lambda: daemon.state.verified == fixed, 30, "the good commit applied")
        assert await _until_health(stage, 200) == "ok\n"


async def test_a_restarted_daemon_refuses_a_force_push_to_an_older_signed_commit(
    tmp_path: Path,
) -> None:
    admin, files, pin = _strict(tmp_path)
    async with staged_gitops(tmp_path, files, start=False, access_pin=pin) as stage:
        older = _sign_seed(stage, admin)
        daemon = await stage.start()
        assert daemon.state.verified == older
        newer = stage.merge({"policies/fleet.yaml": _POLICY["policies/fleet.yaml"] + "# v2\n"},
                            "newer", key=admin)  # fmt: skip
        await wait_for(lambda: daemon.state.verified == newer, 30, "the newer commit applied")
        await stage.stop()

        git(stage.work, "reset", "--quiet", "--hard", older)
        push(stage.work, force=True)
        daemon = await stage.start()
        await wait_for(
            lambda: any(r.revision == older for r in daemon.book.refusals), 30, "the refusal"
        )
        refusal = next(r for r in daemon.book.refusals if r.revision == older)
        assert "not-descendant" in refusal.reason
        assert daemon.state.verified == newer


async def test_a_transient_image_failure_is_retried_without_a_new_commit(tmp_path: Path) -> None:
    async with staged_gitops(tmp_path, _POLICY) as stage:
        daemon = stage.running
        iso = tmp_path / "upstream" / iso_file_name("1.4.4")
        away = iso.with_name("away.iso")
        shutil.move(iso, away)
        stage.merge({"policies/fleet.yaml": policy_yaml("1.4.4", window=ALWAYS_OPEN)}, "go")
        await wait_for(lambda: bool(daemon.book.image_refusals), 60, "the failed fetch")
        assert set(stage.versions().values()) == {"1.4.3"}
        shutil.move(away, iso)
        await wait_for(lambda: set(stage.versions().values()) == {"1.4.4"}, 90, "the rollout")
