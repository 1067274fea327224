"""One aiohttp server serving a fleet of virtual VyOS devices on loopback.

Addressing: ``http://HOST:PORT/<device>/<endpoint>`` (path prefix), or with
``per_device_ports`` device *i* on ``PORT+i`` at the root. The control API for tests lives
under ``/_sim/`` on every listener (device names never start with ``_``):

- ``GET /_sim/devices``: ``{"devices": [names]}``;
- ``GET /_sim/devices/<name>``: the device's state, call counts, highest number of
  concurrent image operations and its event log;
- ``POST /_sim/devices/<name>/faults``: a JSON object of :class:`Faults` fields to change;
- ``GET /_sim/log``: every device's events, merged in time order;
- ``GET /_sim/events``: the same in the vocabulary of :mod:`reconciler.simulator.events`,
  with wall-clock times.

In-process use::

    sim = Simulator(make_fleet(10, seed=1), SimSettings(api_key="k", latency=0))
    await sim.start("127.0.0.1", 0)
    sim.device("r0001").faults.unreachable = True
    ...
    await sim.stop()
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from reconciler.simulator import api
from reconciler.simulator.device import VirtualDevice
from reconciler.simulator.events import fleet_events

__all__ = ["SimSettings", "Simulator"]

_GATEWAY_TIMEOUT = (
    "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n"
    "<center><h1>504 Gateway Time-out</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
_REASONS = {502: "Bad Gateway", 503: "Service Temporarily Unavailable", 504: "Gateway Time-out"}


@dataclass(frozen=True)
class SimSettings:
    """How the simulated fleet behaves. Defaults are those of a real router."""

    api_key: str = field(repr=False)
    """The API key every device accepts."""
    latency: float = 0.15
    """Seconds each call takes: a real call spawns a process on the router (0.1-1 s)."""
    bandwidth: float = 12_500_000.0
    """Bytes per second an image download runs at (100 Mbit/s); 0 is unlimited."""
    boot_seconds: float = 60.0
    """How long a reboot leaves the device unreachable."""
    upstream_timeout: float = 600.0
    """nginx's limit: a call running longer answers 504 while the work goes on."""
    hang_seconds: float = 3600.0
    """How long a hanging device holds a call before dropping it."""
    seed: int = 0
    """Seed for every random choice (whether a reboot answers before dropping)."""


