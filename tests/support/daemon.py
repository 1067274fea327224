"""A whole gitfirm under test: a bare config remote, a simulated fleet and a running daemon.

Use :func:`running_gitops` in an async test; it yields a :class:`GitOps` with the remote,
a working clone to push "merged pull requests" from, the simulator and the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from reconciler.clock import Clock
from reconciler.daemon import Daemon, DaemonSettings
from reconciler.forge.protocol import PullRequests
from reconciler.logs import configure_json_logging
from reconciler.rollout.model import RolloutSettings
from tests.support.gitrepo import commit_files, git, push, seeded_remote
from tests.support.images import make_image
from tests.support.simulator import KEY_ENV, SimFleet, running_simulator

__all__ = [
    "ALWAYS_OPEN",
    "FAST_ROLLOUT",
    "GitOps",
    "config_files",
    "free_port",
    "make_daemon",
    "policy_yaml",
    "running_gitops",
    "wait_for",
]

FAST_ROLLOUT = RolloutSettings(
    boot_timeout=timedelta(seconds=20),
    boot_poll=timedelta(milliseconds=50),
    stage_timeout=timedelta(seconds=20),
    stage_poll=timedelta(milliseconds=50),
    window_poll=timedelta(milliseconds=100),
)


ALWAYS_OPEN = ("0 0 * * *", "24h")
"""A ``window`` for :func:`policy_yaml` that is always open and plans fast."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def policy_yaml(
    target: str,
    *,
    selector: Mapping[str, str] | None = None,
    window: tuple[str, str] = ("* * * * *", "1h"),
    **strategy: Any,
) -> str:
    """A RolloutPolicy that is always inside its window, with a fast strategy.

    ``window`` is (schedule, duration); :data:`ALWAYS_OPEN` says "always" with one window a
    day, which the planner's window search walks far faster than one opening every minute.
    """
    doc = {
        "apiVersion": "gitfirm.io/v1",
        "kind": "RolloutPolicy",
        "metadata": {"name": "fleet"},
        "spec": {
            "selector": {"matchLabels": dict(selector or {})},
            "target": {"version": target},
            "strategy": {"canary": 1, "waves": [100], "maxParallel": 2, "pause": "0s", **strategy},
            "windows": [{"schedule": window[0], "duration": window[1]}],
        },
    }
    return yaml.safe_dump(doc, sort_keys=False)


async def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` every 50 ms until it holds; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class GitOps:
    """Everything a GitOps end-to-end test touches."""

    remote: Path
    work: Path
    fleet: SimFleet
    daemon: Daemon
    port: int
    logs: io.StringIO
    target_image: str

    def merge(self, files: Mapping[str, str | None], message: str, **kw: Any) -> str:
        """Commit to main and push, as merging a pull request would."""
        sha = commit_files(self.work, files, message, **kw)
        push(self.work)
        return sha

    def status_log(self, *args: str) -> str:
        """``git log status ...`` in the remote."""
        return git(self.remote, "log", "status", *args)

    def versions(self) -> dict[str, str]:
        """What every simulated device runs now."""
        return {n: self.fleet.device(n).running for n in self.fleet.names}


def config_files(
    upstream: Path, fleet: SimFleet, versions: Sequence[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """A config repository for ``fleet``: its devices, a signed image for each of
    ``versions`` (ISOs written to ``upstream``, one release key) and the TrustPolicy that
    pins that key; returns the files and the Image name of each version. Add a policy to
    roll something out."""
    images = [make_image(upstream, version=versions[-1])]
    images += [make_image(upstream, version=v, key=images[0].key) for v in versions[:-1]]
    docs = [d.model_dump(mode="json", exclude_defaults=True) for d in fleet.device_docs()]
    files = {
        "fleet/devices.yaml": yaml.safe_dump_all(docs, sort_keys=False),
        "images/images.yaml": yaml.safe_dump_all(
            [i.image.model_dump(mode="json") for i in images[1:] + images[:1]]
        ),
        "trust/trust.yaml": yaml.safe_dump(images[0].trust.model_dump(mode="json")),
    }
    return files, {i.image.spec.version: i.image.name for i in images}


def make_daemon(
    remote: Path,
    state_dir: Path,
    port: int,
    environ: Mapping[str, str],
    logs: io.StringIO,
    **settings: Any,
) -> Daemon:
    """A daemon on ``remote`` with test timings: compressed rollout steps, no periodic
    observation, no watch on the (local) remote unless ``settings`` ask for one;
    ``settings`` may also hold ``pull_requests``, the forge client proposals use, and
    ``clock``, the daemon's (default: the system clock)."""
    pull_requests: PullRequests | None = settings.pop("pull_requests", None)
    clock: Clock | None = settings.pop("clock", None)
    defaults: dict[str, Any] = {
        "observe_interval": 3600,
        "watch_local": False,
        "rollout": FAST_ROLLOUT,
    }
    return Daemon(
        DaemonSettings(
            repo=str(remote),
            state_dir=state_dir,
            listen=f"127.0.0.1:{port}",
            **{**defaults, **settings},
        ),
        clock=clock,
        environ=dict(environ),
        formatter=configure_json_logging(stream=logs),
        pull_requests=pull_requests,
    )


@contextlib.asynccontextmanager
async def running_gitops(
    tmp: Path,
    *,
    devices: int = 4,
    current: str = "1.4.3",
    target: str = "1.4.4",
    environ: Mapping[str, str] | None = None,
    extra_files: Mapping[str, str] | None = None,
    poll_interval: float = 0.2,
    watch_local: bool = False,
    access_pin: str | None = None,
    key: Any = None,
    pull_requests: PullRequests | None = None,
    settings: Mapping[str, Any] | None = None,
) -> AsyncIterator[GitOps]:
    """Start a simulator, a config remote whose policy holds devices at ``current``, and a
    daemon polling it; ``target`` is an approved, signed image ready to roll out.
    ``settings`` are further DaemonSettings (a forge, say)."""
    async with running_simulator(devices, releases=["1.4"]) as fleet:
        files, names = config_files(tmp / "upstream", fleet, [current, target])
        files.update({"policies/fleet.yaml": policy_yaml(current), **(extra_files or {})})
        remote, work = seeded_remote(tmp / "git", files)
        if key is not None:
            # The first commit of a strict repository must be signed by its admin too.
            git(work, "-c", "gpg.format=ssh", "-c", f"user.signingkey={key.private}",
                "commit", "--amend", "--quiet", "--no-edit", "-S")  # fmt: skip
            push(work, force=True)
        logs = io.StringIO()
        port = free_port()
        daemon = make_daemon(
            remote,
            tmp / "state",
            port,
            {KEY_ENV: fleet.api_key, **(environ or {})},
            logs,
            poll_interval=poll_interval,
            watch_local=watch_local,
            status_coalesce=0,
            access_pin=access_pin,
            pull_requests=pull_requests,
            **dict(settings or {}),
        )
        stop = asyncio.Event()
        task = asyncio.create_task(daemon.run(stop))
        try:
            await wait_for(lambda: daemon.state.desired is not None or task.done(), 30, "start")
            if task.done():
                task.result()
            yield GitOps(remote, work, fleet, daemon, port, logs, names[target])
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)
