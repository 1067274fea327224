"""``gitfirm health`` (the container's HEALTHCHECK) follows the port ``gitfirm run`` listens on.

A real ``gitfirm run`` process listens on a port chosen by the test; ``gitfirm health`` is
given only the state dir and must find that port, answer 0 while the daemon is up, and one
``error:`` line with exit 1 once it has stopped.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.daemon import free_port
from tests.support.gitrepo import git_env, seeded_remote

GITFIRM = str(Path(sys.executable).with_name("gitfirm"))


def _health(state: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GITFIRM, "health", "--state-dir", str(state)],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip


def test_health_finds_the_listen_port_of_the_run(tmp_path: Path) -> None:
    remote, _ = seeded_remote(tmp_path / "git", {"README.md": "fleet\n"})
    env = git_env(tmp_path / "home")
    state = tmp_path / "state"
    before = _health(state, env)
    assert before.returncode == 2 and before.stderr.startswith("error: no gitfirm run")

    port = free_port()
    daemon = subprocess.Popen(
        [GITFIRM, "run", "--repo", str(remote), "--state-dir", str(state),
         "--listen", f"127.0.0.1:{port}", "--no-watch"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        answer = _health(state, env)
        deadline = time.monotonic() + 30
        while answer.returncode != 0 and time.monotonic() < deadline and daemon.poll() is None:
            time.sleep(0.2)
            answer = _health(state, env)
        assert answer.returncode == 0, answer.stderr
        assert answer.stderr == ""
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0

    after = _health(state, env)
    lines = after.stderr.splitlines()
    assert after.returncode == 1 and len(lines) == 1
    assert lines[0].startswith("error: ") and f"127.0.0.1:{port}" in lines[0]
    assert "Traceback" not in after.stderr
