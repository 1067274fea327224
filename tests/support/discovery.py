"""A small network on loopback for discovery tests: simulated VyOS routers over HTTPS on
their own addresses (127.0.0.2 and up) and ports, plus services that are not VyOS."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import socket
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from reconciler.simulator.device import VirtualDevice
from reconciler.simulator.fleet import make_fleet
from reconciler.simulator.server import SimSettings, Simulator
from tests.support.tls import self_signed

__all__ = ["KEY", "Lan", "Router", "free_port", "lan"]

KEY = "discovery-test-key"
_ENVELOPE_401 = {"success": False, "error": "Valid API key is required", "data": None}


@dataclass
class Router:
    """One simulated router: its host, port, certificate pin and device state."""

    host: str
    port: int
    fingerprint: str
    device: VirtualDevice

    @property
    def address(self) -> str:
        """``https://host:port``, as discovery reports it."""
        return f"https://{self.host}:{self.port}"


@dataclass
class Lan:
    """What runs: the routers and the (host, port) of each service that is not VyOS."""

    routers: list[Router]
    plain_http: tuple[str, int]
    other_https: tuple[str, int]
    closed: tuple[str, int]
    sims: list[Simulator] = field(default_factory=list)

    @property
    def ports(self) -> list[int]:
        """Every port in use (and the closed one), for a scan over all of them."""
        used = [r.port for r in self.routers]
        used += [self.plain_http[1], self.other_https[1], self.closed[1]]
        return sorted(set(used))


def free_port(host: str) -> int:
    """A port nothing listens on at ``host`` right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _server_context(directory: Path, host: str) -> tuple[ssl.SSLContext, str]:
    cert = self_signed(directory / host, host)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert.cert, cert.key)
    return context, hashlib.sha256(cert.der).hexdigest()


async def _lookalike(
    host: str, context: ssl.SSLContext | None, body: dict[str, object]
) -> tuple[web.AppRunner, int]:
    async def answer(_: web.Request) -> web.Response:
        return web.Response(status=401, text=json.dumps(body), content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, host, 0, ssl_context=context)
    await site.start()
    server = site._server
    assert server is not None
    return runner, int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]


@contextlib.asynccontextmanager
async def lan(
    directory: Path, releases: Sequence[str] = ("1.3", "1.4", "info")
) -> AsyncIterator[Lan]:
    """Routers on 127.0.0.2, .3 ... (one release each; ``info`` is a 2025 rolling build
    that answers ``GET /info``), a plain-HTTP server answering VyOS's 401 envelope on the
    next address, an HTTPS server that is not VyOS after it, and a closed port."""
    fleet = make_fleet(len(releases), releases=[r if r != "info" else "rolling" for r in releases])
    routers: list[Router] = []
    sims: list[Simulator] = []
    runners: list[web.AppRunner] = []
    try:
        for i, (device, release) in enumerate(zip(fleet, releases, strict=True)):
            if release == "info":
                device.images = ["2025.01.10-0020-rolling", "2025.06.01-0020-rolling"]
                device.default = device.running = device.images[-1]
            host = f"127.0.0.{2 + i}"
            context, pin = _server_context(directory, host)
            sim = Simulator([device], SimSettings(api_key=KEY, latency=0.0, bandwidth=0.0))
            port = await sim.start(host, 0, per_device_ports=True, ssl_context=context)
            sims.append(sim)
            routers.append(Router(host, port, pin, device))
        plain_host = f"127.0.0.{2 + len(releases)}"
        plain, plain_port = await _lookalike(plain_host, None, _ENVELOPE_401)
        runners.append(plain)
        other_host = f"127.0.0.{3 + len(releases)}"
        context, _ = _server_context(directory, other_host)
        other, other_port = await _lookalike(other_host, context, {"detail": "Not authenticated"})
        runners.append(other)
        closed = (f"127.0.0.{2 + len(releases)}", free_port(f"127.0.0.{2 + len(releases)}"))
        yield Lan(routers, (plain_host, plain_port), (other_host, other_port), closed, sims)
    finally:
        for sim in sims:
            await sim.stop()
        await asyncio.gather(*(r.cleanup() for r in runners))
