"""One chaos scenario through the real daemon process.

:func:`run_scenario` starts the simulator in this event loop (so it reads every router's
event log and flips faults directly), a bare config remote with real git, and
``python -m reconciler.cli run`` as a child process. It pushes the rollout, plays the
scenario's timeline (commits, webhooks, faults, operator config changes, SIGKILL and
SIGTERM with a restart on the same state dir), lets the fleet settle, stops the daemon and
hands everything to :func:`tests.chaos.invariants.check`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import json
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml

from reconciler.images.minisign import generate_keypair
from reconciler.model.kinds import Window
from reconciler.planning.windows import allowed_until, is_allowed
from reconciler.simulator.device import VirtualDevice
from reconciler.simulator.events import fleet_events
from reconciler.simulator.fleet import fleet_documents, make_fleet
from tests.chaos.invariants import ChaosRecord, ConfigMark, DeviceFinal, Violation, check
from tests.chaos.scenario import TRAINS, Action, Scenario
from tests.support.daemon import free_port
from tests.support.gitrepo import commit_files, git, git_env, push, seeded_remote
from tests.support.images import make_image, trust_policy
from tests.support.simulator import KEY_ENV, SimFleet, running_simulator

__all__ = ["ChaosResult", "run_scenario"]

WEBHOOK_SECRET = "chaos-hook-secret-41c7"
TIMINGS = {
    "boot_timeout": 5,
    "boot_poll": 0.2,
    "stage_timeout": 4,
    "stage_poll": 0.2,
    "window_poll": 0.5,
}
"""Engine timings for ``--rollout-timings``: simulated boots take about a second."""
_READY_TIMEOUT = 30.0
_EXIT_TIMEOUT = 25.0
_QUIET = 6.0
"""Seconds with no router event and no transition that count as settled: longer than any
one step may take (boot_timeout)."""
_QUIET_SLOW = 17.0
"""The same with a router answering late (a 504 or slow faults): an add the gateway gave up
on runs silently for the simulator's hang (5 s), then the daemon watches for it
(stage_timeout, 4 s); a slow router stretches each call of the boot wait and health gate
that follow (boot_timeout 5 s, health timeout 4 s) without a router event in between."""
_SLOW_FAULTS = frozenset({"gateway_timeout", "slow_seconds"})
_SETTLE_TIMEOUT = 60.0
_STEP = 10.0
"""The policies' ``maxStepDuration`` in seconds: a reboot plus its health gate fits in it,
and so does a 20 s window (the default, 30 minutes, would never fit one: no reboot)."""
_ALWAYS = {"schedule": "0 0 * * *", "duration": "24h"}
_WINDOWS: dict[str, list[dict[str, str]]] = {
    "open": [_ALWAYS],
    "short": [{"schedule": "* * * * *", "duration": "20s"}],
    "deny": [_ALWAYS, {"type": "deny", "schedule": "*/2 * * * *", "duration": "20s"}],
}
_HEALTH = {
    "name": "bgp-established",
    "show": ["ip", "bgp", "summary"],
    "reject": r"\b(Idle|Active|Connect)\b",
    "initialDelay": "1s",
    "interval": "1s",
    "timeout": "4s",
    "retries": 1,
    "failureThreshold": 1,
}
_POLICY = {"1.4": "edge-14", "rolling": "edge-15"}
_LABEL = {"1.4": "1.4", "rolling": "1.5"}
_CHANNEL = {"1.4": "production", "rolling": "testing"}
"""A channel per train (channels are a fixed set): anti-rollback treats a channel as one
timeline in which every LTS release is older than every rolling build
(reconciler/planning/rollback.py), so in a shared channel, once a rolling router completed,
every later 1.4 target was blocked as a rollback."""


@dataclass
class ChaosResult:
    """What one scenario found."""

    scenario: Scenario
    violations: list[Violation]
    notes: list[str] = field(default_factory=list)
    """Things worth a look that are not invariants (a slow SIGTERM, a daemon crash)."""


@dataclass
class _Daemon:
    """The ``gitfirm run`` child of the moment, and every line every child wrote."""

    args: list[str]
    env: dict[str, str]
    port: int
    lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stops: list[float] = field(default_factory=list)
    process: asyncio.subprocess.Process | None = None
    readers: list[asyncio.Task[None]] = field(default_factory=list)

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.lines.append(line.decode(errors="replace"))

    async def start(self) -> None:
        """Start a child and wait until it answers ``/readyz``."""
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "reconciler.cli", "run", *self.args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=self.env,
        )  # fmt: skip
        assert self.process.stdout is not None and self.process.stderr is not None
        self.readers = [
            asyncio.create_task(self._read(self.process.stdout)),
            asyncio.create_task(self._read(self.process.stderr)),
        ]
        deadline = time.monotonic() + _READY_TIMEOUT
        async with httpx.AsyncClient(timeout=2) as http:
            while time.monotonic() < deadline and self.process.returncode is None:
                with contextlib.suppress(httpx.HTTPError):
                    url = f"http://127.0.0.1:{self.port}/readyz"
                    if (await http.get(url)).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        self.notes.append(f"daemon not ready after {_READY_TIMEOUT:.0f}s")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def stop(self, how: signal.Signals) -> None:
        """Send ``how``; after SIGTERM wait for the exit, killing it past the limit."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        self.stops.append(time.time())
        process.send_signal(how)
        try:
            code = await asyncio.wait_for(process.wait(), _EXIT_TIMEOUT)
        except TimeoutError:
            self.notes.append(f"SIGTERM: no exit within {_EXIT_TIMEOUT:.0f}s, killed")
            process.kill()
            code = await process.wait()
        if how == signal.SIGTERM and code != 0:
            self.notes.append(f"SIGTERM: exit code {code}")
        await asyncio.wait_for(asyncio.gather(*self.readers, return_exceptions=True), 10)

    def transitions(self) -> list[dict[str, Any]]:
        """Every ``transition`` log line of every child, with a ``wall`` time."""
        out = []
        for line in self.lines:
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict) and event.get("event") == "transition":
                    event["wall"] = datetime.fromisoformat(event["ts"]).timestamp()
                    out.append(event)
        return out


