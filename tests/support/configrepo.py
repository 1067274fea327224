"""Small valid config documents for tests, and a helper to write a repository."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEVICE", "IMAGE", "POLICY", "TRUST", "write_repo"]

DEVICE = """\
apiVersion: gitfirm.io/v1
kind: Device
metadata:
  name: r1
  labels:
    role: core
spec:
  address: https://10.0.0.1:443
  credentials:
    apiKey:
      env: VYOS_KEY
  site: dc1
"""

IMAGE = """\
apiVersion: gitfirm.io/v1
kind: Image
metadata:
  name: vyos-1.4.3
spec:
  version: "1.4.3"
  channel: production
  platforms:
    - arch: amd64
  source:
    url: https://images.example.net/vyos-1.4.3-generic-amd64.iso
  sha256: abababababababababababababababababababababababababababababababab
  size: 4096
  signature:
    minisign:
      key: release
"""

TRUST = """\
apiVersion: gitfirm.io/v1
kind: TrustPolicy
metadata:
  name: vyos
spec:
  channels: [production]
  minisign:
    - name: release
      publicKey: RWTR1ty93Oyontk6caB9WqmiQC4fgeyd/ejgRxCRGd2MQej7nqebHneP
"""

POLICY = """\
apiVersion: gitfirm.io/v1
kind: RolloutPolicy
metadata:
  name: prod
spec:
  selector:
    matchLabels:
      role: core
  target:
    version: "1.4.3"
  strategy:
    maxParallel: 2
  windows:
    - schedule: "0 2 * * sat"
      duration: 4h
      timeZone: Europe/Berlin
"""


def write_repo(root: Path, files: dict[str, str]) -> Path:
    """Write ``files`` (relative path -> text) below ``root`` and return ``root``."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root
