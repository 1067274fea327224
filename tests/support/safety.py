"""A daemon that can be killed: ``python -m tests.support.safety JOB.json`` runs a real
:class:`~reconciler.daemon.Daemon` (test timings) until it is killed, so a test can SIGKILL
it mid-rollout and start a fresh daemon on the same state dir.

The job (JSON) names the config remote, the state dir, the port and the environment.
:func:`journal_phases` reads the daemon's journal from outside, as an operator would.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from tests.support.daemon import make_daemon

__all__ = ["daemon_process", "journal_phases"]


def journal_phases(state_dir: Path, policy: str = "fleet") -> dict[str, str]:
    """Every device's journalled phase (empty before the journal exists)."""
    path = state_dir / "journal.sqlite3"
    if not path.exists():
        return {}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT device, phase FROM device_state WHERE policy=?", (policy,)
        ).fetchall()
    except sqlite3.OperationalError:
        return {}  # the daemon has not created its tables yet
    finally:
        db.close()
    return {str(d): str(p) for d, p in rows}


@contextlib.asynccontextmanager
async def daemon_process(
    job: dict[str, Any], job_file: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run the job's daemon in a child process; kill it on exit if still running."""
    job_file.write_text(json.dumps(job))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.support.safety", str(job_file),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        await asyncio.wait_for(process.wait(), 30)


def _run(job_file: Path) -> None:
    job = json.loads(job_file.read_text())
    daemon = make_daemon(
        Path(job["remote"]),
        Path(job["state_dir"]),
        int(job["port"]),
        job["environ"],
        io.StringIO(),
        poll_interval=0.2,
        status_coalesce=0,
    )
    asyncio.run(daemon.run())


if __name__ == "__main__":
    _run(Path(sys.argv[1]))
