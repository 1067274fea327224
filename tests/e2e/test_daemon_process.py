"""``gitfirm run`` as a real process: JSON logs, health endpoints, SIGTERM, resume.

The simulator runs in the test's event loop (so the test reads each router's own event
log); the daemon is ``python -m reconciler.cli run`` against a bare config remote. Three
processes share one state dir: the first gets SIGTERM while the canary stages its image,
the second while the next device starts, the third completes the rollout. Each must log
only JSON lines with no secret in them, exit 0 promptly, and pick up where the last one
stopped; no router may be sent the same image twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.daemon import ALWAYS_OPEN, config_files, free_port, policy_yaml, wait_for
from tests.support.gitrepo import commit_files, git_env, push, seeded_remote
from tests.support.simulator import KEY_ENV, running_simulator

_EXIT_TIMEOUT = 30.0
"""SIGTERM to exit: the staging step (2 s here) finishes, nothing else starts."""


@dataclass
class DaemonProcess:
    """One ``gitfirm run`` child; every line it writes is kept as (stream, text)."""

    process: asyncio.subprocess.Process
    lines: list[tuple[str, str]] = field(default_factory=list)
    readers: list[asyncio.Task[None]] = field(default_factory=list)

    def events(self) -> list[dict[str, Any]]:
        """The log lines parsed so far (each must be one JSON object)."""
        return [json.loads(text) for _, text in self.lines if text.strip()]

    async def _read(self, name: str, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.lines.append((name, line.decode()))

    async def terminate(self) -> int:
        """SIGTERM; the exit code (fails past :data:`_EXIT_TIMEOUT`)."""
        self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), _EXIT_TIMEOUT)
        await asyncio.wait_for(asyncio.gather(*self.readers), 10)
        return code


@contextlib.asynccontextmanager
async def gitfirm_run(args: Sequence[str], env: dict[str, str]) -> AsyncIterator[DaemonProcess]:
    """Start ``gitfirm run args``; kill it on exit if the test did not stop it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reconciler.cli", "run", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    child = DaemonProcess(process)
    child.readers = [
        asyncio.create_task(child._read("stdout", process.stdout)),
        asyncio.create_task(child._read("stderr", process.stderr)),
    ]
    try:
        yield child
    finally:
        if process.returncode is None:
            process.kill()
            await asyncio.wait_for(process.wait(), 10)
        for task in child.readers:
            task.cancel()
        await asyncio.gather(*child.readers, return_exceptions=True)


def _transitions(child: DaemonProcess, revision: str) -> list[dict[str, Any]]:
    return [
        e for e in child.events() if e.get("event") == "transition" and e["revision"] == revision
    ]


def _seen(child: DaemonProcess, check: Callable[[dict[str, Any]], bool]) -> bool:
    return any(check(e) for e in child.events())


async def _ready(port: int) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2) as http:

        async def answers() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                return (await http.get("/readyz")).status_code == 200
            return False

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not await answers():
            assert loop.time() < deadline, "gitfirm run never became ready"
            await asyncio.sleep(0.1)
        assert (await http.get("/healthz")).status_code == 200


def _done(child: DaemonProcess, revision: str) -> set[str]:
    return {e["device"] for e in _transitions(child, revision) if e["phase"].endswith("->done")}


async def test_gitfirm_run_logs_json_serves_health_and_resumes_after_sigterm(
    tmp_path: Path,
) -> None:
    # 300 kB images at 150 kB/s: staging takes 2 s; 0.2 s per API call makes precheck and
    # backup take a while too, so each SIGTERM lands in the middle of a device's steps.
    sim = running_simulator(3, releases=["1.4"], bandwidth=150_000, latency=0.2)
    async with sim as fleet:
        files, _ = config_files(tmp_path / "upstream", fleet, ["1.4.3", "1.4.4"])
        files["policies/fleet.yaml"] = policy_yaml("1.4.3", window=ALWAYS_OPEN)
        remote, work = seeded_remote(tmp_path / "git", files)
        port = free_port()
        args = [
            "--repo", str(remote), "--state-dir", str(tmp_path / "state"),
            "--listen", f"127.0.0.1:{port}", "--poll-interval", "0.3",
            "--observe-interval", "3600", "--status-coalesce", "0",
        ]  # fmt: skip
        secrets = {KEY_ENV: fleet.api_key, "GITFIRM_WEBHOOK_SECRET": "hook-secret-5d1e"}
        env = git_env(tmp_path, {**secrets, "PYTHONUNBUFFERED": "1"})
        runs: list[DaemonProcess] = []

        # 1: SIGTERM while the canary downloads its image. It has armed its router (the
        # new image is the default boot), so it finishes; no other device starts.
        async with gitfirm_run(args, env) as child:
            runs.append(child)
            await _ready(port)
            files = {"policies/fleet.yaml": policy_yaml("1.4.4", window=ALWAYS_OPEN)}
            sha = commit_files(work, files, "Roll the fleet to 1.4.4")
            push(work)
            await wait_for(
                lambda: _seen(child, lambda e: e.get("phase") == "backup->stage"), 30, "staging"
            )
            assert await child.terminate() == 0
        assert _seen(child, lambda e: e.get("msg") == "rollout ended: stopped")

        # 2: SIGTERM as the next device starts: it parks before it disrupts anything.
        async with gitfirm_run(args, env) as child:
            runs.append(child)
            await wait_for(lambda: bool(_transitions(child, sha)), 30, "the rollout resuming")
            assert await child.terminate() == 0
        assert not all(fleet.device(n).running == "1.4.4" for n in fleet.names)

        # 3: the rollout completes.
        async with gitfirm_run(args, env) as child:
            runs.append(child)
            await wait_for(
                lambda: all(fleet.device(n).running == "1.4.4" for n in fleet.names),
                60,
                "the resumed rollout",
            )
            await wait_for(
                lambda: _seen(child, lambda e: e.get("msg") == "rollout ended: complete"),
                30,
                "the rollout's end",
            )
            assert await child.terminate() == 0

    for child in runs:
        assert not any(v in text for _, text in child.lines for v in secrets.values())
        events = child.events()  # every line of stdout and stderr parses as JSON
        assert events and all("msg" in e and "level" in e and "ts" in e for e in events)
        for event in (e for e in events if e.get("event") == "transition"):
            assert event["device"] in fleet.names
            assert event["rollout"] == "fleet" and event["revision"] == sha
    # Resumed, not restarted: a device finished by one process is not touched by the next.
    finished: set[str] = set()
    for child in runs:
        assert not finished & {e["device"] for e in _transitions(child, sha)}
        finished |= _done(child, sha)
    assert finished == set(fleet.names)
    for name in fleet.names:
        device = fleet.device(name)
        adds = [e for e in device.log if e["event"] == "image-add"]
        assert len(adds) == 1, f"{name} got {len(adds)} image adds for one hop: {device.log}"
        assert device.image_ops_max == 1
