"""``gitfirm demo``: the whole GitOps loop on a simulated fleet, with no setup.

It builds a bare config repository from ``example-repo/`` (device addresses pointed at a
simulator it starts, image URLs at ISOs it builds and signs with the demo key, the
AccessPolicy's signer replaced by a key it generates), starts the daemon, merges a pull
request that opens a maintenance window, and shows the rollout live. Like ``cli.py``, this
module is a user of every stage: it wires, it holds no stage logic.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from reconciler.clock import SystemClock
from reconciler.daemon import Daemon, DaemonSettings
from reconciler.images import minisign
from reconciler.logs import configure_json_logging
from reconciler.model.loader import load_repository
from reconciler.model.state import DesiredState
from reconciler.planning.planner import plan as make_plan
from reconciler.rollout.model import RolloutSettings, Transition
from reconciler.rollout.progress import rollout_progress
from reconciler.simulator.device import VirtualDevice
from reconciler.simulator.iso import iso_file_name, write_iso
from reconciler.simulator.server import SimSettings, Simulator
from reconciler.source.policy import policy_fingerprint

__all__ = ["DEMO_TIMEOUT", "run_demo"]

DEMO_TIMEOUT = 150.0
"""Seconds the rollout may take before the demo gives up (it needs about one minute)."""

_STARTING = {
    "lts": ["1.4.1", "1.4.2"],
    "legacy": ["1.3.7", "1.3.8"],
    "rolling": ["1.5-rolling-202410230007", "2025.11.03-0019-rolling"],
}
_FAST = RolloutSettings(
    boot_timeout=timedelta(seconds=30),
    boot_poll=timedelta(milliseconds=250),
    stage_timeout=timedelta(seconds=30),
    stage_poll=timedelta(milliseconds=250),
    window_poll=timedelta(milliseconds=500),
)


def _git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env
    ).stdout.strip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class _Demo:
    root: Path
    remote: Path
    work: Path
    key: Path
    console: Console

    def commit(self, message: str) -> str:
        _git(self.work, "add", "-A")
        _git(
            self.work,
            "-c", "gpg.format=ssh", "-c", f"user.signingkey={self.key}",
            "-c", "user.name=Demo Admin", "-c", "user.email=admin@example.net",
            "commit", "--quiet", "-S", "-m", message,
        )  # fmt: skip
        _git(self.work, "push", "--quiet", "origin", "HEAD:main")
        return _git(self.work, "rev-parse", "HEAD")


def _starting_images(device: dict[str, Any]) -> list[str]:
    labels = device["metadata"].get("labels", {})
    if labels.get("role") in ("mgmt", "oob"):
        return list(_STARTING["legacy"])
    return list(_STARTING["rolling" if labels.get("train") == "rolling" else "lts"])


def _edit_docs(path: Path, edit: Any) -> None:
    header = path.read_text().splitlines()[0]
    docs = [edit(d) for d in yaml.safe_load_all(path.read_text()) if d]
    path.write_text(header + "\n" + yaml.safe_dump_all(docs, sort_keys=False))


def _prepare_fleet(work: Path, sim_url: str) -> list[VirtualDevice]:
    devices: list[VirtualDevice] = []

    def edit(doc: dict[str, Any]) -> dict[str, Any]:
        name = doc["metadata"]["name"]
        images = _starting_images(doc)
        platform = doc["spec"].get("platform", {})
        devices.append(
            VirtualDevice(
                name=name,
                arch=platform.get("arch", "amd64"),
                flavor=platform.get("flavor", "generic"),
                images=images,
                default=images[-1],
                running=images[-1],
                bgp_peers=[("192.0.2.1", 64512), ("192.0.2.2", 64513)],
            )
        )
        doc["spec"]["address"] = f"{sim_url}/{name}"
        doc["spec"].pop("tls", None)  # the simulator speaks plain HTTP on loopback
        doc["spec"]["insecurePlaintext"] = True
        return doc

    for path in sorted((work / "fleet").glob("*.yaml")):
        _edit_docs(path, edit)
    return devices


def _prepare_images(work: Path, upstream: Path, signing_key: minisign.SecretKey) -> None:
    upstream.mkdir(parents=True, exist_ok=True)

    def edit(doc: dict[str, Any]) -> dict[str, Any]:
        spec = doc["spec"]
        platform = spec["platforms"][0]
        arch, flavor = platform.get("arch", "amd64"), platform.get("flavor", "generic")
        name = iso_file_name(spec["version"], arch, flavor)
        iso = upstream / name
        write_iso(iso, spec["version"], arch, flavor, spec["size"])
        digest = hashlib.sha256(iso.read_bytes()).hexdigest()
        if digest != spec["sha256"]:
            raise SystemExit(f"example-repo is stale: {name} hashes to {digest}")
        sig = minisign.sign_file(iso, signing_key, timestamp=int(time.time()))
        (upstream / f"{name}.minisig").write_text(minisign.format_signature(sig))
        spec["source"] = {"url": iso.as_uri()}
        return doc

    for path in sorted((work / "images").glob("*.yaml")):
        _edit_docs(path, edit)


def _prepare_access(work: Path, public_key: str) -> None:
    def edit(doc: dict[str, Any]) -> dict[str, Any]:
        doc["spec"]["signers"] = [
            {
                "name": "demo-admin",
                "sshKey": public_key,
                "roles": ["admin", "netops-lead", "netops", "release"],
            }
        ]
        return doc

    _edit_docs(work / "policies" / "access.yaml", edit)


def _policies(work: Path, *, merged: bool) -> None:
    """Before the merge every rollout is suspended; the pull request resumes three of them
    and opens a two-hour window starting this hour (UTC)."""
    hour = datetime.now(UTC).hour

    def edit(doc: dict[str, Any]) -> dict[str, Any]:
        spec = doc["spec"]
        name = doc["metadata"]["name"]
        spec["suspend"] = not merged or name == "lab-development"
        strategy = spec.setdefault("strategy", {})
        strategy["pause"] = "3s"
        for check in spec.get("healthChecks", []):
            check.update(initialDelay="1s", interval="1s", timeout="30s", successThreshold=1)
        if name == "lts-fleet":
            # 1.3 has no reboot over the API: those boxes are upgraded by hand.
            spec["selector"]["matchExpressions"] = [
                {"key": "role", "operator": "NotIn", "values": ["mgmt", "oob"]}
            ]
        if merged and name != "lab-development":
            spec["windows"] = [
                {
                    "type": "allow",
                    "schedule": f"0 {hour} * * *",
                    "duration": "2h",
                    "timeZone": "UTC",
                }
            ]
        return doc

    _edit_docs(work / "policies" / "rollout.yaml", edit)


def _setup(
    example: Path, root: Path, sim_url: str, console: Console
) -> tuple[_Demo, list[VirtualDevice], str]:
    remote, work, keys = root / "remote.git", root / "work", root / "keys"
    keys.mkdir(parents=True)
    _git(root, "init", "--quiet", "--bare", "--initial-branch=main", str(remote))
    shutil.copytree(example, work, ignore=shutil.ignore_patterns(".git"))
    _git(work, "init", "--quiet", "--initial-branch=main")
    _git(work, "remote", "add", "origin", str(remote))
    key = keys / "demo-admin"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "admin@example.net", "-f", str(key)],
        check=True,
    )
    public = " ".join(key.with_suffix(".pub").read_text().split()[:2]) + " admin@example.net"
    devices = _prepare_fleet(work, sim_url)
    _prepare_images(
        work, root / "upstream", minisign.read_secret_key(example / "trust/demo/demo.key")
    )
    _prepare_access(work, public)
    _policies(work, merged=False)
    loaded = load_repository(work)
    if loaded.state is None:
        raise SystemExit("demo repository is invalid:\n" + "\n".join(map(str, loaded.errors)))
    pin = policy_fingerprint(next(iter(loaded.state.access_policies.values()), None)) or ""
    demo = _Demo(root, remote, work, key, console)
    demo.commit("Fleet, images and policies (all rollouts suspended)")
    console.print(
        f"[bold]config repo[/]  {remote}  (signed commits, AccessPolicy pinned {pin[:19]}...)"
    )
    return demo, devices, pin


def _show_plan(console: Console, state: DesiredState, daemon: Daemon) -> None:
    progress = rollout_progress(daemon.journal, state.rollout_policies)
    plan = make_plan(state, daemon.state.facts, progress, datetime.now(UTC))
    table = Table(title="gitfirm plan for the pull request", show_lines=False)
    for column in ("policy", "target", "devices", "waves"):
        table.add_column(column)
    for policy in plan.policies:
        waves = " | ".join(f"{w.label}: {len(w.devices)}" for w in policy.waves)
        table.add_row(policy.name, policy.target, str(policy.devices), waves or "-")
    console.print(table)
    counts = ", ".join(f"{n} {a}" for a, n in plan.counts().items() if n)
    console.print(f"  actions: {counts}")


@contextmanager
def _live(console: Console, daemon: Daemon) -> Iterator[Progress]:
    progress = Progress(
        TextColumn("{task.description:<34}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
    )
    tasks: dict[tuple[str, int], TaskID] = {}
    wave_of: dict[str, tuple[str, int]] = {}
    plan = daemon.state.plan
    if plan is not None:
        for policy in plan.policies:
            if policy.suspended:
                continue
            for wave in policy.waves:
                key = (policy.name, wave.index)
                tasks[key] = progress.add_task(
                    f"{policy.name} {wave.label}", total=len(wave.devices)
                )
                for name in wave.devices:
                    wave_of[name] = key

    def on_transition(event: Transition) -> None:
        stamp = event.time.strftime("%H:%M:%S")
        colour = (
            "red"
            if event.to_phase in ("failed", "rollback")
            else "green"
            if event.to_phase == "done"
            else "cyan"
        )
        progress.console.print(
            f"{stamp} {event.policy:<18} {event.device:<13} {event.from_phase} -> "
            f"[{colour}]{event.to_phase}[/]"
            + (f" ({event.target})" if event.to_phase == "stage" else "")
        )
        if event.to_phase in ("done", "failed", "skipped") and event.device in wave_of:
            progress.advance(tasks[wave_of[event.device]])

    daemon.listeners.append(on_transition)
    with progress:
        yield progress


async def _wait(check: Any, seconds: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not check():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.2)
    return True


async def _demo(example: Path, root: Path, console: Console, keep_running: bool) -> int:
    api_key = secrets.token_urlsafe(24)
    webhook_secret = secrets.token_urlsafe(24)
    sim_port, port, operator_port = _free_port(), _free_port(), _free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    demo, devices, pin = _setup(example, root, sim_url, console)
    # Devices drop connections when they reboot; that is the point, not an error to print.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    sim = Simulator(
        devices, SimSettings(api_key=api_key, latency=0.02, bandwidth=0, boot_seconds=1.5)
    )
    await sim.start("127.0.0.1", sim_port)
    console.print(
        f"[bold]simulator[/]    {len(devices)} VyOS routers on {sim_url} (1.3, 1.4 and rolling)"
    )
    log_file = (root / "daemon.log").open("w")
    daemon = Daemon(
        DaemonSettings(
            repo=str(demo.remote),
            state_dir=root / "state",
            listen=f"127.0.0.1:{port}",
            operator_listen=f"127.0.0.1:{operator_port}",
            poll_interval=30,
            observe_interval=3600,
            status_coalesce=1,
            access_pin=pin,
            rollout=_FAST,
        ),
        clock=SystemClock(),
        environ={
            "VYOS_API_KEY_DC_FRA": api_key,
            "VYOS_API_KEY_DC_AMS": api_key,
            "VYOS_API_KEY_EDGE_BER": api_key,
            "GITFIRM_WEBHOOK_SECRET": webhook_secret,
            "GITFIRM_BACKUP_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        },
        formatter=configure_json_logging(stream=log_file),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop))
    try:
        first = _git(demo.work, "rev-parse", "HEAD")
        if not await _wait(lambda: daemon.state.verified == first or task.done(), 60):
            console.print("[red]the daemon did not apply the first revision[/]")
            return 1
        console.print(
            f"[bold]daemon[/]       http://127.0.0.1:{port}  (/healthz /webhooks/github /images)"
            f"\n[bold]operator[/]     http://127.0.0.1:{operator_port}  (/ /metrics /ui/)"
        )
        _policies(demo.work, merged=True)
        pr = load_repository(demo.work)
        assert pr.state is not None
        _show_plan(console, pr.state, daemon)
        sha = demo.commit("Merge pull request #42: resume rollouts, open tonight's window")
        body = b'{"ref": "refs/heads/main"}'
        signature = "sha256=" + hmac.new(webhook_secret.encode(), body, hashlib.sha256).hexdigest()
        async with httpx.AsyncClient() as http:
            await http.post(
                f"http://127.0.0.1:{port}/webhooks/github",
                content=body,
                headers={"X-Hub-Signature-256": signature, "X-GitHub-Event": "push"},
            )
        console.print(f"[bold]merged[/] {sha[:12]}; the webhook woke the daemon\n")
        if not await _wait(lambda: daemon.state.passed == sha, 60):
            console.print("[red]the merge was not applied[/]")
            return 1
        with _live(console, daemon):
            finished = await _wait(lambda: not daemon.rollouts_running(), DEMO_TIMEOUT)
        await daemon.writer.drain()
        _summary(console, demo, sim, sha)
        if keep_running:
            # The operator listener is on loopback only: it is the boundary, no token needed.
            console.print(f"\ndashboard: http://127.0.0.1:{operator_port}/", highlight=False)
            console.print("the simulator and the daemon keep running; Ctrl-C stops them")
            await _until_interrupted()
        return 0 if finished else 1
    finally:
        stop.set()
        await asyncio.wait_for(task, 90)
        await sim.stop()
        log_file.close()


async def _until_interrupted() -> None:
    """Wait for Ctrl-C (SIGINT) or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _summary(console: Console, demo: _Demo, sim: Simulator, sha: str) -> None:
    table = Table(title="The fleet now")
    for column in ("device", "running", "images"):
        table.add_column(column)
    for name in sim.order:
        dev = sim.devices[name]
        table.add_row(name, dev.running, ", ".join(dev.images))
    console.print(table)
    git = f"git --git-dir {demo.remote}"
    console.print("\n[bold]Where to look[/] (the audit trail is plain Git):")
    console.print(f"  {git} log status --format='%h %s'")
    console.print(f"  {git} show status:README.md")
    console.print(f"  {git} log status --grep 'Device: fra-core-1'")
    console.print(f"  {git} notes --ref gitfirm show {sha[:12]}")
    console.print(f"  daemon log (JSON lines): {demo.root / 'daemon.log'}")


def run_demo(
    example: Path, root: Path, console: Console | None = None, *, keep_running: bool = False
) -> int:
    """Run the demo in ``root`` (kept afterwards for inspection); returns the exit code.

    With ``keep_running``, the simulator and the daemon stay up after the rollout, and the
    dashboard's address is printed, until SIGINT or SIGTERM."""
    console = console or Console()
    started = time.monotonic()
    code = asyncio.run(_demo(example, root, console, keep_running))
    console.print(
        f"\ndemo {'finished' if code == 0 else 'FAILED'} in {time.monotonic() - started:.0f} s"
    )
    return code
