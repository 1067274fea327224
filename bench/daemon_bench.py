"""The whole daemon at fleet scale: ``gitfirm run`` against ``gitfirm sim``, each its own process.

Per run, on a fresh simulator (100 ms per API call, routers on 1.4.3), config repository
(bare git remote; devices in files of 1,000; a signed 1.4.4 image; a RolloutPolicy that
selects 1% of the fleet, amd64 routers outside redundancy pairs, all in one wave) and state
directory:

1. ``observe_seconds``: the fleet observed alone, from this process, with the daemon's
   observer and its default settings; every device must answer;
2. ``gitfirm run`` starts with its defaults (only ``--no-watch``: the remote is a local
   path, and watching it is a development mode). ``pass_seconds`` is its first full pass:
   from its ``revision`` log line (fetched and about to verify) until
   ``gitfirm_reconcile_passes_total{result="success"}`` counts it (verify, load, observe,
   plan, fetch the image, start the rollout); ``pass_ratio`` = pass / observe alone;
3. during the rollout, ``GET /`` back to back every 200 ms: ``root_p95_ms``;
4. the rollout must end with every selected device ``done`` (else the bench fails); then,
   once the status writer has made a commit after its first, full one (and 12 s more for
   the end state), from ``/metrics``:
   ``loop_block_ms_max`` (the daemon's loop-lag probe), ``status_commit_ms_median``
   (interpolated in ``gitfirm_status_commit_seconds``'s buckets, as Prometheus'
   ``histogram_quantile`` does), and ``rss_mb`` (the daemon's peak RSS, ``VmHWM``).

Prints one JSON line per run, then min, median and max lines per fleet size.
Run: ``.venv/bin/python -m bench.daemon_bench [--devices 1000 10000] [--runs 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.gitops import config_repo, policy_yaml
from bench.harness import RUNS, emit, fail, free_port, summarize
from reconciler.devices.observe import observe
from reconciler.devices.transport import make_http_client
from reconciler.runtime import tune_gc
from reconciler.simulator.process import simulator_process

SIZES = (1_000, 10_000)
LATENCY = 0.1
KEY_ENV = "VYOS_API_KEY_SIM"
OPERATOR_TOKEN = "bench-operator-token"
"""/ and /metrics need a bearer token (docs/operator-surfaces.md)."""
CURRENT, TARGET = "1.4.3", "1.4.4"
SIM_BOOT_SECONDS = 10.0
"""The simulated reboot (the simulator's default is 60 s): one rollout takes about a minute."""
PASS_TIMEOUT = 900.0
ROLLOUT_TIMEOUT = 900.0
ROOT_EVERY = 0.2
COMMIT_WAIT_TURNS = 600
"""Seconds, at most, to wait for a status commit after the first one."""
FIGURES = (
    "pass_seconds",
    "observe_seconds",
    "pass_ratio",
    "loop_block_ms_max",
    "root_p95_ms",
    "status_commit_ms_median",
    "rss_mb",
)
SETTINGS_SHOWN = {
    "latency_ms": LATENCY * 1000,
    "sim_boot_seconds": SIM_BOOT_SECONDS,
    "daemon_flags": ["--no-watch"],
}


def _metrics(text: str) -> dict[str, float]:
    """Sample name with labels -> value, from the exposition text."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def _histogram_median(samples: dict[str, float], name: str) -> float | None:
    """The median of a Prometheus histogram, interpolated within its bucket."""
    buckets = sorted(
        (math.inf if le == "+Inf" else float(le), count)
        for key, count in samples.items()
        if key.startswith(f"{name}_bucket{{le=")
        for le in [key.split('"')[1]]
    )
    total = buckets[-1][1] if buckets else 0.0
    if not total:
        return None
    rank, lower, below = total / 2, 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = upper, count
    return lower


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _log_time(log: Path, event: str) -> float | None:
    """Wall time of the first daemon log line with this ``event``."""
    for line in log.read_text(errors="replace").splitlines():
        if f'"event": "{event}"' in line or f'"event":"{event}"' in line:
            return datetime.fromisoformat(json.loads(line)["ts"]).timestamp()
    return None


def _fleet_docs(path: Path, canary: int) -> list[dict[str, Any]]:
    """The simulator's Device documents, ``canary`` of them labelled for the rollout."""
    docs: list[dict[str, Any]] = list(yaml.safe_load_all(path.read_text()))
    picked = 0
    for doc in docs:
        spec = doc["spec"]
        if (
            picked < canary
            and spec["platform"]["arch"] == "amd64"
            and "redundancyGroup" not in spec
        ):
            doc["metadata"]["labels"]["bench"] = "rollout"
            picked += 1
    if picked < canary:
        fail(f"daemon: only {picked} devices fit the rollout, {canary} wanted")
    return docs


async def _observe_alone(sim_endpoints: list[Any], size: int) -> float:
    async with make_http_client() as http:
        started = time.perf_counter()
        facts = await observe(sim_endpoints, http)
        seconds = time.perf_counter() - started
    reachable = sum(f.reachable for f in facts.values())
    if reachable != size:
        fail(f"daemon: observing alone, {size - reachable} of {size} devices unreachable")
    return seconds


async def _pass_seconds(
    http: httpx.AsyncClient, log: Path, proc: asyncio.subprocess.Process
) -> float:
    key_ok = 'gitfirm_reconcile_passes_total{result="success"}'
    key_bad = 'gitfirm_reconcile_passes_total{result="failure"}'
    deadline = time.monotonic() + PASS_TIMEOUT
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            fail(f"daemon: gitfirm run exited with {proc.returncode}; see {log}")
        try:
            samples = _metrics((await http.get("/metrics")).text)
        except httpx.HTTPError:
            samples = {}
        if samples.get(key_bad, 0) > 0:
            fail(f"daemon: the first pass failed; see {log}")
        if samples.get(key_ok, 0) >= 1:
            ended = time.time()
            started = _log_time(log, "revision")
            if started is None:
                fail(f"daemon: no 'revision' log line; see {log}")
            return ended - started
        await asyncio.sleep(0.1)
    fail(f"daemon: no pass within {PASS_TIMEOUT:.0f} s; see {log}")


async def _rollout(http: httpx.AsyncClient, canary: int, log: Path) -> list[float]:
    """GET / until every selected device is done; the latencies, in seconds."""
    latencies: list[float] = []
    deadline = time.monotonic() + ROLLOUT_TIMEOUT
    while time.monotonic() < deadline:
        started = time.perf_counter()
        response = await http.get("/")
        latencies.append(time.perf_counter() - started)
        rollout = response.json()["rollouts"].get("fleet", {})
        counts = rollout.get("counts", {})
        if rollout.get("halted"):
            fail(f"daemon: the rollout halted ({rollout.get('reason')}); see {log}")
        if counts.get("done", 0) == canary:
            return latencies
        await asyncio.sleep(ROOT_EVERY)
    fail(f"daemon: the rollout did not finish in {ROLLOUT_TIMEOUT:.0f} s; see {log}")


async def run_once(size: int, tmp: Path) -> dict[str, Any]:
    """One measured run at ``size`` devices; fails the bench on incomplete work."""
    canary = max(1, size // 100)
    fleet_file = tmp / "fleet.yaml"
    sim_args = ["--release", "1.4", "--key-env", KEY_ENV, "--boot-seconds", str(SIM_BOOT_SECONDS)]
    async with simulator_process(
        size, latency=LATENCY, write_fleet=fleet_file, extra_args=sim_args, start_timeout=300
    ) as sim:
        docs = _fleet_docs(fleet_file, canary)
        policy = policy_yaml(
            TARGET, {"bench": "rollout"}, maxParallel=canary, maxUnavailable=canary
        )
        remote, _ = await asyncio.to_thread(config_repo, tmp / "git", docs, [TARGET], policy)
        observe_seconds = await _observe_alone(sim.endpoints(), size)

        port = free_port()
        log = tmp / "daemon.log"
        env = {
            **os.environ,
            KEY_ENV: sim.api_key,
            "GITFIRM_OPERATOR_TOKEN": OPERATOR_TOKEN,
            "PYTHONUNBUFFERED": "1",
        }
        args = ["-m", "reconciler.cli", "run", "--repo", str(remote), "--state-dir",
                str(tmp / "state"), "--listen", f"127.0.0.1:{port}", "--no-watch"]  # fmt: skip
        with log.open("wb") as sink:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, *args, stdout=sink, stderr=sink, env=env
            )
        try:
            operator = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", timeout=60, headers=operator
            ) as http:
                pass_seconds = await _pass_seconds(http, log, proc)
                latencies = await _rollout(http, canary, log)
                # The first status commit writes every device file; the rollout's own
                # commits follow, one per coalescing interval (10 s). Wait for one of them.
                count = "gitfirm_status_commit_seconds_count"
                samples: dict[str, float] = {}
                for _ in range(COMMIT_WAIT_TURNS):
                    samples = _metrics((await http.get("/metrics")).text)
                    if samples.get(count, 0) >= 2:
                        break
                    await asyncio.sleep(1)
                await asyncio.sleep(12)  # the end state's commit
                samples = _metrics((await http.get("/metrics")).text)
                rss = _peak_rss_mb(proc.pid)
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 120)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
    commit_median = _histogram_median(samples, "gitfirm_status_commit_seconds")
    if commit_median is None:
        fail(f"daemon: no status commit was made; see {log}")
    p95 = (
        statistics.quantiles(latencies, n=20, method="inclusive")[18]
        if len(latencies) > 1
        else latencies[0]
    )
    return {
        "canary": canary,
        "pass_seconds": round(pass_seconds, 2),
        "observe_seconds": round(observe_seconds, 2),
        "pass_ratio": round(pass_seconds / observe_seconds, 3),
        "loop_block_ms_max": round(samples["gitfirm_event_loop_block_max_seconds"] * 1000, 1),
        "root_p95_ms": round(p95 * 1000, 1),
        "root_requests": len(latencies),
        "status_commit_ms_median": round(commit_median * 1000, 1),
        "status_commits": int(samples.get("gitfirm_status_commit_seconds_count", 0)),
        "rss_mb": rss,
    }


async def main(sizes: tuple[int, ...], runs: int) -> None:
    """Every size, ``runs`` times, each run on fresh processes and directories."""
    for size in sizes:
        results = []
        for run in range(1, runs + 1):
            with tempfile.TemporaryDirectory(prefix="gitfirm-daemon-bench-") as tmp:
                results.append(await run_once(size, Path(tmp)))
            emit({"bench": "daemon", "devices": size, "run": run, **SETTINGS_SHOWN, **results[-1]})
        for line in summarize(results, FIGURES, bench="daemon", devices=size, **SETTINGS_SHOWN):
            emit(line)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--runs", type=int, default=RUNS)
    options = parser.parse_args()
    tune_gc()
    asyncio.run(main(tuple(options.devices), options.runs))
