"""Validate a generated 10,000-device config repository, 3 times.

One JSON line per run, {"bench": "validate", "run": i, "devices": N, "files": F,
"seconds": S, "rss_mb": M}, then min, median and max lines. "seconds" covers reading,
parsing, model validation and cross-reference checks; an invalid repository fails the bench.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.harness import RUNS, emit, fail, rss_mb, summarize
from reconciler.model.loader import load_repository

PER_FILE = 200
SITES = ["dc-fra", "dc-ams", "edge-ber", "edge-muc", "dc-par"]


def _device(i: int) -> str:
    site = SITES[i % len(SITES)]
    arch = "arm64" if (i // 2) % 7 == 0 else "amd64"
    train = "lts" if (i // 2) % 3 else "rolling"
    return f"""apiVersion: gitfirm.io/v1
kind: Device
metadata:
  name: r{i:05d}
  labels:
    train: {train}
    role: {"core" if i % 2 else "edge"}
spec:
  address: https://10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}:443
  platform:
    arch: {arch}
  credentials:
    apiKey:
      env: VYOS_API_KEY
  tls:
    fingerprint: "{i:064x}"
  site: {site}
  redundancyGroup: g{i // 2:05d}
"""


def _fixed_docs() -> str:
    images = []
    for version, channel in (("1.4.3", "production"), ("2025.11.17-0021-rolling", "testing")):
        for arch in ("amd64", "arm64"):
            images.append(f"""apiVersion: gitfirm.io/v1
kind: Image
metadata:
  name: vyos-{version}-{arch}
spec:
  version: "{version}"
  channel: {channel}
  platforms: [{{arch: {arch}}}]
  source:
    url: https://images.example.net/vyos-{version}-generic-{arch}.iso
  sha256: {"ab" * 32}
  size: 524288000
  signature:
    minisign:
      key: release
""")
    policies = []
    for train, target in (("lts", 'version: "1.4.3"'), ("rolling", "channel: testing")):
        policies.append(f"""apiVersion: gitfirm.io/v1
kind: RolloutPolicy
metadata:
  name: {train}
spec:
  selector:
    matchLabels:
      train: {train}
  target:
    {target}
  windows:
    - schedule: "0 2 * * sat"
      duration: 4h
      timeZone: Europe/Berlin
""")
    trust = """apiVersion: gitfirm.io/v1
kind: TrustPolicy
metadata:
  name: vyos
spec:
  channels: [production, testing]
  minisign:
    - name: release
      publicKey: RWTR1ty93Oyontk6caB9WqmiQC4fgeyd/ejgRxCRGd2MQej7nqebHneP
"""
    return "---\n".join([*images, *policies, trust])


def generate(root: Path, devices: int) -> None:
    """Write a config repository with ``devices`` devices below ``root``."""
    (root / "fleet").mkdir(parents=True)
    for start in range(0, devices, PER_FILE):
        # Pairs stay in one file and one policy: every other device shares a group.
        chunk = [_device(i) for i in range(start, min(start + PER_FILE, devices))]
        (root / "fleet" / f"fleet-{start // PER_FILE:04d}.yaml").write_text("---\n".join(chunk))
    (root / "fixed.yaml").write_text(_fixed_docs())


def main() -> None:
    """Generate once, validate RUNS times, print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=10_000)
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate(root, args.devices)
        for run in range(1, RUNS + 1):
            start = time.perf_counter()
            result = load_repository(root)
            seconds = time.perf_counter() - start
            if result.errors or result.state is None:
                fail(f"validate: generated repository is invalid: {result.errors[:1]}")
            if len(result.state.devices) != args.devices:
                fail(f"validate: {len(result.state.devices)} of {args.devices} devices loaded")
            runs.append({"files": result.files, "seconds": round(seconds, 3), "rss_mb": rss_mb()})
            emit({"bench": "validate", "run": run, "devices": args.devices, **runs[-1]})
    for line in summarize(runs, ("seconds", "rss_mb"), bench="validate", devices=args.devices):
        emit(line)


if __name__ == "__main__":
    main()
