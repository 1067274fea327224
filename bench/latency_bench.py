"""Merge latency: from ``git push`` returning to the first device action of the new revision.

Everything GitOps is real except the routers: a bare config remote, a working clone that
pushes "merged pull requests", and the daemon (in this process, on the real clock) polling
the remote and serving images; the routers are the simulator, with ``--latency`` per API
call (100 ms by default). Each push moves the rollout policy's target one patch release up
a ladder of signed images declared from the start (1.4.4, 1.4.5, ...), so every push is a
real desired change that needs device work. The first device action is the first
transition the daemon reports for the new revision (``pending -> precheck``, the moment a
device's state machine starts; its first API call follows at once).

Two triggers, each on a fresh fleet, daemon and remote:

- ``webhook``: the poll interval is 60 s and, right after each push, the bench POSTs to
  ``/webhooks/github`` with a valid ``X-Hub-Signature-256``, as GitHub would;
- ``poll``: a 5 s poll interval (jittered by the poller) and no webhook.

Between pushes the bench waits for the rollout to finish, so each push starts from an idle
daemon; with the poll trigger it then waits a random part of the poll interval, so pushes
land all over the poll cycle as real merges do. One warm-up push per trigger is not
counted. Target: webhook p50 <= 2 s.

Run: ``.venv/bin/python -m bench.latency_bench [--pushes 20]``; prints one JSON line per
trigger: ``{"bench": "latency", "trigger": ..., "pushes": N, "p50": s, "p95": s, ...}``.
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
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.daemon import Daemon
from reconciler.rollout.model import Transition
from tests.support.daemon import (
    ALWAYS_OPEN,
    config_files,
    free_port,
    make_daemon,
    policy_yaml,
    wait_for,
)
from tests.support.gitrepo import commit_files, push, seeded_remote
from tests.support.simulator import KEY_ENV, SimFleet, running_simulator

__all__ = ["measure", "percentile"]

SECRET = "latency-bench-webhook-secret"
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
    await wait_for(lambda: sha in first, FIRST_ACTION_TIMEOUT, f"a device action for {sha}")
    return first[sha]


async def _settle(daemon: Daemon, fleet: SimFleet, version: str) -> None:
    """Wait until every device runs ``version`` and no rollout task is left."""
    await wait_for(
        lambda: (
            all(fleet.device(n).running == version for n in fleet.names)
            and not daemon.rollouts_running()
        ),
        ROLLOUT_TIMEOUT,
        f"the rollout to {version}",
    )


async def measure(
    tmp: Path, trigger: str, *, pushes: int, devices: int, latency: float, poll: float
) -> list[float]:
    """Latencies (seconds) of ``pushes`` measured pushes with one ``trigger``."""
    ladder = [f"1.4.{CURRENT + i}" for i in range(pushes + 2)]  # current, warm-up, measured
    async with running_simulator(devices, releases=["1.4"], latency=latency) as fleet:
        files, _ = config_files(tmp / "upstream", fleet, ladder)
        files["policies/fleet.yaml"] = policy_yaml(ladder[0], window=ALWAYS_OPEN)
        remote, work = seeded_remote(tmp / "git", files)
        port = free_port()
        env = {KEY_ENV: fleet.api_key, "GITFIRM_WEBHOOK_SECRET": SECRET}
        # No watch on the local remote: only the webhook or the poll may wake the daemon.
        daemon = make_daemon(remote, tmp / "state", port, env, io.StringIO(), poll_interval=poll)
        first: dict[str, float] = {}

        def on_transition(event: Transition) -> None:
            first.setdefault(event.revision, time.monotonic())

        daemon.listeners.append(on_transition)
        stop = asyncio.Event()
        task = asyncio.create_task(daemon.run(stop))
        samples: list[float] = []
        rng = random.Random(6)
        try:
            await wait_for(lambda: daemon.state.desired is not None, 30, "the daemon's start")
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
                for version in ladder[1:]:
                    if trigger == "poll":
                        # Push at a random point of the poll cycle: right after a rollout,
                        # the phase would otherwise lock to the poll that started it.
                        await asyncio.sleep(rng.uniform(0, poll))
                    files = {"policies/fleet.yaml": policy_yaml(version, window=ALWAYS_OPEN)}
                    sha = await asyncio.to_thread(commit_files, work, files, f"Roll to {version}")
                    await asyncio.to_thread(push, work)
                    pushed = time.monotonic()
                    if trigger == "webhook":
                        await _wake_github(http, sha)
                    samples.append(await _first_action(first, sha) - pushed)
                    await _settle(daemon, fleet, version)
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)
    return samples[1:]  # the first push warms up imports, caches and connections


async def main() -> None:
    """Measure both triggers and print one JSON line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=20, help="measured pushes per trigger")
    parser.add_argument("--devices", type=int, default=2, help="simulated routers")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per API call")
    args = parser.parse_args()
    for trigger, poll in (("webhook", 60.0), ("poll", 5.0)):
        with tempfile.TemporaryDirectory(prefix=f"gitfirm-latency-{trigger}-") as tmp:
            samples = await measure(
                Path(tmp),
                trigger,
                pushes=args.pushes,
                devices=args.devices,
                latency=args.latency,
                poll=poll,
            )
        result = {
            "bench": "latency",
            "trigger": trigger,
            "pushes": len(samples),
            "p50": round(percentile(samples, 50), 3),
            "p95": round(percentile(samples, 95), 3),
            "min": round(min(samples), 3),
            "max": round(max(samples), 3),
            "poll_interval": poll,
            "device_latency": args.latency,
        }
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
