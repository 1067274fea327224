"""The asynchronous VyOS HTTP API client (one device, one instance).

Built on an injected :class:`httpx.AsyncClient`. Use
:func:`reconciler.devices.transport.make_http_client` for fleets and TLS pinning: with its
:class:`~reconciler.devices.transport.FleetClient`, calls go straight to aiohttp (the hot
path: an observation of 10,000 devices is 20,000 calls); any other httpx client is used
through httpx. Requests carry a JSON body with ``key`` at the top level by default;
``ClientSettings(encoding="form")`` sends form ``data`` + ``key`` instead. Answers map to
errors through :func:`reconciler.errors.error_from_response`; a path the release lacks
(404/405) is :class:`~reconciler.errors.Unsupported`; transport failures are
:class:`~reconciler.errors.Unreachable`.

Reads retry with jittered exponential backoff through the injected clock; writes never
retry. The API key never appears in ``repr``, logs or exception text.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from reconciler.clock import Clock, SystemClock
from reconciler.devices.endpoint import Endpoint
from reconciler.devices.parse import VersionInfo, parse_image_list, parse_version_output
from reconciler.devices.transport import TLS_EXTENSION, FleetClient, ssl_for
from reconciler.errors import (
    CommandError,
    DeviceError,
    DeviceServerError,
    Unreachable,
    Unsupported,
    UpstreamTimeout,
    error_from_response,
)
from reconciler.model.facts import InstalledImage
from reconciler.sanitize import redact

__all__ = ["ClientSettings", "VyOSClient"]

_ALREADY_DEFAULT = "already configured as default"
# A re-add of an installed image: 1.4+ says "File exists", 1.3 "An image named X is already
# installed ... Will not replace X". Either way the image is there.
_ALREADY_INSTALLED = ("File exists", "is already installed")
_NOT_VALID_OP = "is not a valid operation"
# json.loads without its per-call argument handling and encoding sniffing (answers are UTF-8;
# a bad byte raises UnicodeDecodeError, a ValueError, like bad JSON).
_decode_json = json.JSONDecoder().decode


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Timeouts, retries and encoding of device calls."""

    timeout: float = 30.0
    """Seconds for one ordinary call; a real call takes 0.1-1 s, 30 s allows a busy router."""
    image_timeout: float = 900.0
    """Seconds for ``/image add``, which blocks through download and install."""
    read_attempts: int = 3
    """Tries for a read (the first plus retries); writes are tried once."""
    backoff: float = 0.5
    """First retry delay in seconds; doubles each retry, with full jitter."""
    backoff_max: float = 8.0
    """Longest retry delay."""
    poll_interval: float = 15.0
    """After a 504 on ``/image add``, seconds between looks at ``show system image``."""
    encoding: Literal["json", "form"] = "json"
    """Request body: a JSON object, or form ``data`` + ``key`` (as older tools send)."""


