"""The simulator as a child process, and a tiny ISO file server: for benches and harnesses.

``simulator_process`` runs ``python -m reconciler.cli sim``, waits for its ``ready`` line and
kills it on exit; the devices are reached over loopback as real routers would be.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.devices.endpoint import Endpoint
from reconciler.simulator.fleet import device_name

__all__ = ["SIM_KEY", "SimProcess", "iso_server", "simulator_process"]

SIM_KEY = "sim-test-key-7f3a9c"
"""A fixed API key for simulated fleets (loopback only, never a real secret)."""


@dataclass
class SimProcess:
    """A simulator running in a child process."""

    port: int
    api_key: str
    count: int
    process: asyncio.subprocess.Process

    @property
    def names(self) -> list[str]:
        """Device names in fleet order."""
        return [device_name(i) for i in range(self.count)]

    def url(self, name: str) -> str:
        """Base URL of one device's API (path-prefix mode)."""
        return f"http://127.0.0.1:{self.port}/{name}"

    def endpoints(self) -> list[Endpoint]:
        """Client endpoints for every device."""
        return [Endpoint(name=n, base_url=self.url(n), api_key=self.api_key) for n in self.names]


@asynccontextmanager
async def simulator_process(
    count: int,
    *,
    latency: float = 0.0,
    seed: int = 0,
    api_key: str = SIM_KEY,
    extra_args: Sequence[str] = (),
    write_fleet: Path | None = None,
    start_timeout: float = 60.0,
) -> AsyncIterator[SimProcess]:
    """Run ``gitfirm sim`` in a child process on a free port; kill it on exit."""
    args = [
        "-m", "reconciler.cli", "sim",
        "--devices", str(count),
        "--listen", "127.0.0.1:0",
        "--api-key", api_key,
        "--latency", str(latency * 1000),
        "--seed", str(seed),
        *(["--write-fleet", str(write_fleet)] if write_fleet else []),
        *extra_args,
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), start_timeout)
        if not line:
            raise RuntimeError(f"simulator exited early (code {await proc.wait()})")
        ready: dict[str, Any] = json.loads(line)
        yield SimProcess(int(ready["port"]), api_key, count, proc)
    finally:
        if proc.returncode is None:
            proc.kill()
        await asyncio.wait_for(proc.wait(), 30)


@asynccontextmanager
async def iso_server(files: dict[str, bytes]) -> AsyncIterator[str]:
    """Serve ``{file name: bytes}`` over HTTP on 127.0.0.1; yields the base URL (no slash)."""
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        body = files.get(request.match_info["name"])
        if body is None:
            return web.Response(status=404, text="not found")
        return web.Response(body=body, content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/{name}", handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = int(getattr(server, "sockets", [])[0].getsockname()[1])
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