def _policy(release: str, target: str, windows: str, pause: str, suspend: bool) -> str:
    doc = {
        "apiVersion": "gitfirm.io/v1",
        "kind": "RolloutPolicy",
        "metadata": {"name": _POLICY[release]},
        "spec": {
            "selector": {"matchLabels": {"family": _LABEL[release]}},
            "target": {"version": target},
            "strategy": {
                "canary": 1,
                "waves": [50, 100],
                "maxParallel": 2,
                "pause": pause,
                "maxStepDuration": f"{_STEP:.0f}s",
            },
            "windows": _WINDOWS[windows],
            "healthChecks": [_HEALTH],
            "suspend": suspend,
        },
    }
    return yaml.safe_dump(doc, sort_keys=False)


@dataclass
class _Repo:
    """The config repository and what its policies say now."""

    work: Path
    scenario: Scenario
    images: dict[str, str]
    """Version -> Image document YAML (all built up front, published on demand)."""
    published: list[str]
    targets: dict[str, str]
    suspended: dict[str, bool] = field(default_factory=dict)
    commits: int = 0

    def files(self) -> dict[str, str]:
        docs = "---\n".join(self.images[v] for v in self.published)
        out = {"images/images.yaml": docs}
        for release, target in self.targets.items():
            out[f"policies/{_POLICY[release]}.yaml"] = _policy(
                release,
                target,
                self.scenario.windows,
                self.scenario.pause,
                self.suspended.get(release, False),
            )
        return out

    async def commit(self, message: str, extra: Mapping[str, str] | None = None) -> None:
        self.commits += 1
        files = {**self.files(), **(extra or {})}

        def run() -> None:
            commit_files(self.work, files, message)
            push(self.work)

        await asyncio.to_thread(run)


def _fleet(scenario: Scenario) -> list[VirtualDevice]:
    return make_fleet(
        scenario.devices,
        seed=scenario.seed,
        releases=["1.4", "1.4", "rolling", "rolling"],
        arch="amd64",
    )


def _release(device: VirtualDevice) -> str:
    return "1.4" if device.family == "1.4" else "rolling"


async def _webhook(port: int) -> None:
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    mac = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    with contextlib.suppress(httpx.HTTPError):
        async with httpx.AsyncClient(timeout=3) as http:
            await http.post(
                f"http://127.0.0.1:{port}/webhooks/github",
                content=body,
                headers={"X-Hub-Signature-256": f"sha256={mac}", "X-GitHub-Event": "push"},
            )


