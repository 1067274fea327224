"""The distribution server: an ASGI app that hands verified images to devices.

``GET``/``HEAD /images/<device>/<token>/<file>`` serves the image the token names when the
token was issued to ``<device>`` and ``<file>`` is the image's file name, or its
``.minisig`` (or ``.sigstore``) beside it, so VyOS's own check runs too. Only images in the
store are served, and only verified images enter the store.

A token is a bearer secret, so it is bound to one device and one image, expires (minutes,
set by the daemon) and lives only while the device's step does: :meth:`revoke` withdraws
every grant of a device when its step ends, and a device's token is refused unless this
server issued it and it is still live. Site-mirror tokens (``site:<name>``) are minted by
peers that share the secret, so only their MAC and expiry are checked.
Single byte ranges are honoured (206, or 416 when unsatisfiable). Bandwidth is capped
globally and per connection, and every byte sent is counted for metrics.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from reconciler.clock import Clock
from reconciler.images.store import SIGNATURE_SUFFIXES, ImageStore
from reconciler.images.throttle import Throttle
from reconciler.images.tokens import TokenRefused, TokenSigner

__all__ = ["SITE_PREFIX", "DistributionServer", "ServeCounters", "ServeLimits", "image_path"]

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
SITE_PREFIX = "site:"
"""Grants to peer sites (see :mod:`reconciler.images.mirror`), not to devices."""


@dataclass(frozen=True, slots=True)
class ServeLimits:
    """Bandwidth caps and read size of the distribution server."""

    global_bps: int | None = None
    """Bytes per second for all downloads together, so devices cannot starve the WAN."""
    per_connection_bps: int | None = None
    """Bytes per second for one download."""
    chunk_size: int = 1 << 20
    """Bytes per read and send: large, so the per-chunk Python overhead stays small."""


@dataclass
class ServeCounters:
    """What the server has done since it started, for ``/metrics``."""

    requests: int = 0
    refused: int = 0
    bytes_served: int = 0
    bytes_by_image: dict[str, int] = field(default_factory=dict)


class _FileBody(Response):
    """Streams ``length`` bytes of a file from ``start``, paced and counted."""

    def __init__(
        self,
        server: DistributionServer,
        path: Path,
        start: int,
        length: int,
        status: int,
        headers: dict[str, str],
        sha256: str,
    ) -> None:
        super().__init__(status_code=status, headers=headers)
        self._server = server
        self._path = path
        self._start = start
        self._length = length
        self._sha = sha256

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        srv = self._server
        limits = srv.limits
        transport = None
        # Zero-copy only pays for large bodies and cannot be paced, so caps keep the read loop.
        if self._length >= limits.chunk_size and not (
            limits.global_bps or limits.per_connection_bps
        ):
            transport = _server_transport()
        if transport is not None:
            self.raw_headers.append((b"connection", b"close"))
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        if transport is not None and await self._sendfile(transport, receive):
            return
        await self._read_loop(send)

    def _count(self, nbytes: int) -> None:
        counters = self._server.counters
        counters.bytes_served += nbytes
        counters.bytes_by_image[self._sha] = counters.bytes_by_image.get(self._sha, 0) + nbytes

    async def _sendfile(self, transport: asyncio.WriteTransport, receive: Receive) -> bool:
        """Send the body with the kernel's ``sendfile``, then close the connection.

        The server's HTTP state machine never sees these bytes, so the response cannot end
        through it: the connection closes instead (announced by ``connection: close``) and
        the body is complete when the client sees the end of the stream. False when the
        loop cannot sendfile (uvloop, TLS) and nothing was sent.
        """
        loop = asyncio.get_running_loop()
        with self._path.open("rb") as f:
            try:
                await loop.sendfile(transport, f, self._start, self._length, fallback=False)
            except (asyncio.SendfileNotAvailableError, NotImplementedError):
                return False
            except OSError:  # the client went away: the response ends here
                transport.abort()
                return True
            except BaseException:
                transport.abort()  # a half-sent body must never look complete
                raise
            finally:
                # The native path leaves the file position just past the last byte sent.
                self._count(max(0, f.tell() - self._start))
        transport.close()
        # Wait (bounded) until the server has seen the close, so it does not call the
        # response unfinished; the disconnect message is how ASGI reports that.
        with anyio.move_on_after(5):
            while (await receive())["type"] != "http.disconnect":
                pass
        return True

    async def _read_loop(self, send: Send) -> None:
        srv = self._server
        limits = srv.limits
        own = Throttle(limits.per_connection_bps, srv.clock) if limits.per_connection_bps else None
        fd = os.open(self._path, os.O_RDONLY)
        try:
            offset, left = self._start, self._length
            while left > 0:
                n = min(limits.chunk_size, left)
                chunk = await anyio.to_thread.run_sync(os.pread, fd, n, offset)
                if not chunk:
                    break
                for throttle in (srv.global_throttle, own):
                    if throttle is not None:
                        await throttle.consume(len(chunk))
                left -= len(chunk)
                offset += len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": left > 0})
                self._count(len(chunk))
            if left > 0:  # the file shrank under us; end the response cleanly
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            os.close(fd)


def _server_transport() -> asyncio.WriteTransport | None:
    """The socket transport of the uvicorn connection serving the current request, or None.

    ASGI offers no zero-copy send and uvicorn implements no extension for it, but uvicorn
    runs each request as a task of ``RequestResponseCycle.run_asgi`` (h11 and httptools
    alike), whose ``transport`` is the connection. Anything else (another server, a test
    transport, TLS) yields None and the portable read loop serves the body.
    """
    task = asyncio.current_task()
    frame = getattr(task.get_coro(), "cr_frame", None) if task is not None else None
    if frame is None or frame.f_code.co_name != "run_asgi":
        return None
    transport = getattr(frame.f_locals.get("self"), "transport", None)
    if not isinstance(transport, asyncio.WriteTransport) or transport.is_closing():
        return None
    if transport.get_extra_info("sslcontext") is not None:
        return None
    return transport


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end)`` inclusive for one satisfiable range; None to serve it all.

    Raises ValueError for an unsatisfiable range. Multiple ranges are answered whole,
    which RFC 9110 allows.
    """
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if m is None:
        return None
    first, last = m.group(1), m.group(2)
    if not first and not last:
        return None
    if not first:  # suffix range: the last N bytes
        n = int(last)
        if n == 0:
            raise ValueError("empty suffix range")
        return max(0, size - n), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise ValueError("range outside the file")
    return start, end


