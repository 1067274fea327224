"""Merge latency: from ``git push`` returning to the first device action of the new revision.

Everything GitOps is real except the routers: a bare config remote, a working clone that
pushes "merged pull requests", and the daemon (in this process, on the real clock) polling
the remote and serving images; the routers are the simulator in its own process (10 by
default; the amd64 ones roll out), with ``--latency`` per API call (100 ms by default).
Each push moves the rollout policy's target one patch release up a ladder of signed images
declared from the start (1.4.4, 1.4.5, ...), so every push is a real desired change that
needs device work. The first device action is the first transition the daemon reports for
the new revision (``pending -> precheck``, the moment a device's state machine starts; its
first API call follows at once).

Two triggers, each on a fresh fleet, daemon and remote:

- ``webhook``: the poll interval is 60 s and, right after each push, the bench POSTs to
  ``/webhooks/github`` with a valid ``X-Hub-Signature-256``, as GitHub would;
- ``poll``: a 5 s poll interval (jittered by the poller) and no webhook.

Between pushes the bench waits for the rollout to finish, so each push starts from an idle
daemon; with the poll trigger it then waits a random part of the poll interval, so pushes
land all over the poll cycle as real merges do. One warm-up push per trigger is not
counted. Target: webhook p50 <= 2 s.

Every push must reach a device and every rollout must finish, or the bench fails. Each
trigger is measured in 3 runs; per run one JSON line
``{"bench": "latency", "trigger": ..., "run": i, "pushes": N, "p50": s, "p95": s, ...}``,
then min, median and max lines of ``p50`` and ``p95``.
Run: ``.venv/bin/python -m bench.latency_bench [--pushes 20] [--devices 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import io
import json
import random
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.gitops import commit_push, config_repo, policy_yaml, wait_until
from bench.harness import RUNS, emit, fail, free_port, summarize
from reconciler.daemon import Daemon, DaemonSettings
from reconciler.logs import configure_json_logging
from reconciler.rollout.model import RolloutSettings, Transition
from reconciler.simulator.process import simulator_process

__all__ = ["measure", "percentile"]

SECRET = "latency-bench-webhook-secret"
KEY_ENV = "VYOS_API_KEY_SIM"
# Rollout steps polled fast: the bench measures the way in, not the simulated reboot.
ROLLOUT = RolloutSettings(
    boot_timeout=timedelta(seconds=20),
    boot_poll=timedelta(milliseconds=50),
    stage_timeout=timedelta(seconds=20),
    stage_poll=timedelta(milliseconds=50),
    window_poll=timedelta(milliseconds=100),
)
CURRENT = 3
"""The simulated 1.4 routers run 1.4.3; the ladder starts above it."""
FIRST_ACTION_TIMEOUT = 30.0
ROLLOUT_TIMEOUT = 120.0


def percentile(values: list[float], pct: int) -> float:
    """The ``pct``-th percentile, interpolated between the closest ranks."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


async def _wake_github(http: httpx.AsyncClient, sha: str) -> None:
    body = json.dumps({"ref": "refs/heads/main", "after": sha}).encode()
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-Hub-Signature-256": f"sha256={digest}", "X-GitHub-Event": "push"}
    response = await http.post("/webhooks/github", content=body, headers=headers)
    if response.status_code != 202:
        raise RuntimeError(f"webhook answered {response.status_code}")


async def _first_action(first: dict[str, float], sha: str) -> float:
    """When the first device transition of revision ``sha`` was reported."""
    try:
        await wait_until(lambda: sha in first, FIRST_ACTION_TIMEOUT, f"a device action for {sha}")
    except TimeoutError as exc:
        fail(f"latency: {exc}")
    return first[sha]


async def _settle(daemon: Daemon, version: str, devices: int) -> None:
    """Wait until the rollout to ``version`` finished with every device done."""

    def done() -> bool:
        if daemon.rollouts_running():
            return False
        rollout = daemon.book.rollout_status("fleet")
        return rollout.target_version == version and rollout.counts.get("done", 0) == devices

    try:
        await wait_until(done, ROLLOUT_TIMEOUT, f"the rollout to {version}")
    except TimeoutError as exc:
        fail(f"latency: {exc}")