async def _operator_change(fleet: SimFleet, device: str, n: int) -> ConfigMark | None:
    """An operator's ``set ... description chaos-N`` and ``save`` over the device's API."""
    path = ("interfaces", "dummy", "dum0", "description")
    value = f"chaos-{n}"
    url = fleet.url(device)
    key = fleet.api_key
    async with httpx.AsyncClient(timeout=3) as http:
        try:
            for endpoint, command in (
                ("/configure", {"op": "set", "path": [*path, value]}),
                ("/config-file", {"op": "save"}),
            ):
                data = {"data": json.dumps(command), "key": key}
                if (await http.post(url + endpoint, data=data)).status_code != 200:
                    return None
        except httpx.HTTPError:
            return None
    return ConfigMark(device, path, value, time.time())


class _Player:
    """Plays one scenario's actions against the daemon, the repository and the fleet."""

    def __init__(self, scenario: Scenario, fleet: SimFleet, repo: _Repo, daemon: _Daemon):
        self.scenario, self.fleet, self.repo, self.daemon = scenario, fleet, repo, daemon
        self.rng = random.Random(scenario.seed * 7919)
        self.marks: list[ConfigMark] = []

    async def play(self, action: Action) -> None:
        release = _release(self.fleet.device(action.device))
        if action.kind in ("unrelated", "burst"):
            for _ in range(3 if action.kind == "burst" else 1):
                note = {"notes/README.md": f"chaos note {self.repo.commits}\n"}
                await self.repo.commit("Unrelated: notes", note)
        elif action.kind == "webhook":
            await _webhook(self.daemon.port)
        elif action.kind == "suspend":
            now = self.repo.suspended.get(release, False)
            self.repo.suspended[release] = not now
            await self.repo.commit(f"{'Resume' if now else 'Suspend'} {_POLICY[release]}")
        elif action.kind in ("retarget", "new-image"):
            newest = TRAINS[release][2]
            if newest not in self.repo.published:
                self.repo.published.append(newest)
            if action.kind == "retarget":
                self.repo.targets[release] = newest
            await self.repo.commit(f"{action.kind}: {newest}")
        elif action.kind == "fault":
            self.fleet.device(action.device).faults.update(action.faults)
        elif action.kind == "config":
            device = action.device
            if action.phase:
                # Once the image is in (a download takes about a second), change the config
                # before the activation: the change must survive the upgrade.
                device = await self._entered(action.phase) or device
                await asyncio.sleep(1.5)
            mark = await _operator_change(self.fleet, device, len(self.marks))
            if mark is not None:
                self.marks.append(mark)
        elif action.kind in ("sigkill", "sigterm"):
            await self._restart(signal.SIGKILL if action.kind == "sigkill" else signal.SIGTERM)
        elif action.kind == "sigkill-in":
            await self._entered(action.phase)
            await self._restart(signal.SIGKILL)

    async def _entered(self, phase: str) -> str | None:
        """Wait (five seconds at most) until some device enters ``phase``; which one."""
        seen = len(self.daemon.transitions())
        for _ in range(100):
            for t in self.daemon.transitions()[seen:]:
                if str(t["phase"]).endswith("->" + phase):
                    return str(t["device"])
            await asyncio.sleep(0.05)
        return None

    async def _restart(self, how: signal.Signals) -> None:
        await self.daemon.stop(how)
        await asyncio.sleep(self.rng.uniform(0.0, 1.5))
        await self.daemon.start()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        for action in self.scenario.actions:
            delay = started + action.at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.play(action)

    async def settle(self) -> bool:
        """Resume every policy, clear transient faults, wait for quiet; True if it got quiet.

        Quiet is counted only while the allow window fits a whole step (``_STEP``): a
        staged router rightly waits, in flight, until a reboot can start and end inside it.
        Time outside it pauses the count instead of resetting it, and the settling budget
        is spent only then too: a short window (20 s a minute, of which 10 fit a step) ran
        out of a budget spent over all its open time while the fleet, done, still had to
        show 6 quiet seconds in a fitting stretch (seeds 44, 47, 50, 55, 1045)."""
        if not self.daemon.running:
            await self.daemon.start()
        if any(self.repo.suspended.values()):
            self.repo.suspended.clear()
            await self.repo.commit("Resume every policy")
        for device in self.fleet.sim.devices.values():
            device.faults.update({"unreachable": False, "http_status": None, "slow_seconds": 0})
        windows = [Window.model_validate(w) for w in _WINDOWS[self.scenario.windows]]
        enough = _QUIET_SLOW if _slow(self.scenario) else _QUIET
        loop = asyncio.get_running_loop()
        budget, quiet, seen, last = _SETTLE_TIMEOUT, 0.0, (-1, -1), loop.time()
        while budget > 0:
            await asyncio.sleep(0.2)
            tick, last = loop.time() - last, loop.time()
            wall = datetime.now(UTC)
            fits = _fits(windows, wall)
            if fits:
                budget -= tick
            # Not every log line: an idle daemon may log a pass or an empty rollout each poll.
            now = (
                sum(len(d.log) for d in self.fleet.sim.devices.values()),
                len(self.daemon.transitions()),
            )
            if now != seen:
                seen, quiet = now, 0.0
            elif fits:
                quiet += tick
                if quiet >= enough:
                    return True
        return False


