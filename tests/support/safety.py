"""A daemon that can be killed: ``python -m tests.support.safety JOB.json`` runs a real
:class:`~reconciler.daemon.Daemon` (test timings) until it is killed, so a test can SIGKILL
it mid-rollout and start a fresh daemon on the same state dir.

The job (JSON) names the config remote, the state dir, the port and the environment.
:func:`journal_phases` reads the daemon's journal from outside, as an operator would.
:func:`upgraded` has a daemon upgrade one router and stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from reconciler.rollout.model import Transition
from reconciler.simulator.device import VirtualDevice
from tests.support.daemon import (
    ALWAYS_OPEN,
    config_files,
    free_port,
    make_daemon,
    policy_yaml,
    wait_for,
)
from tests.support.gitrepo import seeded_remote
from tests.support.rollout import OLD, TARGET
from tests.support.simulator import KEY_ENV, SimFleet, running_simulator

__all__ = ["daemon_process", "journal_phases", "upgraded"]


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


@contextlib.asynccontextmanager
async def upgraded(
    tmp: Path, device: VirtualDevice, listener: Callable[[Transition], None] | None = None
) -> AsyncIterator[tuple[SimFleet, Path, dict[str, str]]]:
    """A daemon upgrades ``device`` (running OLD) to TARGET and stops; yields the simulator
    (still serving), the state dir and each phase's transition detail. ``listener`` sees
    every transition as it happens."""
    async with running_simulator(devices=[device]) as fleet:
        files, _ = config_files(tmp / "upstream", fleet, [OLD, TARGET])
        files["policies/fleet.yaml"] = policy_yaml(TARGET, window=ALWAYS_OPEN, maxParallel=1)
        remote, _ = seeded_remote(tmp / "git", files)
        state = tmp / "state"
        daemon = make_daemon(remote, state, free_port(), {KEY_ENV: fleet.api_key},
                             io.StringIO(), poll_interval=0.2, status_coalesce=0)  # fmt: skip
        details: dict[str, str] = {}

        def record(event: Transition) -> None:
            details[event.to_phase] = event.detail
            if listener is not None:
                listener(event)

        daemon.listeners.append(record)
        stop = asyncio.Event()
        task = asyncio.create_task(daemon.run(stop))
        try:
            await wait_for(
                lambda: journal_phases(state).get(device.name) in ("done", "failed") or task.done(),
                60,
                "the upgrade",
            )
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)
        assert journal_phases(state)[device.name] == "done", details
        yield fleet, state, details


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
