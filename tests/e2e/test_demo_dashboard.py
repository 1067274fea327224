"""`gitfirm demo --keep-running`: after the rollout the daemon and simulator stay up, the
dashboard's address is printed, its pages show the finished rollout, and Ctrl-C stops it
all with exit code 0."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^dashboard: (http://127\.0\.0\.1:\d+/)$")


def _dashboard_url(proc: subprocess.Popen[str], seconds: float) -> tuple[str, list[str]]:
    """Read the demo's output until it prints the dashboard line (bounded in time).

    A thread reads the lines (a select() on the pipe would miss lines already buffered)."""
    assert proc.stdout is not None
    stdout = proc.stdout
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        with stdout:  # closed here, at the end of the output, not under the reader
            for line in stdout:
                lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    shown: list[str] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=min(left, 5.0))
        except queue.Empty:
            continue
        if line is None:
            break
        shown.append(line)
        found = LINE.match(line)
        if found:
            return found.group(1), shown
    raise AssertionError("no dashboard line:\n" + "\n".join(shown[-40:]))


def test_demo_keeps_running_with_its_dashboard(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler.cli", "demo", "--keep-running",
         "--example", str(ROOT / "example-repo"), "--workdir", str(tmp_path / "demo")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={"COLUMNS": "160", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
             "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        url, shown = _dashboard_url(proc, 300)
        assert any("The fleet now" in line for line in shown)
        # A browser asking for / is sent to the pages; they show the demo's fleet, done.
        with httpx.Client(base_url=url, timeout=30) as http:
            assert http.get("/", headers={"Accept": "text/html"}).headers["location"] == "/ui/"
            fleet = http.get("/ui/", headers={"Accept": "text/html"})
            assert fleet.status_code == 200 and "fra-core-1" in fleet.text
            rollouts = http.get("/ui/rollouts").text
            assert "lts-fleet" in rollouts
            assert re.search(r"(\d+) of \1 done", rollouts), rollouts
            assert proc.poll() is None  # still running after the pages were served
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