def _slow(scenario: Scenario) -> bool:
    """Whether some router of ``scenario`` answers late at some point (504 or slow)."""
    faults = [*scenario.faults.values(), *(a.faults for a in scenario.actions)]
    return any(f.get(k) for f in faults for k in _SLOW_FAULTS)


def _fits(windows: list[Window], now: datetime) -> bool:
    """Whether a disruptive step of ``_STEP`` seconds may start now (the machine's rule)."""
    until = allowed_until(windows, now)
    return is_allowed(windows, now) and (until is None or until - now >= timedelta(seconds=_STEP))


def _status(
    remote: Path, names: list[str]
) -> tuple[dict[str, tuple[str, str | None]], set[tuple[str, str]], set[tuple[str, str]]]:
    """Phase and desired version per device, every (device, phase reached) trailer, and
    every (device, phase reached) event of any commit's rollouts/<policy>.yaml."""
    phases: dict[str, tuple[str, str | None]] = {}
    for name in names:
        with contextlib.suppress(RuntimeError):
            doc = yaml.safe_load(git(remote, "show", f"status:devices/{name}.yaml"))
            desired = (doc.get("desired") or {}).get("version")
            phases[name] = (str(doc.get("phase")), desired)
    reached: set[tuple[str, str]] = set()
    with contextlib.suppress(RuntimeError):
        device = ""
        for line in git(remote, "log", "status", "--format=%B").splitlines():
            key, _, value = line.partition(": ")
            if key == "Device":
                device = value.strip()
            elif key == "Phase" and device:
                reached.add((device, value.strip().rpartition("->")[2]))
    return phases, reached, _rollout_events(remote)


_MESSAGE = re.compile(r"^(\S+) -> (\S+)")
"""A rollout event's message: ``<from> -> <to>``, then the target and detail."""


def _rollout_events(remote: Path) -> set[tuple[str, str]]:
    """(device, phase reached) from the events of every status commit's rollout files
    (one ``git cat-file --batch`` for them all: a run makes hundreds of commits)."""
    try:
        commits = git(remote, "rev-list", "status").split()
    except RuntimeError:
        return set()
    paths = [f"{c}:rollouts/{policy}.yaml" for c in commits for policy in _POLICY.values()]
    done = subprocess.run(
        ["git", "cat-file", "--batch"], cwd=remote, input=("\n".join(paths) + "\n").encode(),
        capture_output=True, timeout=120, check=True, env=git_env(None),
    )  # fmt: skip
    found: set[tuple[str, str]] = set()
    out, at = done.stdout, 0
    while at < len(out):
        end = out.index(b"\n", at)
        parts = out[at:end].split()
        at = end + 1
        if len(parts) != 3:  # "<path> missing"
            continue
        size = int(parts[2])
        doc = yaml.safe_load(out[at : at + size].decode()) or {}
        at += size + 1
        for event in doc.get("events") or []:
            if match := _MESSAGE.match(str(event.get("message", ""))):
                found.add((str(event.get("device")), match.group(2)))
    return found


