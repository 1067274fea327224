"""A daemon, a simulated fleet and a config remote whose images and trust a test writes
itself: for the image-trust and anti-rollback attacks in ``tests/security``.

:func:`trust_fleet` starts the simulator (four devices on 1.4.3: :data:`FIRST` at site
``fra``, :data:`REST`, a redundancy pair, at ``ams``), seeds a bare remote with the fleet
and the given files, and yields a :class:`TrustFleet` whose daemon can be restarted on the
same state directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reconciler.daemon import Daemon
from reconciler.images import minisign
from reconciler.model.kinds import Image, TrustPolicy
from tests.support.daemon import ALWAYS_OPEN, free_port, make_daemon, policy_yaml, wait_for
from tests.support.gitrepo import commit_files, push, seeded_remote
from tests.support.images import SignedImage, make_image
from tests.support.simulator import KEY_ENV, SimFleet, running_simulator

__all__ = [
    "FIRST",
    "REST",
    "TrustFleet",
    "config",
    "image_adds",
    "images_yaml",
    "relabel",
    "rollout_yaml",
    "signed_images",
    "trust_fleet",
    "trust_yaml",
]

FIRST = ("r0003", "r0004")
"""Devices a ``rollout_yaml(..., first=True)`` policy selects (site ``fra``)."""
REST = ("r0001", "r0002")
"""The other devices (site ``ams``, one redundancy group)."""


def signed_images(
    directory: Path, versions: Iterable[str], key: minisign.SecretKey, channel: str = "production"
) -> dict[str, SignedImage]:
    """A simulated ISO of each version, signed with ``key``, by version."""
    return {
        v: make_image(directory, version=v, key=key, channel=channel, size=200_000)
        for v in versions
    }


def relabel(image: Image, **spec: Any) -> Image:
    """The same Image document with some spec fields changed (same bytes, same sha256)."""
    return image.model_copy(update={"spec": image.spec.model_copy(update=spec)})


def images_yaml(images: Iterable[Image]) -> str:
    """A multi-document YAML file of Image documents."""
    return yaml.safe_dump_all([i.model_dump(mode="json", exclude_defaults=True) for i in images])


def trust_yaml(*policies: TrustPolicy) -> str:
    """A multi-document YAML file of TrustPolicies."""
    return yaml.safe_dump_all([p.model_dump(mode="json", exclude_defaults=True) for p in policies])


def rollout_yaml(
    target: str, *, first: bool = False, suspend: bool = False, **strategy: Any
) -> str:
    """The one RolloutPolicy ``fleet``: to ``target``, for :data:`FIRST` or all devices."""
    doc = yaml.safe_load(
        policy_yaml(
            target,
            selector={"gitfirm.io/site": "fra"} if first else None,
            window=ALWAYS_OPEN,
            **strategy,
        )
    )
    doc["spec"]["suspend"] = suspend
    return yaml.safe_dump(doc, sort_keys=False)


def config(images: Iterable[Image], trust: str, policy: str) -> dict[str, str]:
    """The config files of a test: Images, TrustPolicies (YAML) and the RolloutPolicy."""
    return {
        "images/images.yaml": images_yaml(images),
        "trust/trust.yaml": trust,
        "policies/fleet.yaml": policy,
    }


def image_adds(fleet: SimFleet, names: Iterable[str]) -> int:
    """How many ``/image add`` the named simulated devices received."""
    return sum(1 for n in names for event in fleet.device(n).log if event["event"] == "image-add")


@dataclass
class TrustFleet:
    """The remote, a clone to merge from, the simulator and the running daemon."""

    tmp: Path
    remote: Path
    work: Path
    fleet: SimFleet
    port: int
    logs: io.StringIO = field(default_factory=io.StringIO)
    daemon: Daemon | None = None
    _stop: asyncio.Event | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def running(self) -> Daemon:
        """The daemon now running."""
        assert self.daemon is not None
        return self.daemon

    def merge(self, files: Mapping[str, str | None], message: str) -> str:
        """Commit to main and push, as merging a pull request would."""
        sha = commit_files(self.work, files, message)
        push(self.work)
        return sha

    def versions(self) -> dict[str, str]:
        """What every simulated device runs now."""
        return {n: self.fleet.device(n).running for n in self.fleet.names}

    async def start(self) -> Daemon:
        """Start a daemon on the state directory (a restart when one ran before)."""
        self.daemon = make_daemon(
            self.remote,
            self.tmp / "state",
            self.port,
            {KEY_ENV: self.fleet.api_key},
            self.logs,
            poll_interval=0.2,
            status_coalesce=0,
        )
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self.daemon.run(self._stop))
        daemon = self.daemon
        await wait_for(lambda: daemon.state.desired is not None or self._task is None
                       or self._task.done(), 30, "start")  # fmt: skip
        if self._task.done():
            self._task.result()
        return daemon

    async def stop(self) -> None:
        """Stop the daemon (SIGTERM's path) and wait for it."""
        if self._stop is not None and self._task is not None:
            self._stop.set()
            await asyncio.wait_for(self._task, 60)
        self._stop = self._task = None

    async def applied(self, sha: str, timeout: float = 30) -> None:
        """Wait until ``sha`` is the desired revision and a pass ended with it in force."""
        daemon = self.running
        await wait_for(
            lambda: daemon.state.verified == sha and daemon.state.passed == sha,
            timeout,
            f"revision {sha[:8]} applied",
        )

    async def settle(self) -> None:
        """Wait until no rollout task runs."""
        daemon = self.running
        await wait_for(lambda: not daemon.rollouts_running(), 60, "rollouts to end")


@contextlib.asynccontextmanager
async def trust_fleet(tmp: Path, files: Mapping[str, str]) -> AsyncIterator[TrustFleet]:
    """Run the simulator and a daemon on a remote seeded with the fleet and ``files``."""
    async with running_simulator(4, releases=["1.4"]) as fleet:
        docs = [d.model_dump(mode="json", exclude_defaults=True) for d in fleet.device_docs()]
        seeded = {"fleet/devices.yaml": yaml.safe_dump_all(docs, sort_keys=False), **files}
        remote, work = seeded_remote(tmp / "git", seeded)
        ops = TrustFleet(tmp, remote, work, fleet, free_port())
        await ops.start()
        try:
            yield ops
        finally:
            await ops.stop()
