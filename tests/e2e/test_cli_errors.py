"""The real ``gitfirm`` process explains each expected failure in one ``error:`` line.

Every case runs the installed ``gitfirm`` script and checks: exactly one line on stderr,
starting ``error:``, naming what to do; the exit code (2: change the invocation or the
config, 1: something outside failed); and no traceback. ``--debug`` brings the traceback
back. ``gitfirm access pin`` prints the one pin the daemon accepts.
"""

from __future__ import annotations

import asyncio
import io
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.model.loader import load_repository
from tests.support.configrepo import DEVICE, write_repo
from tests.support.daemon import free_port, make_daemon, wait_for
from tests.support.gitrepo import (
    access_policy,
    clone,
    commit_files,
    git_env,
    make_remote,
    push,
    seeded_remote,
    ssh_key,
)

GITFIRM = str(Path(sys.executable).with_name("gitfirm"))
_KEYED_DEVICE = DEVICE.replace("env: VYOS_KEY", "env: VYOS_API_KEY_R1").replace(
    "https://10.0.0.1:443", "https://127.0.0.1:9"
)


def gitfirm(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real ``gitfirm`` with a bounded time."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("VYOS_API_KEY_")}
    return subprocess.run(
        [GITFIRM, *args], cwd=cwd, capture_output=True, text=True, timeout=60,
        env={**base, **git_env(cwd / "home"), **(env or {})}, check=False,
    )  # fmt: skip


def one_error(done: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    """Assert one ``error:`` line on stderr, exit ``code``, no traceback; return the line."""
    lines = done.stderr.splitlines()
    assert "Traceback" not in done.stderr + done.stdout
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert done.returncode == code, (done.returncode, done.stderr)
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def closed_port() -> int:
    """A loopback port nothing listens on (bound and released, never listened)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A bare config remote with one commit on main and no status branch."""
    bare, _ = seeded_remote(tmp_path / "git", {"fleet/r1.yaml": _KEYED_DEVICE})
    return bare


def run_args(tmp_path: Path, repo: str, *more: str) -> list[str]:
    return ["run", "--repo", repo, "--state-dir", str(tmp_path / "state"), *more]


def test_run_no_repo(tmp_path: Path) -> None:
    done = gitfirm(*run_args(tmp_path, str(tmp_path / "absent")), cwd=tmp_path)
    one_error(done, 2, "no repository at", "--repo")


def test_run_not_a_git_repo(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    done = gitfirm(*run_args(tmp_path, str(tmp_path / "plain")), cwd=tmp_path)
    one_error(done, 2, "is not a git repository", "git init --bare")


def test_run_unreachable_remote(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/fleet.git"
    done = gitfirm(*run_args(tmp_path, url), cwd=tmp_path)
    one_error(done, 1, "cannot reach", "check the URL")


def test_run_missing_branch(tmp_path: Path, remote: Path) -> None:
    done = gitfirm(*run_args(tmp_path, str(remote), "--branch", "prod"), cwd=tmp_path)
    one_error(done, 2, "no 'prod' branch", "--branch")


def test_run_policy_not_pinned(tmp_path: Path) -> None:
    admin = ssh_key(tmp_path / "keys", "admin")
    bare, _ = seeded_remote(
        tmp_path / "git", {"trust/access.yaml": access_policy([(admin, ["admin"])])}
    )
    done = gitfirm(*run_args(tmp_path, str(bare)), cwd=tmp_path)
    one_error(done, 2, "AccessPolicy", "gitfirm access pin", "--access-pin")


def test_run_without_repo_names_the_setting(tmp_path: Path) -> None:
    done = gitfirm("run", "--state-dir", str(tmp_path / "state"), cwd=tmp_path)
    one_error(done, 2, "repo is not set", "--repo")


def test_run_config_unknown_key_is_named(tmp_path: Path, remote: Path) -> None:
    config = tmp_path / "gitfirm.yaml"
    config.write_text(f"repo: {remote}\nstate_dir: {tmp_path / 'state'}\npoll_intervall: 5\n")
    done = gitfirm("run", "--config", str(config), cwd=tmp_path)
    one_error(done, 2, "unknown setting 'poll_intervall'", str(config))


def test_run_config_bad_value_is_named(tmp_path: Path, remote: Path) -> None:
    config = tmp_path / "gitfirm.yaml"
    config.write_text(f"repo: {remote}\nstate_dir: {tmp_path / 'state'}\nbackup_keep: 1\n")
    done = gitfirm("run", "--config", str(config), cwd=tmp_path)
    one_error(done, 2, "backup_keep")


def test_run_config_and_flag_reach_the_same_check(tmp_path: Path, remote: Path) -> None:
    """--config supplies the settings; a flag given too wins (here: a missing branch)."""
    config = tmp_path / "gitfirm.yaml"
    config.write_text(f"repo: {remote}\nstate_dir: {tmp_path / 'state'}\nbranch: prod\n")
    one_error(gitfirm("run", "--config", str(config), cwd=tmp_path), 2, "no 'prod' branch")
    done = gitfirm("run", "--config", str(config), "--branch", "nightly", cwd=tmp_path)
    one_error(done, 2, "no 'nightly' branch")


def test_run_refuses_a_newer_state_dir_and_debug_shows_the_traceback(
    tmp_path: Path, remote: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "FORMAT").write_text("gitfirm-state 99\n")
    one_error(gitfirm(*run_args(tmp_path, str(remote)), cwd=tmp_path), 1, "format 99")
    debug = gitfirm("--debug", *run_args(tmp_path, str(remote)), cwd=tmp_path)
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    assert "StateFormatError" in debug.stderr


def test_status_missing_status_branch(tmp_path: Path, remote: Path) -> None:
    done = gitfirm("status", "--repo", str(remote), cwd=tmp_path)
    one_error(done, 2, "no 'status' branch", "gitfirm run creates it")


def test_status_no_repo_and_unreachable(tmp_path: Path) -> None:
    done = gitfirm("status", "--repo", str(tmp_path / "absent"), cwd=tmp_path)
    one_error(done, 2, "no repository at")
    url = f"http://127.0.0.1:{closed_port()}/fleet.git"
    one_error(gitfirm("status", "--repo", url, cwd=tmp_path), 1, "cannot reach")


def test_plan_and_observe_without_a_config_dir(tmp_path: Path) -> None:
    # plan exits 1 on any error: its 2 means "changes" (--detailed-exitcode).
    for command, code in (("plan", 1), ("observe", 2)):
        done = gitfirm(command, str(tmp_path / "absent"), cwd=tmp_path)
        one_error(done, code, "no config repository at")
    (tmp_path / "empty").mkdir()
    one_error(gitfirm("plan", "empty", cwd=tmp_path), 1, "holds no gitfirm documents")


def test_plan_invalid_config_points_at_validate(tmp_path: Path) -> None:
    write_repo(tmp_path / "repo", {"fleet/r1.yaml": "kind: Device\nspec: {}\n"})
    done = gitfirm("plan", "repo", cwd=tmp_path)
    one_error(done, 1, "gitfirm validate")
    one_error(gitfirm("observe", "repo", cwd=tmp_path), 2, "gitfirm validate")


def test_observe_with_unset_key_variables_fails_with_a_summary(tmp_path: Path) -> None:
    second = _KEYED_DEVICE.replace("name: r1", "name: r2").replace("_R1", "_R2")
    write_repo(tmp_path / "repo", {"fleet/r1.yaml": _KEYED_DEVICE, "fleet/r2.yaml": second})
    done = gitfirm("observe", "repo", "--format", "json", cwd=tmp_path)
    one_error(done, 1, "2 of 2 devices have no usable API key", "VYOS_API_KEY_R1", "1 more")
    assert '"r2"' in done.stdout  # the observation is still printed


def test_version_names_the_formats(tmp_path: Path) -> None:
    done = gitfirm("--version", cwd=tmp_path)
    assert done.returncode == 0
    assert "state format 1" in done.stdout and "journal format 1" in done.stdout


def test_run_help_lists_every_environment_variable(tmp_path: Path) -> None:
    """Each GITFIRM_* name the package's code holds is explained in `gitfirm run --help`."""
    import re

    root = Path(__file__).resolve().parents[2] / "reconciler"
    names = {
        n
        for f in root.rglob("*.py")
        if "simulator" not in f.parts
        for n in re.findall(r"\bGITFIRM_[A-Z][A-Z_]*[A-Z]\b", f.read_text("utf-8"))
    }
    names -= {"GITFIRM_MSG", "GITFIRM_NOTE"}  # git trailer keys of status commits, not vars
    text = gitfirm("run", "--help", cwd=tmp_path).stdout
    assert {"GITFIRM_BACKUP_KEY", "GITFIRM_WEBHOOK_SECRET"} <= names
    missing = sorted(n for n in names if n not in text)
    assert not missing, missing
    assert "VYOS_API_KEY_" in text


async def test_access_pin_is_the_pin_the_daemon_accepts(tmp_path: Path) -> None:
    admin = ssh_key(tmp_path / "keys", "admin")
    remote = make_remote(tmp_path / "git" / "remote.git")
    work = clone(remote, tmp_path / "git" / "work")
    policy = access_policy([(admin, ["admin"])])
    head = commit_files(work, {"trust/access.yaml": policy}, "policy", key=admin)
    push(work)
    done = gitfirm("access", "pin", str(work), cwd=tmp_path)
    assert done.returncode == 0 and done.stderr == ""
    pin = done.stdout.strip()
    assert pin.startswith("sha256:") and load_repository(work).state is not None

    other = pin[:-1] + ("0" if pin[-1] != "0" else "1")
    for given, accepted in ((pin, True), (other, False)):
        state = tmp_path / f"state-{accepted}"
        daemon = make_daemon(
            remote, state, free_port(), {}, io.StringIO(), access_pin=given, poll_interval=0.2
        )
        stop = asyncio.Event()
        task = asyncio.create_task(daemon.run(stop))
        try:
            await wait_for(
                lambda d=daemon: d.state.verified is not None or d.state.last_error is not None,  # type: ignore[misc]
                30,
                "the first pass",
            )
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
        error = daemon.state.last_error
        if accepted:
            assert error is None and daemon.state.verified == head
        else:
            assert error is not None and error.reason == "policy-not-pinned"
            assert daemon.state.verified is None


def test_run_short_image_token_key(tmp_path: Path, remote: Path) -> None:
    done = gitfirm(
        *run_args(tmp_path, str(remote)), cwd=tmp_path, env={"GITFIRM_IMAGE_TOKEN_KEY": "short"}
    )
    line = one_error(done, 2, "GITFIRM_IMAGE_TOKEN_KEY is shorter than 16", "head -c32")
    assert "short" not in line.replace("shorter", "")


def test_run_shard_without_name(tmp_path: Path, remote: Path) -> None:
    done = gitfirm(*run_args(tmp_path, str(remote), "--shard", "site in (fra)"), cwd=tmp_path)
    one_error(done, 2, "shard and shard_name go together")
