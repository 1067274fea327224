"""SBOM exposure through the real daemon: an Image declares a CycloneDX SBOM served over
loopback HTTP, a Debian OSV record names one of its packages, and the daemon's plan shows
every device running that image exposed, with the clean image recommended (in the plan and
on the status branch). An SBOM whose bytes do not match the declared sha256 is not used."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pytest_httpserver import HTTPServer

from tests.support.daemon import GitOps, running_gitops, wait_for
from tests.support.gitrepo import git

SBOM = json.dumps(
    {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "components": [
            {
                "type": "library",
                "name": "openssh-server",
                "version": "1:9.2p1-2+deb12u2",
                "purl": "pkg:deb/debian/openssh-server@1:9.2p1-2+deb12u2?upstream=openssh",
            }
        ],
    }
).encode()
RECORD = {
    "id": "DSA-5000-1",
    "affected": [
        {
            "package": {"ecosystem": "Debian:12", "name": "openssh"},
            "ranges": [
                {
                    "type": "ECOSYSTEM",
                    "events": [{"introduced": "0"}, {"fixed": "1:9.2p1-2+deb12u3"}],
                }
            ],
        }
    ],
    "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
}


COMPLIANCE = yaml.safe_dump(
    {
        "apiVersion": "gitfirm.io/v1",
        "kind": "CompliancePolicy",
        "metadata": {"name": "baseline"},
        "spec": {"maxCveSeverity": "critical"},
    }
)


def _status_file(ops: GitOps, name: str) -> str:
    return git(ops.remote, "show", f"status:{name}")


def _images_with_sbom(ops: GitOps, url: str, digest: str) -> str:
    docs: list[dict[str, Any]] = list(
        yaml.safe_load_all((ops.work / "images/images.yaml").read_text())
    )
    for doc in docs:
        if doc["spec"]["version"] == "1.4.3":
            doc["spec"]["sbom"] = {"url": url, "sha256": digest, "ecosystem": "Debian:12"}
    return yaml.safe_dump_all(docs, sort_keys=False)


def _exposure(ops: GitOps, revision: str) -> dict[str, list[str]] | None:
    plan = ops.daemon.state.plan
    if plan is None or plan.revision != revision:
        return None
    return {d.name: [a.name for a in d.advisories] for d in plan.devices}


async def test_daemon_plans_package_exposure_from_a_verified_sbom(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/good.json").respond_with_data(SBOM)
    httpserver.expect_request("/tampered.json").respond_with_data(SBOM + b"\n")
    digest = hashlib.sha256(SBOM).hexdigest()
    async with running_gitops(tmp_path) as ops:
        tampered = ops.merge(
            {
                "advisories/DSA-5000-1.json": json.dumps(RECORD),
                "images/images.yaml": _images_with_sbom(
                    ops, httpserver.url_for("/tampered.json"), digest
                ),
            },
            "SBOM of 1.4.3 (wrong bytes served)",
        )
        await wait_for(lambda: _exposure(ops, tampered) is not None, 30, "plan")
        assert set(map(tuple, (_exposure(ops, tampered) or {}).values())) == {()}
        assert '"event": "sbom-refused"' in ops.logs.getvalue()

        good = ops.merge(
            {
                "images/images.yaml": _images_with_sbom(
                    ops, httpserver.url_for("/good.json"), digest
                ),
                "policies/compliance.yaml": COMPLIANCE,
            },
            "SBOM of 1.4.3",
        )
        await wait_for(lambda: _exposure(ops, good) is not None, 30, "plan")
        exposure = _exposure(ops, good)
        assert exposure is not None
        assert set(exposure) == set(ops.fleet.names)
        assert all(names == ["dsa-5000-1"] for names in exposure.values()), exposure
        plan = ops.daemon.state.plan
        assert plan is not None
        for device in plan.devices:
            assert device.recommendation is not None
            assert device.recommendation.version == "1.4.4"

        def recommended() -> bool:
            doc = yaml.safe_load(_status_file(ops, "compliance.yaml"))
            verdicts = doc.get("devices", {}).values()
            return bool(verdicts) and all(
                str(v.get("recommendation", "")).startswith("1.4.4: the least exposed")
                for v in verdicts
            )

        await ops.daemon.reconcile(None)  # a pass ends by submitting the status snapshot
        await ops.daemon.writer.flush()
        assert recommended(), _status_file(ops, "compliance.yaml")
        assert "| Recommended |" in _status_file(ops, "README.md")
