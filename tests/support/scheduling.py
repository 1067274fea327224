"""A restartable gitfirm for scheduling tests: one config remote, one simulated fleet, one
state dir, and a daemon that a test can stop and start again on that state dir.

Use :func:`staged_gitops`; the :class:`Stage` it yields pushes commits, (re)starts the
daemon, and reads the daemon's JSON log and each router's own event log.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reconciler.daemon import Daemon
from reconciler.rollout.journal import DeviceRecord, Journal
from tests.support.daemon import (
    ALWAYS_OPEN,
    config_files,
    free_port,
    make_daemon,
    policy_yaml,
    wait_for,
)
from tests.support.gitrepo import SshKey, commit_files, git, push, seeded_remote
from tests.support.simulator import KEY_ENV, SimFleet, running_simulator

__all__ = ["Stage", "fleet_policy", "max_concurrent_runs", "park_the_canary", "staged_gitops"]


def fleet_policy(
    target: str,
    *,
    suspend: bool = False,
    note: str = "",
    retry_token: str | None = None,
    **strategy: Any,
) -> str:
    """The ``fleet`` policy, always open; ``note`` adds a comment (an unrelated change)."""
    selector = strategy.pop("selector", None)
    doc = yaml.safe_load(policy_yaml(target, selector=selector, window=ALWAYS_OPEN, **strategy))
    if suspend:
        doc["spec"]["suspend"] = True
    if retry_token is not None:
        doc["spec"]["retryToken"] = retry_token
    text = yaml.safe_dump(doc, sort_keys=False)
    return text + (f"# {note}\n" if note else "")


@dataclass
class Stage:
    """A config remote, a fleet and one state dir; ``daemon`` is the one running now."""

    remote: Path
    work: Path
    fleet: SimFleet
    state: Path
    logs: io.StringIO
    settings: dict[str, Any]
    daemon: Daemon | None = None
    task: asyncio.Task[None] | None = None
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0
    prepare: Callable[[Daemon], None] | None = None
    """Called with each new daemon before it runs (fault injection into its loops)."""

    @property
    def running(self) -> Daemon:
        """The daemon running now."""
        assert self.daemon is not None, "no daemon running"
        return self.daemon

    async def start(self, *, wait_applied: bool = True) -> Daemon:
        """Start a daemon on the state dir; by default wait until a revision is in force."""
        self.port = free_port()
        daemon = make_daemon(
            self.remote,
            self.state,
            self.port,
            {KEY_ENV: self.fleet.api_key},
            self.logs,
            **self.settings,
        )
        if self.prepare is not None:
            self.prepare(daemon)
        self.daemon, self.stop_event = daemon, asyncio.Event()
        self.task = asyncio.create_task(daemon.run(self.stop_event))
        if wait_applied:
            await wait_for(
                lambda: daemon.state.desired is not None or self.task is None or self.task.done(),
                30,
                "a desired revision in force",
            )
            if self.task.done():
                self.task.result()
        return daemon

    async def stop(self) -> None:
        """SIGTERM-like stop of the running daemon; waits for it to exit."""
        if self.task is not None:
            self.stop_event.set()
            await asyncio.wait_for(self.task, 90)
        self.daemon = self.task = None

    def merge(
        self, files: Mapping[str, str | None], message: str, key: SshKey | None = None
    ) -> str:
        """Commit to main and push, as merging a pull request would."""
        sha = commit_files(self.work, files, message, key=key)
        push(self.work)
        return sha

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The daemon log lines so far (every daemon of this stage), optionally one event."""
        lines = [json.loads(line) for line in self.logs.getvalue().splitlines() if line.strip()]
        return [e for e in lines if name is None or e.get("event") == name]

    def router_events(self, device: str, event: str) -> int:
        """How many times the simulated router ``device`` logged ``event`` (image-add ...)."""
        return sum(1 for e in self.fleet.device(device).log if e["event"] == event)

    def starts(self) -> list[str]:
        """Devices in the order the daemon started them (each transition into precheck)."""
        return [e["device"] for e in self.events("transition") if e["phase"].endswith("->precheck")]

    def versions(self) -> dict[str, str]:
        """What every simulated router runs now."""
        return {n: self.fleet.device(n).running for n in self.fleet.names}

    def head(self) -> str:
        """The commit main points at in the remote."""
        return git(self.remote, "rev-parse", "main").strip()