class Simulator:
    """A fleet of :class:`VirtualDevice` behind one aiohttp application."""

    def __init__(self, devices: Sequence[VirtualDevice], settings: SimSettings) -> None:
        self.settings = settings
        self.devices: dict[str, VirtualDevice] = {d.name: d for d in devices}
        self.order = [d.name for d in devices]
        self.files: dict[tuple[str, str], dict[str, Any]] = {}
        self.background: set[asyncio.Task[str]] = set()
        self.host = "127.0.0.1"
        self.port = 0
        self.per_device_ports = False
        self._by_port: dict[int, VirtualDevice] = {}
        self.scheme = "http"
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    # --- helpers used by the API handlers ----------------------------------------------

    def now(self) -> float:
        """The event loop's monotonic time."""
        return asyncio.get_running_loop().time()

    def http(self) -> aiohttp.ClientSession:
        """The session image downloads go through."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=60))
        return self._session

    def device(self, name: str) -> VirtualDevice:
        """The device called ``name`` (``KeyError`` if none)."""
        return self.devices[name]

    def reboot_drops(self, dev: VirtualDevice) -> bool:
        """Whether this reboot drops the connection before answering (seeded, per reboot)."""
        return random.Random(f"{self.settings.seed}:{dev.name}:{len(dev.log)}").random() < 0.5

    def gateway_timeout_page(self) -> web.Response:
        """nginx's 504 page."""
        return web.Response(status=504, text=_GATEWAY_TIMEOUT, content_type="text/html")

    def drop(self, request: web.Request) -> web.Response:
        """Close the connection without an answer."""
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=499)

    # --- addressing ---------------------------------------------------------------------

    def base_url(self, name: str) -> str:
        """The API base URL of one device."""
        if self.per_device_ports:
            return f"{self.scheme}://{self.host}:{self.port + self.order.index(name)}"
        return f"{self.scheme}://{self.host}:{self.port}/{name}"

    def _route(self, request: web.Request) -> tuple[VirtualDevice | None, str]:
        if self.per_device_ports:
            sock = request.transport.get_extra_info("sockname") if request.transport else None
            return (self._by_port.get(sock[1]) if sock else None), request.path
        _, _, rest = request.path.partition("/")
        name, slash, tail = rest.partition("/")
        return self.devices.get(name), slash + tail

    # --- request handling ---------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/_sim/"):
            return await self._control(request)
        dev, path = self._route(request)
        if dev is None:
            return api.not_found()
        dev.calls[path] += 1
        if not dev.reachable(self.now()):
            return self.drop(request)
        faults = dev.faults
        if faults.hang:
            await asyncio.sleep(self.settings.hang_seconds)
            return self.drop(request)
        delay = self.settings.latency + faults.slow_seconds
        if delay > 0:
            await asyncio.sleep(delay)
        if faults.http_status is not None:
            return self._server_error(faults.http_status)
        return await api.dispatch(self, dev, request, path)

    def _server_error(self, status: int) -> web.Response:
        if status in _REASONS:
            # nginx answers these itself, with its HTML page.
            title = f"{status} {_REASONS[status]}"
            page = _GATEWAY_TIMEOUT.replace("504 Gateway Time-out", title)
            return web.Response(status=status, text=page, content_type="text/html")
        return api.envelope(status, None, "Internal Server Error")

    async def _control(self, request: web.Request) -> web.Response:
        parts = request.path.strip("/").split("/")[1:]
        now = self.now()
        if parts == ["devices"]:
            return web.json_response({"devices": self.order})
        if parts == ["log"]:
            events = [{"device": d.name, **e} for d in self.devices.values() for e in d.log]
            events.sort(key=lambda e: (e["at"], e["device"]))
            return web.json_response({"events": events})
        if parts == ["events"]:
            offset = time.time() - now
            return web.json_response({"events": fleet_events(self.devices.values(), offset)})
        if len(parts) >= 2 and parts[0] == "devices" and parts[1] in self.devices:
            dev = self.devices[parts[1]]
            if len(parts) == 2 and request.method == "GET":
                return web.json_response(dev.snapshot(now))
            if parts[2:] == ["faults"] and request.method == "POST":
                try:
                    dev.faults.update(json.loads(await request.read()))
                except (ValueError, KeyError, AttributeError) as e:
                    return web.json_response({"error": f"bad faults: {e}"}, status=400)
                return web.json_response(dev.faults.as_dict())
        return web.json_response({"error": "unknown control path"}, status=404)

    # --- lifecycle ----------------------------------------------------------------------

    async def start(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        per_device_ports: bool = False,
        ssl_context: ssl.SSLContext | None = None,
    ) -> int:
        """Listen and return the (first) port; port 0 picks a free one (prefix mode, or one
        device on its own port). With ``ssl_context`` the API is served over HTTPS, as a
        real device serves it."""
        now = self.now()
        for dev in self.devices.values():
            if dev.booted_at == 0.0:
                dev.booted_at = now - 86_400.0 - 3600.0 * (zlib.crc32(dev.name.encode()) % 24)
        app = web.Application(client_max_size=1 << 20)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # Hanging calls must not hold up a stop.
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.1
        )
        await self._runner.setup()
        self.host, self.per_device_ports = host, per_device_ports
        self.scheme = "https" if ssl_context is not None else "http"
        if not per_device_ports:
            site = web.TCPSite(self._runner, host, port, backlog=4096, ssl_context=ssl_context)
            await site.start()
            self.port = _bound_port(site)
            return self.port
        if port == 0 and len(self.order) != 1:
            raise ValueError("per-device ports need an explicit first port")
        for i, name in enumerate(self.order):
            site = web.TCPSite(self._runner, host, port + i, backlog=512, ssl_context=ssl_context)
            await site.start()
            bound = _bound_port(site)
            self.port = self.port if i else bound
            self._by_port[bound] = self.devices[name]
        return self.port

    async def stop(self) -> None:
        """Stop listening, cancel running installs and close the download session."""
        for task in list(self.background):
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None


def _bound_port(site: web.TCPSite) -> int:
    server = site._server
    assert server is not None
    sockets = getattr(server, "sockets", None) or []
    return int(sockets[0].getsockname()[1])