def _daemon(remote: Path, state: Path, port: int, env: dict[str, str], poll: float) -> Daemon:
    settings = DaemonSettings(
        repo=str(remote),
        state_dir=state,
        listen=f"127.0.0.1:{port}",
        poll_interval=poll,
        observe_interval=3600,
        watch_local=False,  # only the webhook or the poll may wake the daemon
        rollout=ROLLOUT,
    )
    return Daemon(settings, environ=env, formatter=configure_json_logging(stream=io.StringIO()))


async def measure(
    tmp: Path, trigger: str, *, pushes: int, devices: int, latency: float, poll: float
) -> list[float]:
    """Latencies (seconds) of ``pushes`` measured pushes with one ``trigger``."""
    ladder = [f"1.4.{CURRENT + i}" for i in range(pushes + 2)]  # current, warm-up, measured
    fleet_file = tmp / "fleet.yaml"
    sim_args = ["--release", "1.4", "--key-env", KEY_ENV, "--boot-seconds", "0.05"]
    async with simulator_process(
        devices, latency=latency, write_fleet=fleet_file, extra_args=sim_args
    ) as sim:
        docs: list[dict[str, Any]] = list(yaml.safe_load_all(fleet_file.read_text()))
        # Images are built for amd64: arm64 routers (about one in eight) stay where they are.
        amd64 = sum(1 for d in docs if d["spec"]["platform"]["arch"] == "amd64")
        policy = policy_yaml(ladder[0], {}, maxParallel=devices, maxUnavailable=devices)
        remote, work = await asyncio.to_thread(config_repo, tmp / "git", docs, ladder, policy)
        port = free_port()
        env = {KEY_ENV: sim.api_key, "GITFIRM_WEBHOOK_SECRET": SECRET}
        daemon = _daemon(remote, tmp / "state", port, env, poll)
        first: dict[str, float] = {}

        def on_transition(event: Transition) -> None:
            first.setdefault(event.revision, time.monotonic())

        daemon.listeners.append(on_transition)
        stop = asyncio.Event()
        task = asyncio.create_task(daemon.run(stop))
        samples: list[float] = []
        rng = random.Random(6)
        try:
            await wait_until(lambda: daemon.state.desired is not None, 60, "the daemon's start")
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
                for version in ladder[1:]:
                    if trigger == "poll":
                        # Push at a random point of the poll cycle: right after a rollout,
                        # the phase would otherwise lock to the poll that started it.
                        await asyncio.sleep(rng.uniform(0, poll))
                    policy = policy_yaml(version, {}, maxParallel=devices, maxUnavailable=devices)
                    files = {"policies/fleet.yaml": policy}
                    sha = await asyncio.to_thread(commit_push, work, files, f"Roll to {version}")
                    pushed = time.monotonic()
                    if trigger == "webhook":
                        await _wake_github(http, sha)
                    samples.append(await _first_action(first, sha) - pushed)
                    await _settle(daemon, version, amd64)
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)
    return samples[1:]  # the first push warms up imports, caches and connections


async def main() -> None:
    """Measure both triggers, 3 runs each, and print the JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=20, help="measured pushes per run")
    parser.add_argument("--devices", type=int, default=10, help="simulated routers")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per API call")
    args = parser.parse_args()
    for trigger, poll in (("webhook", 60.0), ("poll", 5.0)):
        fixed = {"bench": "latency", "trigger": trigger, "devices": args.devices,
                 "poll_interval": poll, "device_latency": args.latency,
                 "rollout_poll_ms": 50, "sim_boot_seconds": 0.05}  # fmt: skip
        runs = []
        for run in range(1, RUNS + 1):
            with tempfile.TemporaryDirectory(prefix=f"gitfirm-latency-{trigger}-") as tmp:
                samples = await measure(
                    Path(tmp),
                    trigger,
                    pushes=args.pushes,
                    devices=args.devices,
                    latency=args.latency,
                    poll=poll,
                )
            runs.append(
                {
                    "pushes": len(samples),
                    "p50": round(percentile(samples, 50), 3),
                    "p95": round(percentile(samples, 95), 3),
                    "min": round(min(samples), 3),
                    "max": round(max(samples), 3),
                }
            )
            emit({**fixed, "run": run, **runs[-1]})
        for line in summarize(runs, ("p50", "p95"), **fixed):
            emit(line)


if __name__ == "__main__":
    asyncio.run(main())
