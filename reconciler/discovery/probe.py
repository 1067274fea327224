"""One probe: is there a VyOS HTTP API at this address and port, and what does it say?

1. A TLS handshake, verifying nothing yet, to read the leaf certificate; its SHA-256 is
   the pin every later request (and the proposed Device) uses, so the key never reaches a
   server other than the one first seen.
2. Unauthenticated: ``POST /retrieve`` with an empty key. Only a VyOS API answers 401 with
   its envelope, ``{"success": false, "error": "Valid API key is required"}``; a plain web
   server, another API or a closed port is not reported.
3. ``GET /info`` (1.5+, no key), and with a key ``show version`` (version, architecture,
   flavor) and ``show host name``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import ssl
from dataclasses import dataclass

import httpx

from reconciler.clock import Clock
from reconciler.devices.client import ClientSettings, VyOSClient
from reconciler.devices.endpoint import Endpoint, TlsSettings
from reconciler.devices.parse import ParseError
from reconciler.devices.transport import TLS_EXTENSION, ssl_for
from reconciler.errors import AuthError, DeviceError

__all__ = ["Found", "ProbeSettings", "probe"]

_KEY_REQUIRED = "valid api key is required"
_MAX_ANSWER = 64 * 1024


@dataclass(frozen=True, slots=True)
class ProbeSettings:
    """How hard a scan pushes: defaults suit a campus network from one small machine."""

    timeout: float = 5.0
    """Seconds for each step of one probe (connect and handshake, each request)."""
    concurrency: int = 64
    """Probes in flight at once."""
    rate: float = 100.0
    """New probes started per second at most, so a scan never floods a network."""


@dataclass(frozen=True, slots=True)
class Found:
    """A VyOS router answering at ``address`` (``https://host:port``)."""

    address: str
    host: str
    port: int
    fingerprint: str
    """SHA-256 of the leaf certificate, 64 lower-case hex digits."""
    version: str | None = None
    architecture: str | None = None
    flavor: str | None = None
    hostname: str | None = None
    declared_as: str | None = None
    """The Device that already declares this router (by address or fingerprint)."""
    note: str | None = None
    """Why some facts are missing (no key, key refused)."""


def _url_host(host: str) -> str:
    return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host


async def _certificate(host: str, port: int, seconds: float) -> bytes | None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # read the certificate to pin it; nothing is sent
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context), seconds
        )
    except (OSError, ssl.SSLError, TimeoutError):
        return None
    try:
        obj = writer.get_extra_info("ssl_object")
        return obj.getpeercert(binary_form=True) if obj is not None else None
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), seconds)


async def _speaks_vyos(endpoint: Endpoint, http: httpx.AsyncClient, seconds: float) -> bool:
    form = {"data": json.dumps({"op": "exists", "path": ["service", "https"]}), "key": ""}
    try:
        answer = await http.post(
            endpoint.url("/retrieve"),
            data=form,
            timeout=seconds,
            extensions={TLS_EXTENSION: ssl_for(endpoint.tls)},
        )
    except httpx.HTTPError:
        return False
    if answer.status_code != 401 or len(answer.content) > _MAX_ANSWER:
        return False
    try:
        envelope = json.loads(answer.content)
    except ValueError:
        return False
    return (
        isinstance(envelope, dict)
        and envelope.get("success") is False
        and str(envelope.get("error", "")).strip().lower() == _KEY_REQUIRED
    )


async def probe(
    host: str,
    port: int,
    *,
    http: httpx.AsyncClient,
    clock: Clock,
    api_key: str | None = None,
    settings: ProbeSettings | None = None,
) -> Found | None:
    """The router at ``host:port``, or None when no VyOS API answers there."""
    settings = settings or ProbeSettings()
    der = await _certificate(host, port, settings.timeout)
    if der is None:
        return None
    fingerprint = hashlib.sha256(der).hexdigest()
    address = f"https://{_url_host(host)}:{port}"
    endpoint = Endpoint(
        name=f"{host}:{port}",
        base_url=address,
        api_key=api_key or "",
        tls=TlsSettings(fingerprint=fingerprint),
    )
    if not await _speaks_vyos(endpoint, http, settings.timeout):
        return None
    client = VyOSClient(
        endpoint,
        http,
        clock=clock,
        settings=ClientSettings(timeout=settings.timeout, read_attempts=1),
    )
    found = Found(address=address, host=host, port=port, fingerprint=fingerprint)
    return await _facts(client, found, api_key)


async def _facts(client: VyOSClient, found: Found, api_key: str | None) -> Found:
    version = hostname = architecture = flavor = note = None
    try:
        info = await client.info() if not api_key else await client.version()
        version, hostname = info.version, info.hostname
        architecture, flavor = info.architecture, info.flavor
    except (DeviceError, ParseError, KeyError, TypeError) as e:
        note = "no key given and no /info (before 1.5)" if not api_key else _why(e)
    if api_key and note is None and hostname is None:
        with contextlib.suppress(DeviceError):
            hostname = (await client.show(["host", "name"])).strip() or None
    return Found(
        address=found.address,
        host=found.host,
        port=found.port,
        fingerprint=found.fingerprint,
        version=version,
        architecture=architecture,
        flavor=flavor,
        hostname=hostname,
        note=note,
    )


def _why(error: Exception) -> str:
    if isinstance(error, AuthError):
        return "the API key was refused"
    return f"show version failed ({type(error).__name__})"
