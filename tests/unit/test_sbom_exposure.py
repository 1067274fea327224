"""SBOM-based exposure: a CycloneDX SBOM fetched over loopback HTTP and checked against its
declared sha256, a small Debian OSV corpus read by the real loader, and the planner's
exposure per package in dpkg order (epochs, ``~``, revisions)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer

from reconciler.errors import ImageRefused
from reconciler.images.sbom import fetch_sbom
from reconciler.model.kinds import Image
from reconciler.model.loader import load_repository
from reconciler.model.sbom import parse_packages
from reconciler.planning.planner import plan
from tests.support.configrepo import write_repo
from tests.support.planning import NOW, compliance, desired, device, facts, image

INSTALLED = {
    "openssh-server": ("1:9.2p1-2+deb12u2", "openssh"),
    "strongswan-charon": ("5.9.8-5~deb12u1", "strongswan"),
    "frr": ("8.4.4-1.1~deb12u1", None),
    "bar": ("1.0-1", None),
    "libfoo": ("2:1.0-1", None),
    "linux-image-amd64": ("6.1.0~rc7-1", "linux"),
    "curl": ("7.88.1-10+deb12u5", None),
    "zlib1g": ("1:1.2.13.dfsg-1", "zlib"),
    "sudo": ("1.9.13p3-1+deb12u1", None),
}


def _cyclonedx() -> bytes:
    components = []
    for name, (version, source) in INSTALLED.items():
        purl = f"pkg:deb/debian/{name}@{version}?arch=amd64&distro=debian-12"
        if source:
            purl += f"&upstream={source}"
        components.append({"type": "library", "name": name, "version": version, "purl": purl})
    bom = {"bomFormat": "CycloneDX", "specVersion": "1.5", "components": components}
    return json.dumps(bom).encode()


def _osv(rid: str, package: str, *, ecosystem: str = "Debian:12", **affected: Any) -> str:
    record = {
        "id": rid,
        "affected": [{"package": {"ecosystem": ecosystem, "name": package}, **affected}],
        "database_specific": {"severity": "HIGH"},
    }
    return json.dumps(record)


def _events(*events: dict[str, str]) -> dict[str, Any]:
    return {"ranges": [{"type": "ECOSYSTEM", "events": list(events)}]}


# Advisory -> whether the SBOM's packages are affected, and why.
CORPUS = {
    # Source name via the purl's upstream; +deb12u2 < +deb12u3.
    "DSA-openssh": (_osv("DSA-openssh", "openssh", **_events({"introduced": "0"}, {"fixed": "1:9.2p1-2+deb12u3"})), True),
    # The same package in another Debian release: never matched.
    "DSA-openssh-13": (_osv("DSA-openssh-13", "openssh", ecosystem="Debian:13", **_events({"introduced": "0"}, {"fixed": "1:9.9p1-1"})), False),
    # ~deb12u1 sorts before the release revision it backports.
    "DSA-strongswan": (_osv("DSA-strongswan", "strongswan", **_events({"introduced": "0"}, {"fixed": "5.9.8-5"})), True),
    "DSA-frr-fixed": (_osv("DSA-frr-fixed", "frr", **_events({"introduced": "0"}, {"fixed": "8.4.4-1.1~deb12u1"})), False),
    "DSA-frr-open": (_osv("DSA-frr-open", "frr", **_events({"introduced": "0"}, {"fixed": "8.4.4-1.1~deb12u2"})), True),
    # Epochs: 1:0.5 is newer than 1.0 (epoch 0); 2:1.0 is newer than 1:5.0.
    "DSA-bar": (_osv("DSA-bar", "bar", **_events({"introduced": "0"}, {"fixed": "1:0.5-1"})), True),
    "DSA-libfoo": (_osv("DSA-libfoo", "libfoo", **_events({"introduced": "0"}, {"fixed": "1:5.0-1"})), False),
    # A release candidate (~rc7) comes before the release that introduced the bug.
    "DSA-linux": (_osv("DSA-linux", "linux", **_events({"introduced": "6.1.0-1"})), False),
    "DSA-curl": (_osv("DSA-curl", "curl", **_events({"introduced": "7.88.1-1"}, {"last_affected": "7.88.1-10+deb12u5"})), True),
    "DSA-zlib": (_osv("DSA-zlib", "zlib", versions=["1:1.2.13.dfsg-1"]), True),
    "DSA-sudo": (_osv("DSA-sudo", "sudo", **_events({"introduced": "0"}, {"limit": "1.9.13p3-1"})), False),
    # Debian records often give no severity: exposure all the same ("unknown").
    "DEBIAN-CVE-1": (json.dumps({"id": "DEBIAN-CVE-1", "affected": [{"package": {"ecosystem": "Debian:12", "name": "curl"}, "versions": ["7.88.1-10+deb12u5"]}]}), True),
    "DSA-absent": (_osv("DSA-absent", "openssl", **_events({"introduced": "0"})), False),
}  # fmt: skip


def _with_sbom(base: Image, url: str, body: bytes) -> Image:
    doc = base.model_dump(mode="json")
    doc["spec"]["sbom"] = {
        "url": url,
        "sha256": hashlib.sha256(body).hexdigest(),
        "ecosystem": "Debian:12",
    }
    return Image.model_validate(doc)


def test_parse_reads_cyclonedx_and_dpkg_lists() -> None:
    packages = parse_packages(_cyclonedx())
    assert packages["openssh-server"] == packages["openssh"] == "1:9.2p1-2+deb12u2"
    listed = parse_packages(b"libc6:amd64\t2.36-9+deb12u4\nopenssh\t1:9.2p1-2\n")
    assert listed == {"libc6": "2.36-9+deb12u4", "openssh": "1:9.2p1-2"}


async def test_sbom_exposure_per_package(tmp_path: Path, httpserver: HTTPServer) -> None:
    body = _cyclonedx()
    httpserver.expect_request("/sbom.json").respond_with_data(body)
    running = _with_sbom(image("1.4.3"), httpserver.url_for("/sbom.json"), body)
    async with httpx.AsyncClient() as client:
        packages = await fetch_sbom(running, client)

    files = {f"advisories/{rid}.json": text for rid, (text, _) in CORPUS.items()}
    result = load_repository(write_repo(tmp_path, files))
    assert result.state is not None, [str(e) for e in result.errors]
    state = desired(
        [device("r1")],
        [running, image("1.4.4")],
        compliance_policies=[compliance(maxCveSeverity="medium", enforcement="warn")],
        advisories=result.state.advisories.values(),
    )
    planned = plan(state, {"r1": facts("r1", "1.4.3")}, None, NOW, sboms={running.name: packages})
    found = planned.device("r1")
    assert found is not None
    expected = sorted(rid.lower() for rid, (_, hit) in CORPUS.items() if hit)
    assert sorted(a.name for a in found.advisories) == expected
    assert "dsa-openssh (high) affects 1.4.3" in "; ".join(found.compliance)
    unknown = [a for a in found.advisories if a.name == "debian-cve-1"]
    assert unknown[0].severity == "unknown"
    assert "debian-cve-1" not in "; ".join(found.compliance)  # not judged against a limit
    # Without the SBOM nothing is known about the packages.
    bare = plan(state, {"r1": facts("r1", "1.4.3")}, None, NOW).device("r1")
    assert bare is not None and bare.advisories == ()


async def test_an_sbom_that_does_not_match_its_sha256_is_refused(httpserver: HTTPServer) -> None:
    body = _cyclonedx()
    httpserver.expect_request("/sbom.json").respond_with_data(body + b" ")
    declared = _with_sbom(image("1.4.3"), httpserver.url_for("/sbom.json"), body)
    async with httpx.AsyncClient() as client:
        with pytest.raises(ImageRefused, match="sha256-mismatch"):
            await fetch_sbom(declared, client)
