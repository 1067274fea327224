"""The httpx transport for a fleet: aiohttp underneath, TLS chosen per request.

httpx's own async transport peaks at a few hundred requests per second on a small machine;
aiohttp's connection pool is several times faster. :class:`FleetTransport` keeps httpx as
the API and sends each request through one shared :class:`aiohttp.ClientSession`, with the
TLS check that the request's device needs (``request.extensions["gitfirm.tls"]``, set by
:class:`reconciler.devices.client.VyOSClient`): system roots, a CA bundle, a pinned leaf
certificate SHA-256, or an explicit insecure mode.
"""

from __future__ import annotations

import contextlib
import functools
import ssl
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx

from reconciler.devices.endpoint import TlsSettings

__all__ = ["TLS_EXTENSION", "FleetTransport", "make_http_client", "ssl_for"]

TLS_EXTENSION = "gitfirm.tls"


@functools.lru_cache(maxsize=64)
def _ca_context(path: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=path)


def ssl_for(tls: TlsSettings) -> ssl.SSLContext | aiohttp.Fingerprint | bool:
    """What aiohttp's ``ssl=`` argument must be for these settings."""
    if tls.fingerprint:
        return aiohttp.Fingerprint(bytes.fromhex(tls.fingerprint.replace(":", "")))
    if tls.ca_bundle:
        return _ca_context(tls.ca_bundle)
    return not tls.insecure


@contextlib.contextmanager
def _mapped_errors() -> Iterator[None]:
    """aiohttp errors as the httpx errors callers catch (dropped vs never connected)."""
    try:
        yield
    except aiohttp.ServerFingerprintMismatch as e:
        raise httpx.ConnectError(f"certificate fingerprint mismatch: {e}") from e
    except aiohttp.ClientConnectorError as e:
        raise httpx.ConnectError(str(e)) from e
    except aiohttp.ConnectionTimeoutError as e:
        raise httpx.ConnectTimeout(str(e) or "connect timed out") from e
    except (TimeoutError, aiohttp.SocketTimeoutError) as e:
        raise httpx.ReadTimeout(str(e) or "read timed out") from e
    except aiohttp.ServerDisconnectedError as e:
        raise httpx.RemoteProtocolError(str(e) or "server disconnected") from e
    except aiohttp.ClientError as e:
        raise httpx.ReadError(f"{type(e).__name__}: {e}") from e


def _plain_url(url: httpx.URL) -> str:
    # httpx already moved URL credentials into the Authorization header; aiohttp refuses both.
    return str(url.copy_with(userinfo=b"")) if url.userinfo else str(url)


class FleetTransport(httpx.AsyncBaseTransport):
    """An httpx transport over one aiohttp session, for thousands of devices at once."""

    def __init__(self, *, max_connections: int = 512, keepalive_seconds: float = 30.0) -> None:
        self._limit = max_connections
        self._keepalive = keepalive_seconds
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._limit, keepalive_timeout=self._keepalive, ttl_dns_cache=300
            )
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout: dict[str, float | None] = request.extensions.get("timeout", {})
        tls: Any = request.extensions.get(TLS_EXTENSION, True)
        with _mapped_errors():
            async with self._client().request(
                request.method,
                _plain_url(request.url),
                headers=request.headers.multi_items(),
                data=request.content or None,
                allow_redirects=False,
                ssl=tls,
                timeout=aiohttp.ClientTimeout(
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                    connect=timeout.get("pool"),
                ),
            ) as resp:
                # Device answers are small; read them whole (faster than streaming).
                body = await resp.read()
        return httpx.Response(
            status_code=resp.status,
            headers=resp.raw_headers,
            content=body,
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def make_http_client(*, max_connections: int = 512) -> httpx.AsyncClient:
    """An :class:`httpx.AsyncClient` on a :class:`FleetTransport`, for device clients."""
    return httpx.AsyncClient(transport=FleetTransport(max_connections=max_connections))
