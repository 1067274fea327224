"""Upstream image feeds on loopback for ImageSource tests: really signed (minisign) builds
served as an HTTP directory index or a GitHub-releases-style JSON API."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from reconciler.images import minisign
from tests.support.images import FileServer, make_image

__all__ = ["Feed"]


@dataclass
class Feed:
    """Builds published on ``server`` under ``/isos/`` (index) and ``/releases`` (JSON)."""

    server: FileServer
    directory: Path

    def publish(self, version: str, key: minisign.SecretKey, *, size: int = 200_000) -> str:
        """Write a build signed by ``key`` (its ``.minisig`` next to it); returns its URL."""
        signed = make_image(
            self.directory, version=version, channel="development", key=key, size=size
        )
        name = signed.file.name
        self.server.files[f"/isos/{name}"] = signed.data
        self.server.files[f"/isos/{name}.minisig"] = signed.minisig.read_bytes()
        self._refresh()
        return f"{self.server.url}/isos/{name}"

    def _names(self) -> list[str]:
        return sorted(
            p.removeprefix("/isos/")
            for p in self.server.files
            if p.startswith("/isos/") and p != "/isos/"
        )

    def _refresh(self) -> None:
        names = self._names()
        rows = "".join(f'<a href="{n}">{n}</a>\n' for n in names)
        self.server.files["/isos/"] = (
            f"<html><body><h1>Index of /isos/</h1><pre>{rows}</pre></body></html>".encode()
        )
        assets = [
            {
                "name": n,
                "browser_download_url": f"{self.server.url}/isos/{n}",
                "size": len(self.server.files[f"/isos/{n}"]),
            }
            for n in names
        ]
        self.server.files["/releases"] = json.dumps(
            [{"tag_name": "nightly", "assets": assets}]
        ).encode()
