"""``/image add`` as the VyOS installer does it: download, check, install, make default.

The URL is fetched for real (http or https; the simulator has no local files) at the device's
bandwidth; the simulated ISO header (:mod:`reconciler.simulator.iso`) gives the version,
arch and flavor. Error texts are those of vyos-1x ``image_installer.py`` (1.4+) and of the
1.3 shell installer. An image of another flavor (1.4+) hangs the install for ever, as the
real installer's yes/no question on a closed stdin does; nginx then answers 504.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp

from reconciler.sanitize import redact
from reconciler.simulator.device import VirtualDevice
from reconciler.simulator.iso import IsoError, parse_iso

if TYPE_CHECKING:
    from reconciler.simulator.server import Simulator

__all__ = [
    "MSG_ARCH_MISMATCH",
    "MSG_FLAVOR_MISMATCH",
    "MSG_IMPROPER_IMAGE",
    "MSG_NOT_ENOUGH_SPACE",
    "MSG_SUCCESS",
    "ImageFailure",
    "install_image",
]

MSG_NOT_ENOUGH_SPACE = "Image upgrade requires at least 2GB of free drive space."
MSG_IMPROPER_IMAGE = (
    "Missing sha256sum.txt.\nEither this image is corrupted, or of era 1.2.x (md5sum) and "
    "would downgrade image tools;\ndisallowed in either case."
)
MSG_ARCH_MISMATCH = (
    'The current architecture is "{0}", the new image is for "{1}". Upgrading to a '
    "different image architecture will break your system."
)
MSG_SUCCESS = "The image installed successfully; please reboot now."
MSG_FLAVOR_MISMATCH = (
    'The running image flavor is "{0}". The new image flavor is "{1}".\n'
    "Installing a different image flavor may cause functionality degradation or break your "
    "system.\nDo you want to continue with installation?"
)
_HEAD = 512
_CHUNK = 64 * 1024


class ImageFailure(Exception):
    """The install failed; the text is what the device prints (HTTP 400)."""


async def _throttle(sim: Simulator, got: int, started: float) -> None:
    bandwidth = sim.settings.bandwidth
    if bandwidth > 0:
        wait = got / bandwidth - (sim.now() - started)
        if wait > 0:
            await asyncio.sleep(wait)


async def _fetch_head(sim: Simulator, url: str) -> bytes:
    """Download the whole file at the configured bandwidth; return its first bytes."""
    parts = urlsplit(url)
    started = sim.now()
    head = bytearray()
    got = 0
    if parts.scheme not in ("http", "https"):
        raise ImageFailure(f"Unsupported URL scheme: {parts.scheme}")
    try:
        async with sim.http().get(url) as resp:
            if resp.status != 200:
                raise ImageFailure(f"Download failed: HTTP {resp.status} {resp.reason}")
            async for chunk in resp.content.iter_chunked(_CHUNK):
                got += len(chunk)
                head += chunk[: max(0, _HEAD - len(head))]
                await _throttle(sim, got, started)
    except (aiohttp.ClientError, TimeoutError) as e:
        raise ImageFailure(f"Download failed: {type(e).__name__}: {e}") from None
    return bytes(head)


async def _ask_for_ever(sim: Simulator, dev: VirtualDevice, flavor: str) -> None:
    """The installer asks whether to change flavor, even with ``--no-prompt``; the API's
    stdin is closed, so the question loops and the call never ends (nginx answers 504)."""
    dev.record(
        sim.now(), "image-add-prompt", question=MSG_FLAVOR_MISMATCH.format(dev.flavor, flavor)
    )
    await asyncio.Event().wait()


def _exists_message(dev: VirtualDevice, name: str) -> str:
    if dev.family == "1.3":
        # 1.3's shell installer asks before replacing; the closed stdin answers its default.
        return (
            f"An image named {name} is already installed on this system.\n"
            f"Proceeding with this installation will delete this copy of\n"
            f"{name} and replace it with a new copy.\n"
            f"Do you want to replace it? (Yes/No) [No]: OK.  Will not replace {name}\n"
            "Exiting...\n"
        )
    return f"[Errno 17] File exists: '/usr/lib/live/mount/persistence/boot/{name}'"


async def install_image(sim: Simulator, dev: VirtualDevice, url: str) -> str:
    """Run one install on ``dev``; returns the success text or raises :class:`ImageFailure`."""
    dev.begin_image_op()
    dev.record(sim.now(), "image-add", url=redact(url))
    try:
        if dev.faults.disk_full:
            raise ImageFailure(MSG_NOT_ENOUGH_SPACE)
        head = await _fetch_head(sim, url)
        if dev.faults.corrupt_download:
            head = bytes(b ^ 0x5A for b in head)
        try:
            header = parse_iso(head)
        except IsoError:
            raise ImageFailure(MSG_IMPROPER_IMAGE) from None
        if header.arch != dev.arch:
            raise ImageFailure(MSG_ARCH_MISMATCH.format(dev.arch, header.arch))
        if header.flavor != dev.flavor and dev.family != "1.3":
            await _ask_for_ever(sim, dev, header.flavor)
        if header.version in dev.images:
            raise ImageFailure(_exists_message(dev, header.version))
        # VyOS copies the saved config into the new image and makes it the default boot.
        dev.install(header.version)
        dev.record(sim.now(), "image-installed", name=header.version)
        return MSG_SUCCESS
    except ImageFailure as e:
        dev.record(sim.now(), "image-add-failed", error=str(e).splitlines()[0])
        raise
    finally:
        dev.end_image_op()