async def run_scenario(scenario: Scenario, workdir: Path) -> ChaosResult:
    """Run ``scenario`` in ``workdir`` (which it fills) and check the invariants; the
    outcome is also written to ``workdir/record.json``."""
    started = time.monotonic()
    devices = _fleet(scenario)
    for device in devices:
        device.faults.update(scenario.faults.get(device.name, {}))
    initial = {d.name: list(d.images) for d in devices}
    families = {d.name: d.family for d in devices}
    async with running_simulator(
        devices=devices,
        seed=scenario.seed,
        latency=0.02,
        bandwidth=300_000,
        boot_seconds=scenario.boot_seconds,
        upstream_timeout=4.0,
        hang_seconds=5.0,
    ) as fleet:
        key = generate_keypair()
        upstream = workdir / "upstream"
        images = {}
        for release, train in TRAINS.items():
            for version in train:
                signed = make_image(upstream, version=version, key=key, channel=_CHANNEL[release])
                images[version] = yaml.safe_dump(signed.image.model_dump(mode="json"))
        channels = tuple(_CHANNEL.values())
        trust = yaml.safe_dump(
            trust_policy({"release": key.public}, channels=channels).model_dump(mode="json")
        )
        docs = fleet_documents(devices, fleet.url, key_env=KEY_ENV)
        for i, doc in enumerate(docs):
            # Consecutive devices share a release (see _fleet), so every pair is in one policy.
            doc["spec"]["redundancyGroup"] = f"pair-{i // 2 + 1}"
        groups = {
            d["metadata"]["name"]: d["spec"]["redundancyGroup"]
            for d in docs
            if "redundancyGroup" in d["spec"]
        }
        repo = _Repo(
            work=workdir / "git" / "work",
            scenario=scenario,
            images=images,
            published=[t[0] for t in TRAINS.values()] + [t[1] for t in TRAINS.values()],
            targets={release: train[0] for release, train in TRAINS.items()},
        )
        files = {
            **repo.files(),
            "fleet/devices.yaml": yaml.safe_dump_all(docs, sort_keys=False),
            "trust/trust.yaml": trust,
        }
        remote, _ = await asyncio.to_thread(seeded_remote, workdir / "git", files)
        port = free_port()
        args = [
            "--repo", str(remote), "--state-dir", str(workdir / "state"),
            "--listen", f"127.0.0.1:{port}", "--poll-interval", "0.3",
            "--observe-interval", "2", "--status-coalesce", "0", "--no-watch",
            "--rollout-timings", json.dumps(TIMINGS),
        ]  # fmt: skip
        env = git_env(
            workdir,
            {KEY_ENV: fleet.api_key, "GITFIRM_WEBHOOK_SECRET": WEBHOOK_SECRET,
             "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        daemon = _Daemon(args, env, port)
        player = _Player(scenario, fleet, repo, daemon)
        try:
            await daemon.start()
            repo.targets = {release: train[1] for release, train in TRAINS.items()}
            await repo.commit("Roll both trains forward")
            await player.run()
            quiescent = await player.settle()
            await daemon.stop(signal.SIGTERM)
        finally:
            if daemon.process is not None and daemon.process.returncode is None:
                daemon.process.kill()
                await daemon.process.wait()
        events = fleet_events(fleet.sim.devices.values(), time.time() - fleet.sim.now())
        final = {
            d.name: DeviceFinal(d.running, d.dead, d.bgp_down, d.config)
            for d in fleet.sim.devices.values()
        }
    names = [d.name for d in devices]
    phases, reached, rollout_events = await asyncio.to_thread(_status, remote, names)
    windows = [Window.model_validate(w) for w in _WINDOWS[scenario.windows]]
    record = ChaosRecord(
        events=events,
        families=families,
        initial=initial,
        final=final,
        groups=groups,
        windows={name: windows for name in names},
        status_phases=phases,
        status_transitions=reached,
        status_events=rollout_events,
        transitions=daemon.transitions(),
        stops=daemon.stops,
        marks=player.marks,
        boot_seconds=scenario.boot_seconds,
        quiescent=quiescent,
    )
    (workdir / "daemon.log").write_text("".join(daemon.lines), encoding="utf-8")
    (workdir / "events.json").write_text(json.dumps(events, indent=1), encoding="utf-8")
    notes = list(daemon.notes)
    if not quiescent:
        notes.append(f"fleet still busy after {_SETTLE_TIMEOUT:.0f}s of window fit for a step")
    if any("Traceback" in line for line in daemon.lines):
        notes.append("a traceback in the daemon's log")
    starts = sum('"rollout-start"' in line for line in daemon.lines)
    if starts > 10:
        notes.append(f"{starts} rollout starts")
    violations = check(record)
    report = [scenario.describe(), *notes, *(v.line() for v in violations)]
    (workdir / "violations.txt").write_text("\n".join(report) + "\n", encoding="utf-8")
    outcome = {
        "seed": scenario.seed,
        "scenario": scenario.describe(),
        "devices": scenario.devices,
        "windows": scenario.windows,
        "faults": scenario.faults,
        "actions": [dataclasses.asdict(a) for a in scenario.actions],
        "violations": [v.line() for v in violations],
        "notes": notes,
        "quiescent": quiescent,
        "duration": round(time.monotonic() - started, 1),
    }
    (workdir / "record.json").write_text(json.dumps(outcome, indent=1) + "\n", encoding="utf-8")
    return ChaosResult(scenario, violations, notes)
