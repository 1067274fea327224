"""The HTTP seam for a fleet: aiohttp underneath, TLS chosen per request.

httpx's own async transport peaks at a few hundred requests per second on a small machine;
aiohttp's connection pool is several times faster. :class:`FleetTransport` keeps httpx as
the API and sends each request through one shared :class:`aiohttp.ClientSession`, with the
TLS check that the request's device needs (``request.extensions["gitfirm.tls"]``, set by
:class:`reconciler.devices.client.VyOSClient`): system roots, a CA bundle, a pinned leaf
certificate SHA-256, or an explicit insecure mode.

Device calls skip even httpx: :func:`make_http_client` returns a :class:`FleetClient` (an
:class:`httpx.AsyncClient`), and the device client sends through its
:meth:`FleetTransport.exchange`, straight to aiohttp with the same TLS choice, because
building httpx requests and responses cost more CPU per call than aiohttp itself. Any
other httpx client (a test's, a mock transport) still works through httpx.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

import aiohttp
import httpx

from reconciler.devices.endpoint import TlsSettings

__all__ = [
    "TLS_EXTENSION",
    "FleetClient",
    "FleetTransport",
    "SslChoice",
    "make_http_client",
    "ssl_for",
]

TLS_EXTENSION = "gitfirm.tls"

SslChoice = ssl.SSLContext | aiohttp.Fingerprint | bool
"""What aiohttp's ``ssl=`` takes: a context, a pinned fingerprint, or verify on/off."""


@functools.lru_cache(maxsize=64)
def _ca_context(path: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=path)


def ssl_for(tls: TlsSettings) -> SslChoice:
    """What aiohttp's ``ssl=`` argument must be for these settings."""
    if tls.fingerprint:
        return aiohttp.Fingerprint(bytes.fromhex(tls.fingerprint.replace(":", "")))
    if tls.ca_bundle:
        return _ca_context(tls.ca_bundle)
    return not tls.insecure


def _mapped(e: Exception) -> httpx.HTTPError:
    """An aiohttp error as the httpx error callers catch (dropped vs never connected)."""
    if isinstance(e, aiohttp.ServerFingerprintMismatch):
        return httpx.ConnectError(f"certificate fingerprint mismatch: {e}")
    if isinstance(e, aiohttp.ClientConnectorError):
        return httpx.ConnectError(str(e))
    if isinstance(e, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(str(e) or "connect timed out")
    if isinstance(e, (TimeoutError, aiohttp.SocketTimeoutError)):
        return httpx.ReadTimeout(str(e) or "read timed out")
    if isinstance(e, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError(str(e) or "server disconnected")
    return httpx.ReadError(f"{type(e).__name__}: {e}")


def _plain_url(url: httpx.URL) -> str:
    # httpx already moved URL credentials into the Authorization header; aiohttp refuses both.
    return str(url.copy_with(userinfo=b"")) if url.userinfo else str(url)


# aiohttp writes these itself (and keeps connections alive on its own).
_OWN_HEADERS = frozenset((b"host", b"content-length", b"connection"))
# All a caller of a device answer reads; the rest (server, date, ...) is not converted.
_KEPT_HEADERS = ("content-type", "content-length")


def _forwarded(headers: httpx.Headers) -> list[tuple[str, str]]:
    # Raw bytes decode as latin-1 (what httpx does by default) without its per-item lookups.
    return [
        (k.decode("latin-1"), v.decode("latin-1"))
        for k, v in headers.raw
        if k.lower() not in _OWN_HEADERS
    ]


@functools.lru_cache(maxsize=64)
def _timeout(
    connect: float | None, read: float | None, pool: float | None
) -> aiohttp.ClientTimeout:
    # One immutable object per distinct limit instead of one per request.
    return aiohttp.ClientTimeout(sock_connect=connect, sock_read=read, connect=pool)


@functools.lru_cache(maxsize=64)
def _total(seconds: float) -> aiohttp.ClientTimeout:
    # One timer per call (as aiohttp's default): a per-read timeout re-arms a timer on
    # every chunk received, which costs per call at fleet scale.
    return aiohttp.ClientTimeout(total=seconds)


class _NoCookies(httpx.Cookies):
    """A cookie store that keeps nothing: device calls are stateless, a cookie one device
    sets must never go to another, and parsing responses for cookies costs per request."""

    def extract_cookies(self, response: httpx.Response) -> None:
        """Ignore the answer's cookies (the transport does not even pass them on)."""


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
        # A plain try (not a context manager): this runs once per request.
        try:
            async with self._client().request(
                request.method,
                _plain_url(request.url),
                headers=_forwarded(request.headers),
                data=request.content or None,
                allow_redirects=False,
                ssl=tls,
                timeout=_timeout(timeout.get("connect"), timeout.get("read"), timeout.get("pool")),
            ) as resp:
                # Device answers are small; read them whole (faster than streaming).
                body = await resp.read()
                got = resp.headers
        except (aiohttp.ClientError, TimeoutError) as e:
            raise _mapped(e) from e
        return httpx.Response(
            status_code=resp.status,
            headers=[(name, got[name]) for name in _KEPT_HEADERS if name in got],
            content=body,
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def exchange(
        self,
        method: str,
        url: str,
        *,
        json_body: object = None,
        form: dict[str, str] | None = None,
        ssl: SslChoice,
        seconds: float,
    ) -> tuple[int, bytes]:
        """One device call straight through aiohttp within ``seconds``: ``(status, body)``.
        Errors are raised as the httpx errors :meth:`handle_async_request` raises, so
        callers catch one set."""
        try:
            async with self._client().request(
                method,
                url,
                json=json_body,
                data=form,
                allow_redirects=False,
                ssl=ssl,
                timeout=_total(seconds),
            ) as resp:
                return resp.status, await resp.read()
        except (aiohttp.ClientError, TimeoutError) as e:
            raise _mapped(e) from e

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


_READ = httpx.ByteStream(b"")


async def _drop_stream(response: httpx.Response) -> None:
    # FleetTransport answers arrive read whole, so the stream wrapper httpx adds is never
    # used; it points back at the response, and that cycle left every answer for the cyclic
    # garbage collector (a third of the client's CPU on a 10,000-device pass).
    response.stream = _READ


class FleetClient(httpx.AsyncClient):
    """An :class:`httpx.AsyncClient` on a :class:`FleetTransport`; device clients send
    through :attr:`fleet` directly."""

    def __init__(self, fleet: FleetTransport) -> None:
        super().__init__(transport=fleet, event_hooks={"response": [_drop_stream]})
        self.fleet = fleet


def make_http_client(*, max_connections: int = 512) -> FleetClient:
    """An :class:`httpx.AsyncClient` on a :class:`FleetTransport`, for device clients."""
    client = FleetClient(FleetTransport(max_connections=max_connections))
    # Devices ignore these httpx defaults; each costs work on every request.
    for name in ("accept", "accept-encoding", "user-agent", "connection"):
        del client.headers[name]
    client._cookies = _NoCookies()
    return client
