"""Finds as ``kind: Device`` documents, and as discovery proposals (one per router)."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import Any

import yaml

from reconciler.discovery.probe import Found
from reconciler.proposals.model import Proposal

__all__ = ["ANNOTATIONS", "DEFAULT_KEY_ENV", "device_documents", "discovery_proposals"]

DEFAULT_KEY_ENV = "VYOS_API_KEY_DEFAULT"
"""The key variable a proposed Device names when no key reference was given (it matches the
daemon's default allowlist prefix ``VYOS_API_KEY_``); edit it in the proposal as needed."""

ANNOTATIONS = {
    "version": "gitfirm.io/discovered-version",
    "hostname": "gitfirm.io/discovered-hostname",
    "declared": "gitfirm.io/declared-as",
    "note": "gitfirm.io/discovery-note",
}
"""What discovery says beyond the Device's fields, as annotations."""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:50].strip("-")


def _names(found: Sequence[Found], declared: Collection[str]) -> list[str]:
    by_address = [f"vyos-{_slug(f.host)}-{f.port}" for f in found]
    wanted = [_slug(f.hostname or "") or a for f, a in zip(found, by_address, strict=True)]
    clash = {w for w in wanted if wanted.count(w) > 1} | set(declared)
    # A name two routers share (default hostnames), or one a Device already has, is
    # replaced by the router's address.
    return [a if w in clash else w for w, a in zip(wanted, by_address, strict=True)]


def device_documents(
    found: Sequence[Found],
    *,
    site: str,
    key_env: str,
    key_file: str | None = None,
    declared: Collection[str] = (),
) -> list[dict[str, Any]]:
    """One ``kind: Device`` per router: its address, platform, the certificate pin and a
    reference to its API key; version, hostname and a declaring Device as annotations.
    Names come from host names, never one of ``declared`` (the Devices' names)."""
    docs = []
    for f, name in zip(found, _names(found, declared), strict=True):
        annotations = {
            ANNOTATIONS["version"]: f.version,
            ANNOTATIONS["hostname"]: f.hostname,
            ANNOTATIONS["declared"]: f.declared_as,
            ANNOTATIONS["note"]: f.note,
        }
        platform = {"arch": f.architecture or "amd64", "flavor": f.flavor or "generic"}
        key = {"file": key_file} if key_file else {"env": key_env}
        docs.append(
            {
                "apiVersion": "gitfirm.io/v1",
                "kind": "Device",
                "metadata": {
                    "name": name,
                    "annotations": {k: v for k, v in annotations.items() if v},
                },
                "spec": {
                    "address": f.address,
                    "platform": platform,
                    "credentials": {"apiKey": key},
                    "tls": {"fingerprint": f.fingerprint},
                    "site": site,
                },
            }
        )
    return docs


def discovery_proposals(
    found: Sequence[Found],
    *,
    site: str,
    key_env: str,
    key_file: str | None = None,
    declared: Collection[str] = (),
) -> list[Proposal]:
    """One proposal per router no Device declares, adding ``fleet/discovered/<name>.yaml``.

    Its subject is the address and the certificate pin: a router found again (running a
    newer version) is the same proposal; one with a new certificate is a new one.
    """
    new = [f for f in found if f.declared_as is None]
    proposals = []
    for f, doc in zip(
        new,
        device_documents(new, site=site, key_env=key_env, key_file=key_file, declared=declared),
        strict=True,
    ):
        name = doc["metadata"]["name"]
        facts = ", ".join(
            f"{label} {value}"
            for label, value in (
                ("version", f.version),
                ("flavor", f.flavor),
                ("hostname", f.hostname),
            )
            if value
        )
        body = (
            f"gitfirm discovery found a VyOS HTTP API at {f.address} that no Device declares"
            f"{f' ({facts})' if facts else ''}.\n\n"
            f"The certificate pin is the one seen at discovery (SHA-256 {f.fingerprint}): "
            "check it against the router (`show pki certificate ... fingerprint sha256` or "
            "the console) before merging.\n"
        )
        proposals.append(
            Proposal(
                kind="discovery",
                subject=f"{f.address} {f.fingerprint}",
                title=f"Add discovered router {name} ({f.address})",
                body=body,
                files={f"fleet/discovered/{name}.yaml": yaml.safe_dump(doc, sort_keys=False)},
            )
        )
    return proposals
