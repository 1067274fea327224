"""Seeded fleets of virtual devices and the matching ``Device`` documents.

:func:`make_fleet` gives a mix of release families (1.3, 1.4, older and newer rolling),
sites, redundancy pairs and architectures; the same ``(count, seed)`` always gives the same
fleet. :func:`fleet_documents` renders ``kind: Device`` documents (``gitfirm.io/v1``) that
point at a running simulator, with the key as ``{env: NAME}``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from reconciler.simulator.device import VirtualDevice

__all__ = ["FAMILY_IMAGES", "device_name", "fleet_documents", "make_fleet", "write_fleet"]

# Installed images per starting release, oldest first; the last one runs and is default.
FAMILY_IMAGES: dict[str, list[str]] = {
    "1.3": ["1.3.7", "1.3.8"],
    "1.4": ["1.4.2", "1.4.3"],
    "rolling-old": ["1.5-rolling-202409250007", "1.5-rolling-202410230007"],
    "rolling": ["1.5-rolling-202410230007", "2025.01.10-0020-rolling"],
}
_MIX = ["1.3", "1.4", "1.4", "1.4", "rolling-old", "rolling", "rolling"]
_SITES = ["ams", "fra", "lon", "nyc", "sin"]


def device_name(index: int) -> str:
    """The name of device ``index`` (0-based): ``r0001``, ``r0002`` ..."""
    return f"r{index + 1:04d}"


def make_fleet(
    count: int, *, seed: int = 0, releases: Sequence[str] | None = None, arch: str | None = None
) -> list[VirtualDevice]:
    """Build ``count`` devices. ``releases`` restricts the mix (keys of FAMILY_IMAGES);
    ``arch`` forces one architecture (otherwise about one in eight is arm64)."""
    rng = random.Random(seed)
    mix = list(releases) if releases else _MIX
    devices = []
    for i in range(count):
        images = list(
            FAMILY_IMAGES[mix[i % len(mix)]] if releases else FAMILY_IMAGES[rng.choice(mix)]
        )
        peers = [
            (f"192.0.2.{rng.randint(1, 254)}", 64_512 + rng.randint(0, 99))
            for _ in range(rng.randint(1, 3))
        ]
        devices.append(
            VirtualDevice(
                name=device_name(i),
                arch=arch or ("arm64" if rng.random() < 0.125 else "amd64"),
                flavor="generic",
                images=images,
                default=images[-1],
                running=images[-1],
                config={
                    "system": {"host-name": device_name(i)},
                    "service": {"https": {"api": {"keys": {"id": {"gitfirm": {}}}}}},
                },
                bgp_peers=peers,
                memory_total_mb=rng.choice([2048, 4096, 8192]),
                memory_used_mb=rng.randint(300, 1500),
                load1=round(rng.uniform(0.01, 0.6), 2),
            )
        )
    return devices


def fleet_documents(
    devices: Sequence[VirtualDevice], base_url: Callable[[str], str], *, key_env: str
) -> list[dict[str, Any]]:
    """``kind: Device`` documents for the fleet; ``base_url(name)`` gives each address."""
    docs = []
    for i, dev in enumerate(devices):
        labels = {"family": dev.family, "tier": "edge" if i % 3 else "core"}
        spec: dict[str, Any] = {
            "address": base_url(dev.name),
            "platform": {"arch": dev.arch, "flavor": dev.flavor},
            "credentials": {"apiKey": {"env": key_env}},
            "site": _SITES[(i // 2) % len(_SITES)],
        }
        if spec["address"].startswith("http://"):
            spec["insecurePlaintext"] = True  # the simulator speaks plain HTTP on loopback
        if i % 4 < 2:
            # Consecutive pairs share a redundancy group (half the fleet).
            spec["redundancyGroup"] = f"pair-{i // 2 + 1:04d}"
        docs.append(
            {
                "apiVersion": "gitfirm.io/v1",
                "kind": "Device",
                "metadata": {"name": dev.name, "labels": labels},
                "spec": spec,
            }
        )
    return docs


def write_fleet(path: Path, docs: Sequence[dict[str, Any]]) -> None:
    """Write the documents as one multi-document YAML file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False), encoding="utf-8")
