"""Test helpers for the images stage: signed simulated ISOs, Image and TrustPolicy documents,
and a tiny loopback HTTP file server that can drop connections and count requests."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.images import minisign
from reconciler.model.kinds import Image, TrustPolicy
from reconciler.simulator.iso import build_iso, iso_file_name

__all__ = [
    "SIGSTORE_DIR",
    "FileServer",
    "SignedImage",
    "image_doc",
    "make_image",
    "serve_files",
    "trust_policy",
]

SIGSTORE_DIR = Path(__file__).resolve().parents[1] / "data" / "sigstore"
"""``tests/data/sigstore``: real staging sigstore bundles (see its README.md)."""


def image_doc(
    name: str,
    *,
    version: str,
    sha256: str,
    size: int,
    url: str,
    channel: str = "production",
    key: str = "release",
    bundle_url: str | None = None,
    mirrors: list[str] | None = None,
    revoked: bool = False,
) -> Image:
    """An Image document; minisign with ``key`` unless ``bundle_url`` makes it sigstore."""
    signature: dict[str, object] = (
        {"sigstore": {"bundleUrl": bundle_url}} if bundle_url else {"minisign": {"key": key}}
    )
    return Image.model_validate(
        {
            "apiVersion": "gitfirm.io/v1",
            "kind": "Image",
            "metadata": {"name": name},
            "spec": {
                "version": version,
                "channel": channel,
                "platforms": [{"arch": "amd64", "flavor": "generic"}],
                "source": {"url": url, "mirrors": mirrors or []},
                "sha256": sha256,
                "size": size,
                "signature": signature,
                "revoked": revoked,
            },
        }
    )


def trust_policy(
    keys: dict[str, minisign.PublicKey],
    *,
    channels: tuple[str, ...] = ("production", "testing"),
    sigstore: dict[str, object] | None = None,
    name: str = "trust",
) -> TrustPolicy:
    """A TrustPolicy pinning ``keys`` (name -> key) and optionally a sigstore root."""
    spec: dict[str, object] = {
        "channels": list(channels),
        "minisign": [{"name": n, "publicKey": k.to_base64()} for n, k in keys.items()],
    }
    if sigstore is not None:
        spec["sigstore"] = sigstore
    return TrustPolicy.model_validate(
        {
            "apiVersion": "gitfirm.io/v1",
            "kind": "TrustPolicy",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


@dataclass
class SignedImage:
    """A simulated ISO on disk, its ``.minisig``, its Image document and trust."""

    image: Image
    data: bytes
    file: Path
    minisig: Path
    key: minisign.SecretKey
    trust: TrustPolicy


def make_image(
    directory: Path,
    *,
    version: str = "1.4.3",
    channel: str = "production",
    size: int = 300_000,
    base_url: str | None = None,
    key: minisign.SecretKey | None = None,
    timestamp: int = 1_700_000_000,
) -> SignedImage:
    """Write ``vyos-<version>-generic-amd64.iso`` and its signature into ``directory``."""
    key = key or minisign.generate_keypair()
    name = iso_file_name(version)
    data = build_iso(version, size=size)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(data)
    sig = minisign.sign_file(path, key, timestamp=timestamp)
    sig_path = directory / f"{name}.minisig"
    sig_path.write_text(minisign.format_signature(sig))
    url = f"{base_url or directory.as_uri()}/{name}"
    doc = image_doc(
        f"vyos-{version}".replace(".", "-"),
        version=version,
        sha256=hashlib.sha256(data).hexdigest(),
        size=size,
        url=url,
        channel=channel,
    )
    return SignedImage(doc, data, path, sig_path, key, trust_policy({"release": key.public}))


@dataclass
class FileServer:
    """Serves ``files`` (path -> bytes) over HTTP/1.1 with Range, on 127.0.0.1.

    ``drop_after`` maps a path to a byte count: the first GET of it closes the connection
    after that many body bytes. ``endless`` paths stream without end. ``requests`` records
    ``(path, range header)`` for every GET.
    """

    files: dict[str, bytes] = field(default_factory=dict)
    drop_after: dict[str, int] = field(default_factory=dict)
    endless: set[str] = field(default_factory=set)
    requests: list[tuple[str, str]] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        """Base URL, without a trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1]
        headers = {
            k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)
        }
        rng = headers.get("range", "")
        self.requests.append((path, rng))
        await self._respond(writer, path, rng)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    async def _respond(self, writer: asyncio.StreamWriter, path: str, rng: str) -> None:
        if path in self.endless:
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
            for _ in range(10_000):  # bounded, far past any declared size in the tests
                writer.write(b"x" * 65536)
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
                if writer.is_closing():
                    return
            return
        data = self.files.get(path)
        if data is None:
            writer.write(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            return
        start = int(rng.removeprefix("bytes=").split("-")[0]) if rng.startswith("bytes=") else 0
        body = data[start:]
        status = "206 Partial Content" if start else "200 OK"
        extra = f"Content-Range: bytes {start}-{len(data) - 1}/{len(data)}\r\n" if start else ""
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}"
            "Connection: close\r\n\r\n".encode()
        )
        cut = self.drop_after.pop(path, None)
        writer.write(body if cut is None else body[:cut])


@contextlib.asynccontextmanager
async def serve_files(server: FileServer) -> AsyncIterator[FileServer]:
    """Run ``server`` on an ephemeral loopback port for the duration of the block."""
    srv = await asyncio.start_server(server._handle, "127.0.0.1", 0)
    server.port = srv.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        srv.close()
        await asyncio.wait_for(srv.wait_closed(), 10)
