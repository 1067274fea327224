"""``gitfirm advisories import``: from an OSV export (zip or directory), only the records
that touch VyOS or a package of a declared image's SBOM land in advisories/osv/, and the
repository stays valid with them; ``gitfirm plan`` then shows the package exposure."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from pytest_httpserver import HTTPServer

from reconciler.cli import main
from reconciler.model.loader import load_repository
from tests.support.configrepo import DEVICE, IMAGE, TRUST, write_repo
from tests.support.planning import facts

SBOM = b"openssh\t1:9.2p1-2+deb12u2\nlibc6:amd64\t2.36-9+deb12u4\n"
HIGH = {"database_specific": {"severity": "HIGH"}}


def _record(rid: str, ecosystem: str, name: str, **extra: Any) -> dict[str, Any]:
    events = [{"introduced": "0"}, {"fixed": "1:99"}]
    affected: dict[str, Any] = {
        "package": {"ecosystem": ecosystem, "name": name},
        "ranges": [{"type": "ECOSYSTEM", "events": events}],
    }
    return {"id": rid, "affected": [affected], **extra}


RECORDS = {
    "DSA-1.json": _record("DSA-1", "Debian:12", "openssh", **HIGH),  # kept
    "DSA-2.json": _record("DSA-2", "Debian:12", "libc6", **HIGH),  # kept (arch dropped)
    "DSA-3.json": _record("DSA-3", "Debian:12", "openssl", **HIGH),  # not installed
    "DSA-4.json": _record("DSA-4", "Debian:13", "openssh", **HIGH),  # other release
    "DSA-5.json": _record("DSA-5", "Debian:12", "openssh", withdrawn="2025-01-01T00:00:00Z"),
    "DSA-6.json": _record("DSA-6", "Debian:12", "openssh"),  # kept: severity unknown
    "GHSA-n.json": _record("GHSA-n", "VyOS", "vyos"),  # VyOS needs a severity
    "GHSA-v.json": {
        "id": "GHSA-v",
        "affected": [{"package": {"ecosystem": "VyOS", "name": "vyos"}, "versions": ["1.4.3"]}],
        **HIGH,
    },
}


def _repo(tmp_path: Path, url: str) -> Path:
    image = yaml.safe_load(IMAGE)
    image["spec"]["sbom"] = {
        "url": url,
        "sha256": hashlib.sha256(SBOM).hexdigest(),
        "ecosystem": "Debian:12",
    }
    files = {"fleet/r1.yaml": DEVICE, "images/i.yaml": yaml.safe_dump(image), "t.yaml": TRUST}
    return write_repo(tmp_path / "repo", files)


@pytest.mark.parametrize("form", ["zip", "dir"])
def test_import_keeps_what_touches_the_fleet(
    tmp_path: Path, httpserver: HTTPServer, form: str, capsys: pytest.CaptureFixture[str]
) -> None:
    httpserver.expect_request("/sbom.txt").respond_with_data(SBOM)
    repo = _repo(tmp_path, httpserver.url_for("/sbom.txt"))
    export = tmp_path / "export"
    export.mkdir()
    for name, record in RECORDS.items():
        (export / name).write_text(json.dumps(record))
    source = export
    if form == "zip":
        source = Path(shutil.make_archive(str(tmp_path / "Debian"), "zip", export))
        assert zipfile.is_zipfile(source)
    assert main(["advisories", "import", str(source), "--repo", str(repo)]) == 0
    imported = sorted(p.name for p in (repo / "advisories" / "osv").iterdir())
    assert imported == ["DSA-1.json", "DSA-2.json", "DSA-6.json", "GHSA-v.json"]
    out = capsys.readouterr().out
    assert "imported 4 record(s)" in out
    assert "2 unrelated, 1 withdrawn, 1 on VyOS without severity" in out
    result = load_repository(repo)
    assert result.state is not None
    assert sorted(result.state.advisories) == ["dsa-1", "dsa-2", "dsa-6", "ghsa-v"]
    assert result.state.advisories["dsa-6"].spec.severity == "unknown"


def test_import_refuses_what_is_no_export(tmp_path: Path, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/sbom.txt").respond_with_data(SBOM)
    repo = _repo(tmp_path, httpserver.url_for("/sbom.txt"))
    bogus = tmp_path / "not.zip"
    bogus.write_bytes(b"hello")
    assert main(["advisories", "import", str(bogus), "--repo", str(repo)]) == 1


def test_plan_shows_package_exposure(
    tmp_path: Path, httpserver: HTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    httpserver.expect_request("/sbom.txt").respond_with_data(SBOM)
    repo = _repo(tmp_path, httpserver.url_for("/sbom.txt"))
    write_repo(repo, {"advisories/dsa-1.json": json.dumps(RECORDS["DSA-1.json"])})
    observed = tmp_path / "observed.json"
    observed.write_text(
        json.dumps({"devices": [facts("r1", "1.4.3").model_dump(mode="json")]}), "utf-8"
    )
    assert main(["plan", str(repo), "--observed", str(observed), "--format", "json"]) == 0
    (device,) = json.loads(capsys.readouterr().out)["devices"]
    assert [a["name"] for a in device["advisories"]] == ["dsa-1"]