def image_path(device: str, token: str, file_name: str) -> str:
    """The URL path of one grant: ``/images/<device>/<token>/<file>``."""
    return f"/images/{quote(device, safe='')}/{token}/{quote(file_name, safe='')}"


class DistributionServer:
    """Serves verified images from ``store`` to holders of tokens from ``tokens``."""

    def __init__(
        self,
        store: ImageStore,
        tokens: TokenSigner,
        *,
        clock: Clock,
        limits: ServeLimits | None = None,
    ) -> None:
        self.store = store
        self.tokens = tokens
        self.clock = clock
        self.limits = limits or ServeLimits()
        self.counters = ServeCounters()
        self.global_throttle = (
            Throttle(self.limits.global_bps, clock) if self.limits.global_bps else None
        )
        # Live device grants: device -> tokens issued to it whose step is not over.
        self._live: dict[str, set[str]] = {}
        self.app = Starlette(
            routes=[Route("/images/{device}/{token}/{file}", self._serve, methods=["GET", "HEAD"])]
        )

    def url_for(self, base_url: str, device: str, sha256: str, ttl: timedelta) -> str:
        """A one-device, one-image, expiring URL for a stored image (for ``/image add``);
        it stays live until :meth:`revoke` of the device or ``ttl``, whichever is first."""
        stored = self.store.get(sha256)
        if stored is None:
            raise KeyError(f"image {sha256} is not in the store")
        token = self.tokens.issue(device, sha256, ttl)
        self._live.setdefault(device, set()).add(token)
        return base_url.rstrip("/") + image_path(device, token, stored.verified.file_name)

    def revoke(self, device: str) -> None:
        """Withdraw every URL issued to ``device`` (its step is over)."""
        self._live.pop(device, None)

    def live(self, device: str) -> int:
        """How many grants of ``device`` are live (status and tests)."""
        return len(self._live.get(device, ()))

    def _refuse(self, status: int, text: str) -> Response:
        self.counters.refused += 1
        return PlainTextResponse(text, status_code=status)

    async def _serve(self, request: Request) -> Response:
        self.counters.requests += 1
        token = request.path_params["token"]
        try:
            grant = self.tokens.check(token)
        except TokenRefused as e:
            return self._refuse(403, f"{e}\n")
        if grant.device != request.path_params["device"]:
            return self._refuse(403, "token issued to another device\n")
        if not grant.device.startswith(SITE_PREFIX) and token not in self._live.get(
            grant.device, ()
        ):
            return self._refuse(403, "token revoked: the device's step is over\n")
        stored = self.store.get(grant.sha256)
        name = request.path_params["file"]
        if stored is None:
            return self._refuse(404, "no such image\n")
        if name == stored.verified.file_name:
            path, media = stored.path, "application/octet-stream"
        elif (
            stored.signature is not None
            and name == stored.verified.file_name + stored.signature.suffix
            and stored.signature.suffix in SIGNATURE_SUFFIXES
        ):
            path, media = stored.signature, "text/plain"
        else:
            return self._refuse(404, "no such file for this token\n")
        size = path.stat().st_size
        headers = {"accept-ranges": "bytes", "content-type": media, "cache-control": "no-store"}
        try:
            rng = _byte_range(request.headers.get("range"), size)
        except ValueError:
            headers["content-range"] = f"bytes */{size}"
            self.counters.refused += 1
            return Response(status_code=416, headers=headers)
        start, end = rng if rng is not None else (0, size - 1)
        length = end - start + 1 if size else 0
        status = 206 if rng is not None else 200
        if rng is not None:
            headers["content-range"] = f"bytes {start}-{end}/{size}"
        headers["content-length"] = str(length)
        if request.method == "HEAD":
            return Response(status_code=status, headers=headers)
        return _FileBody(self, path, start, length, status, headers, grant.sha256)
