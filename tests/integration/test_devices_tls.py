"""TLS per device on the client's direct aiohttp path: a pinned fingerprint, a CA bundle,
an explicit insecure mode and system roots, each checked against a real loopback HTTPS
server, with devices of different settings sharing one connection pool."""

from __future__ import annotations

import hashlib
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from reconciler.devices.client import ClientSettings, VyOSClient
from reconciler.devices.endpoint import Endpoint, TlsSettings
from reconciler.devices.transport import make_http_client
from reconciler.errors import Unreachable
from tests.support.tls import self_signed

KEY = "tls-test-key-5521"
VERSION = "Version:          VyOS 1.4.3\nRelease flavor:   generic\n"


@dataclass
class Server:
    url: str
    ca_path: Path
    fingerprint: str


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    pem = self_signed(tmp_path)
    cert_path, key_path, der = pem.cert, pem.key, pem.der

    async def show(request: web.Request) -> web.Response:
        body = await request.json()
        assert body["key"] == KEY
        text = json.dumps({"success": True, "data": VERSION, "error": None})
        return web.Response(text=text, content_type="text/html")

    app = web.Application()
    app.router.add_post("/{device}/show", show)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield Server(f"https://127.0.0.1:{port}", cert_path, hashlib.sha256(der).hexdigest())
    finally:
        await runner.cleanup()


def _client(http: httpx.AsyncClient, server: Server, name: str, tls: TlsSettings) -> VyOSClient:
    endpoint = Endpoint(name, f"{server.url}/{name}", KEY, tls)
    return VyOSClient(endpoint, http, settings=ClientSettings(read_attempts=1))


async def test_each_device_gets_its_own_tls_check_on_one_pool(server: Server) -> None:
    wrong_pin = "00" * 32
    async with make_http_client() as http:
        good = {
            "pinned": TlsSettings(fingerprint=server.fingerprint),
            "bundle": TlsSettings(ca_bundle=str(server.ca_path)),
            "insecure": TlsSettings(insecure=True),
        }
        bad = {"wrong-pin": TlsSettings(fingerprint=wrong_pin), "system-roots": TlsSettings()}
        # Interleaved on one session: a good device's pooled connection must never carry a
        # call whose own check fails.
        for _ in range(2):
            for name, tls in good.items():
                version = await _client(http, server, name, tls).version()
                assert (version.version, version.flavor) == ("1.4.3", "generic")
            for name, tls in bad.items():
                with pytest.raises(Unreachable) as e:
                    await _client(http, server, name, tls).version()
                assert KEY not in str(e.value)
        assert "fingerprint" in str(
            await _failure(_client(http, server, "wrong-pin", bad["wrong-pin"]))
        )


async def _failure(client: VyOSClient) -> Unreachable:
    try:
        await client.version()
    except Unreachable as e:
        return e
    raise AssertionError("the call succeeded")