class VyOSClient:
    """One device's API. Methods raise :class:`reconciler.errors.DeviceError` subclasses."""

    def __init__(
        self,
        endpoint: Endpoint,
        http: httpx.AsyncClient,
        *,
        settings: ClientSettings | None = None,
        clock: Clock | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.endpoint = endpoint
        self.settings = settings or ClientSettings()
        self._http = http
        self._clock: Clock = clock or SystemClock()
        self._jitter = jitter
        self._ssl = ssl_for(endpoint.tls)
        self._fleet = http.fleet if isinstance(http, FleetClient) else None

    def __repr__(self) -> str:
        return f"VyOSClient({self.endpoint.name!r}, {self.endpoint.base_url!r})"

    @property
    def name(self) -> str:
        """The device's name."""
        return self.endpoint.name

    # --- transport ----------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        return redact(text, (self.endpoint.api_key,))

    async def _send(
        self, method: str, path: str, payload: dict[str, Any] | None, limit: float
    ) -> tuple[int, bytes]:
        key = self.endpoint.api_key
        body: dict[str, Any] | None = None
        form: dict[str, str] | None = None
        if payload is not None:
            if self.settings.encoding == "form":
                form = {"data": json.dumps(payload), "key": key}
            else:
                body = {"key": key, **payload}
        url = self.endpoint.url(path)
        try:
            if self._fleet is not None:
                return await self._fleet.exchange(
                    method, url, json_body=body, form=form, ssl=self._ssl, seconds=limit
                )
            response = await self._http.request(
                method,
                url,
                json=body,
                data=form,
                timeout=limit,
                extensions={TLS_EXTENSION: self._ssl},
            )
            return response.status_code, response.content
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
            detail = self._redact(f"cannot connect: {type(e).__name__}: {e}")
            raise Unreachable(detail, device=self.name) from None
        except httpx.TimeoutException as e:
            raise Unreachable(
                f"no answer within {limit:g}s ({type(e).__name__})", device=self.name
            ) from None
        except httpx.HTTPError as e:
            # Connected, then the connection broke: a rebooting device does this.
            detail = self._redact(f"connection dropped: {type(e).__name__}: {e}")
            raise _Dropped(detail, device=self.name) from None

    def _check(self, path: str, answer: tuple[int, bytes]) -> Any:
        status, content = answer
        if status == 200:
            # Fast path: parse the envelope once; anything odd goes to error_from_response.
            try:
                envelope = _decode_json(content.decode())
            except ValueError:
                envelope = None
            if isinstance(envelope, dict) and envelope.get("success") is True:
                return envelope.get("data")
        if status in (404, 405):
            raise Unsupported(
                f"{path} is not offered by this release", device=self.name, status=status
            )
        text = content.decode("utf-8", "replace")
        error = error_from_response(status, text, device=self.name)
        if error is None:
            raise CommandError("unreadable answer", device=self.name, status=status)
        raise type(error)(self._redact(error.detail), device=self.name, status=error.status)

    async def _call(
        self,
        path: str,
        payload: dict[str, Any] | None,
        *,
        read: bool,
        seconds: float | None = None,
        method: str = "POST",
    ) -> Any:
        limit = seconds if seconds is not None else self.settings.timeout
        attempts = self.settings.read_attempts if read else 1
        for attempt in range(attempts):
            try:
                return self._check(path, await self._send(method, path, payload, limit))
            except (Unreachable, DeviceServerError) as e:
                if attempt + 1 >= attempts:
                    raise _plain(e) from None
            delay = min(self.settings.backoff_max, self.settings.backoff * 2**attempt)
            await self._clock.sleep(delay * self._jitter())
        raise AssertionError("unreachable: the loop returns or raises")

    # --- reads --------------------------------------------------------------------------

    async def show(self, path: Sequence[str]) -> str:
        """``/show`` with a path such as ``["system", "image"]``; returns the text."""
        return str(await self._call("/show", {"op": "show", "path": list(path)}, read=True) or "")

    async def retrieve(
        self, path: Sequence[str] = (), *, config_format: Literal["json", "raw"] = "json"
    ) -> Any:
        """``/retrieve showConfig``: the config tree (json) or its text (raw)."""
        payload = {"op": "showConfig", "path": list(path), "configFormat": config_format}
        return await self._call("/retrieve", payload, read=True)

    async def version(self) -> VersionInfo:
        """``show version``, parsed."""
        return parse_version_output(await self.show(["version"]))

    async def info(self) -> VersionInfo:
        """``GET /info`` (1.5+, no key), falling back to ``show version`` where it is absent."""
        try:
            data = await self._call("/info", None, read=True, method="GET")
        except Unsupported:
            return await self.version()
        return VersionInfo(version=str(data["version"]), hostname=data.get("hostname"))

    async def images(self) -> tuple[InstalledImage, ...]:
        """``show system image``, parsed (both formats)."""
        return parse_image_list(await self.show(["system", "image"]))

    # --- writes -------------------------------------------------------------------------

    async def config_file_save(self, file: str | None = None) -> str:
        """``/config-file save``: the running config to the saved config (or ``file``)."""
        payload: dict[str, Any] = {"op": "save"}
        if file is not None:
            payload["file"] = file
        return str(await self._call("/config-file", payload, read=False) or "")

    async def config_file_load(self, file: str) -> str:
        """``/config-file load``: replace the running config with ``file``."""
        return str(await self._call("/config-file", {"op": "load", "file": file}, read=False) or "")

    async def config_file_load_text(self, text: str) -> str:
        """``/config-file load`` of config text (``string``, 1.5+)."""
        payload = {"op": "load", "string": text}
        return str(await self._call("/config-file", payload, read=False) or "")

    async def image_add(
        self, url: str, *, expected_name: str | None = None, flavor: str | None = None
    ) -> str:
        """``/image add``: blocks until the device installed the image (made default).

        With ``flavor`` (the image's release flavor), a device that reports another one in
        ``show version`` is refused with :class:`CommandError` and nothing is sent: the
        real installer would ask to confirm on a closed stdin and the add would hang until
        nginx's 504. An image that is already installed counts as success (the device's
        answer is returned). After a 504 (nginx gave up, the install goes on) it polls
        ``show system image`` until ``expected_name`` (or any new image) appears, within
        ``image_timeout``.
        """
        if flavor is not None:
            await self._check_flavor(flavor)
        before = {i.name for i in await self.images()} if expected_name is None else set()
        started = self._clock.monotonic()
        try:
            return str(
                await self._call(
                    "/image",
                    {"op": "add", "url": url},
                    read=False,
                    seconds=self.settings.image_timeout,
                )
                or ""
            )
        except CommandError as e:
            if any(text in e.detail for text in _ALREADY_INSTALLED):
                return e.detail
            raise
        except UpstreamTimeout:
            pass
        deadline = started + self.settings.image_timeout
        while self._clock.monotonic() < deadline:
            await self._clock.sleep(self.settings.poll_interval)
            try:
                names = {i.name for i in await self.images()}
            except (Unreachable, DeviceServerError, UpstreamTimeout):
                continue
            new = names - before if expected_name is None else names & {expected_name}
            if new:
                return f"image {sorted(new)[0]} installed (confirmed after a 504)"
        raise UpstreamTimeout(
            f"/image add answered 504 and no new image appeared within "
            f"{self.settings.image_timeout:g}s",
            device=self.name,
            status=504,
        )

    async def _check_flavor(self, flavor: str) -> None:
        running = (await self.version()).flavor
        # 1.3 prints no flavor, and its installer asks nothing about one.
        if running is not None and running != flavor:
            raise CommandError(
                f"device runs release flavor {running!r}, the image is for {flavor!r}: "
                "not adding it (the installer would ask to confirm and /image add would hang)",
                device=self.name,
            )

    async def image_delete(self, name: str) -> str:
        """``/image delete``."""
        return str(await self._call("/image", {"op": "delete", "name": name}, read=False) or "")

    async def image_set_default(self, name: str) -> str:
        """``/image set_default`` (1.5+). Already default counts as success; 1.3 and 1.4 have
        no such call and raise :class:`Unsupported`."""
        try:
            payload = {"op": "set_default", "name": name}
            return str(await self._call("/image", payload, read=False) or "")
        except CommandError as e:
            if _ALREADY_DEFAULT in e.detail:
                return e.detail
            if _NOT_VALID_OP in e.detail:
                raise Unsupported(
                    "set_default is not offered over the API before 1.5", device=self.name
                ) from None
            raise

    async def reboot(self) -> None:
        """``/reboot now`` (1.4+). A connection dropped by the rebooting device is success."""
        payload = {"op": "reboot", "path": ["now"]}
        try:
            response = await self._send("POST", "/reboot", payload, self.settings.timeout)
        except _Dropped:
            return
        self._check("/reboot", response)


class _Dropped(Unreachable):
    """The connection failed or dropped mid-call (a rebooting device does this)."""


def _plain(error: DeviceError) -> DeviceError:
    # Callers see Unreachable, not the internal marker class.
    if type(error) is _Dropped:
        return Unreachable(error.detail, device=error.device, status=error.status)
    return error