async def park_the_canary(
    stage: Stage, parked: Callable[[Daemon, str], bool] | None, what: str, **strategy: Any
) -> DeviceRecord:
    """Retarget the ``fleet`` policy from 1.4.3 to 1.4.4; from its ``stage`` on, the canary
    answers slowly (1.5 s a call), and once ``parked(daemon, canary)`` holds (None: as soon
    as it stages, which finds it saving its config before the add) the daemon is stopped (with the stage's grace). Returns the canary's journal record as the stop left
    it; the canary answers at full speed again."""
    daemon = stage.running
    first: list[str] = []

    def slow_from_stage(event: Any) -> None:
        if event.to_phase == "stage" and not first:
            first.append(event.device)
            stage.fleet.device(event.device).faults.slow_seconds = 1.5

    daemon.listeners.append(slow_from_stage)
    stage.merge({"policies/fleet.yaml": fleet_policy("1.4.4", **strategy)}, "To 1.4.4")
    await wait_for(lambda: bool(first) and (parked is None or parked(daemon, first[0])), 90, what)
    (canary,) = first
    await stage.stop()
    journal = Journal(stage.state / "journal.sqlite3")
    try:
        record = journal.device("fleet", canary)
    finally:
        journal.close()
    assert record is not None, f"no journal record of the canary {canary}"
    stage.fleet.device(canary).faults.slow_seconds = 0.0
    return record


def max_concurrent_runs(events: list[dict[str, Any]], policy: str) -> int:
    """The most engine runs of ``policy`` active at once, from rollout-start/-end log lines."""
    active = peak = 0
    for e in events:
        if e.get("rollout") != policy:
            continue
        if e.get("event") == "rollout-start":
            active += 1
            peak = max(peak, active)
        elif e.get("event") == "rollout-end":
            active -= 1
    return peak


@contextlib.asynccontextmanager
async def staged_gitops(
    tmp: Path,
    files: Mapping[str, str],
    *,
    devices: int = 4,
    versions: tuple[str, ...] = ("1.4.3", "1.4.4"),
    boot_seconds: float = 0.05,
    latency: float = 0.0,
    start: bool = True,
    groups: bool = True,
    **settings: Any,
) -> AsyncIterator[Stage]:
    """A simulator of ``devices`` routers on 1.4, a remote seeded with the fleet, signed
    images of ``versions`` and ``files`` (the policies), and (with ``start``) a daemon.

    ``settings`` are :class:`~reconciler.daemon.DaemonSettings` fields; the defaults poll
    every 0.2 s and commit status at once. ``groups`` False drops the simulator's redundancy
    groups (a policy may then select any subset).
    """
    async with running_simulator(
        devices, releases=["1.4"], boot_seconds=boot_seconds, latency=latency
    ) as fleet:
        seeded, _ = config_files(tmp / "upstream", fleet, list(versions))
        if not groups:
            docs = list(yaml.safe_load_all(seeded["fleet/devices.yaml"]))
            for doc in docs:
                doc["spec"].pop("redundancyGroup", None)
            seeded["fleet/devices.yaml"] = yaml.safe_dump_all(docs, sort_keys=False)
        remote, work = seeded_remote(tmp / "git", {**seeded, **files})
        stage = Stage(
            remote,
            work,
            fleet,
            tmp / "state",
            io.StringIO(),
            {"poll_interval": 0.2, "status_coalesce": 0, **settings},
        )
        try:
            if start:
                await stage.start()
            yield stage
        finally:
            await stage.stop()
