"""Adversarial helpers for tests/security: a recording "attacker" server and a daemon harness.

:func:`attacker_server` serves HTTP (or HTTPS with a throw-away self-signed certificate) on
a loopback address such as 127.0.0.9 and records every request it receives, so a test can
assert that no secret ever reached it. :func:`secured_gitops` starts a simulator, a config
remote with extra documents, and a real :class:`~reconciler.daemon.Daemon` with any
``DaemonSettings`` the test gives (secret policy, operator surfaces).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from tests.support.daemon import GitOps, config_files, free_port, make_daemon, policy_yaml, wait_for
from tests.support.gitrepo import seeded_remote
from tests.support.simulator import KEY_ENV, running_simulator
from tests.support.tls import self_signed

__all__ = ["Attacker", "attacker_server", "evil_device", "secured_gitops"]


@dataclass
class Attacker:
    """A loopback server that records every request (headers and body)."""

    url: str
    requests: list[bytes] = field(default_factory=list)

    def received(self, secret: str) -> bool:
        """Whether ``secret`` appeared in any request line, header or body."""
        return any(secret.encode() in raw for raw in self.requests)


def _tls_context(directory: Path, host: str) -> ssl.SSLContext:
    pem = self_signed(directory, host)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pem.cert, pem.key)
    return context


@contextlib.asynccontextmanager
async def attacker_server(
    host: str = "127.0.0.9", *, tls_dir: Path | None = None
) -> AsyncIterator[Attacker]:
    """Serve on ``host`` (HTTPS when ``tls_dir`` is given) and record every request."""
    scheme = "https" if tls_dir is not None else "http"
    port = _free_port_on(host)
    attacker = Attacker(f"{scheme}://{host}:{port}")

    async def record(request: web.Request) -> web.Response:
        head = f"{request.method} {request.path_qs}\n" + "".join(
            f"{k}: {v}\n" for k, v in request.headers.items()
        )
        attacker.requests.append(head.encode() + await request.read())
        return web.json_response({"success": True, "data": "1.4.3", "error": None})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    context = _tls_context(tls_dir, host) if tls_dir is not None else None
    await web.TCPSite(runner, host, port, ssl_context=context).start()
    try:
        yield attacker
    finally:
        await runner.cleanup()


def _free_port_on(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def evil_device(name: str, address: str, api_key: Mapping[str, str], **spec: Any) -> dict[str, Any]:
    """A ``kind: Device`` an attacker with push access could commit."""
    return {
        "apiVersion": "gitfirm.io/v1",
        "kind": "Device",
        "metadata": {"name": name},
        "spec": {
            "address": address,
            "credentials": {"apiKey": dict(api_key)},
            "site": "lab",
            **spec,
        },
    }


@contextlib.asynccontextmanager
async def secured_gitops(
    tmp: Path,
    *,
    devices: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> AsyncIterator[GitOps]:
    """Like ``running_gitops`` (two simulated devices at 1.4.3, nothing to roll out), plus
    the Device documents ``devices`` in ``fleet/extra.yaml`` and ``settings`` for the
    daemon. Waits until the first observation is in status."""
    async with running_simulator(2, releases=["1.4"]) as fleet:
        files, names = config_files(tmp / "upstream", fleet, ["1.4.3", "1.4.4"])
        files["policies/fleet.yaml"] = policy_yaml("1.4.3")
        if devices:
            files["fleet/extra.yaml"] = yaml.safe_dump_all(list(devices.values()))
        remote, work = seeded_remote(tmp / "git", files)
        logs = io.StringIO()
        port = free_port()
        daemon = make_daemon(
            remote,
            tmp / "state",
            port,
            {KEY_ENV: fleet.api_key, **(environ or {})},
            logs,
            **{"poll_interval": 0.2, "status_coalesce": 0, **(settings or {})},
        )
        stop = asyncio.Event()
        task = asyncio.create_task(daemon.run(stop))
        try:
            await wait_for(
                lambda: bool(daemon.state.facts) or task.done(), 30, "the first observation"
            )
            if task.done():
                task.result()
            yield GitOps(remote, work, fleet, daemon, port, logs, names["1.4.4"])
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)
