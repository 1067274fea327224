"""SIGTERM parks within the grace: ``gitfirm run`` as a real process, the simulator, restart.

The canary sits in a health gate that would take minutes (its BGP session stays down). A
SIGTERM must end the process well inside the pod's kill timeout (the Kubernetes manifest's
``terminationGracePeriodSeconds``), leaving the journal at the health step; the next
process resumes the canary there, runs the gate (it probes the router again) and only then
moves on. Nobody else is started before the canary passed.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import yaml

from reconciler.planning.progress import Phase
from tests.e2e.test_daemon_process import gitfirm_run
from tests.support.daemon import ALWAYS_OPEN, config_files, free_port, policy_yaml, wait_for
from tests.support.gitrepo import git_env, seeded_remote
from tests.support.rollout import OLD, TARGET, make_device
from tests.support.safety import journal_phases
from tests.support.simulator import KEY_ENV, running_simulator

MANIFEST = Path(__file__).resolve().parents[2] / "deploy/kubernetes/base/statefulset.yaml"
TIMINGS = {"boot_poll": 0.05, "boot_timeout": 20, "stage_poll": 0.05, "stage_timeout": 20,
           "window_poll": 0.1}  # fmt: skip


def kill_timeout() -> float:
    """Seconds the orchestrator waits after SIGTERM before it kills the pod."""
    doc = yaml.safe_load(MANIFEST.read_text("utf-8"))
    return float(doc["spec"]["template"]["spec"]["terminationGracePeriodSeconds"])


def slow_gate_policy() -> str:
    """TARGET, one device at a time, behind a BGP gate that fails for 15 minutes first."""
    doc = yaml.safe_load(policy_yaml(TARGET, window=ALWAYS_OPEN, maxParallel=1))
    doc["spec"]["healthChecks"] = [
        {"name": "bgp", "show": ["ip", "bgp", "summary"], "expect": r"\s\d+\s+\d+\s+N/A$",
         "initialDelay": "1s", "interval": "1s", "timeout": "15m", "failureThreshold": 900},
    ]  # fmt: skip
    return yaml.safe_dump(doc, sort_keys=False)


async def test_sigterm_in_a_long_health_gate_parks_within_the_grace(tmp_path: Path) -> None:
    devices = [make_device(f"r{i}") for i in range(3)]
    for d in devices:
        d.faults.degrade_after_upgrade = True  # whichever device is the canary
    async with running_simulator(devices=devices, boot_seconds=0.5) as fleet:
        files, _ = config_files(tmp_path / "upstream", fleet, [OLD, TARGET])
        files["policies/fleet.yaml"] = slow_gate_policy()
        remote, _ = seeded_remote(tmp_path / "git", files)
        state = tmp_path / "state"
        args = [
            "--repo", str(remote), "--state-dir", str(state),
            "--listen", f"127.0.0.1:{free_port()}", "--poll-interval", "0.3",
            "--observe-interval", "3600", "--status-coalesce", "0",
            "--rollout-timings", json.dumps(TIMINGS),
        ]  # fmt: skip
        env = git_env(tmp_path, {KEY_ENV: fleet.api_key, "PYTHONUNBUFFERED": "1"})
        loop = asyncio.get_running_loop()

        async with gitfirm_run(args, env) as first:
            await wait_for(lambda: "health" in journal_phases(state).values(), 90, "the gate")
            (canary,) = journal_phases(state)
            probes = fleet.device(canary).calls["/show"]
            await wait_for(lambda: fleet.device(canary).calls["/show"] > probes, 30, "a probe")
            sent = loop.time()
            first.process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(first.process.wait(), 300)
            took = loop.time() - sent
        assert code == 0, first.lines[-5:]
        limit = kill_timeout()
        assert took < limit, f"SIGTERM took {took:.1f} s; the pod is killed after {limit} s"
        # Parked at its step: the next process resumes the gate, not a fresh upgrade.
        assert journal_phases(state) == {canary: str(Phase.HEALTH)}
        assert fleet.device(canary).running == TARGET

        # The canary's session comes back; later devices stay healthy after theirs.
        fleet.device(canary).bgp_down = False
        for d in devices:
            d.faults.degrade_after_upgrade = False
        probes = fleet.device(canary).calls["/show"]
        async with gitfirm_run(args, env) as second:
            await wait_for(
                lambda: (
                    set(journal_phases(state).values()) == {str(Phase.DONE)}
                    and len(journal_phases(state)) == len(devices)
                ),
                120,
                "the resumed rollout",
            )
            second.process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.process.wait(), limit) == 0
        assert fleet.device(canary).calls["/show"] > probes, "the health gate was skipped"
        moves = [
            e["device"] + ":" + e["phase"]
            for e in second.events() if e.get("event") == "transition"
        ]  # fmt: skip
        # The canary goes from health to done first; nobody started before it passed.
        assert moves[0] == f"{canary}:health->done", moves
        assert not [m for m in moves if m.startswith(f"{canary}:") and "precheck" in m], moves
        for name in fleet.names:
            adds = [e for e in fleet.device(name).log if e["event"] == "image-add"]
            assert len(adds) == 1, (name, fleet.device(name).log)
