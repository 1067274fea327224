"""OSV records by the spec: every event type, several ranges, CVSS-only severity, withdrawn
records and other ecosystems, read by the real loader and judged by the planner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reconciler.model.kinds import Advisory
from reconciler.model.loader import load_repository
from reconciler.planning.compliance import affects
from reconciler.planning.paths import version_of
from reconciler.planning.planner import plan
from tests.support.configrepo import DEVICE, IMAGE, POLICY, TRUST, write_repo
from tests.support.planning import NOW, facts

BASE = {"fleet/r1.yaml": DEVICE, "images/i.yaml": IMAGE, "trust.yaml": TRUST, "p.yaml": POLICY}
HIGH = {"database_specific": {"severity": "HIGH"}}
VERSIONS = ["1.3.7", "1.3.8", "1.4.0", "1.4.1", "1.4.2", "1.4.3", "1.4.4", "1.4.5"]
# NVD-style: severity only as CVSS vectors.
CVSS3_CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"  # 9.8
CVSS3_MEDIUM = "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:L/I:L/A:N"  # 5.4
CVSS4_HIGH = "CVSS:4.0/AV:N/AC:L/AT:N/PR:L/UI:N/VC:H/VI:L/VA:N/SC:N/SI:N/SA:N"


def _record(
    events: list[list[dict[str, str]]] | None = None, *, rid: str = "OSV-1", **extra: Any
) -> dict[str, Any]:
    affected: dict[str, Any] = {"package": {"ecosystem": "VyOS", "name": "vyos"}}
    if events is not None:
        affected["ranges"] = [{"type": "ECOSYSTEM", "events": e} for e in events]
    return {"schema_version": "1.6.0", "id": rid, "affected": [affected], **HIGH, **extra}


def _load(tmp_path: Path, *records: dict[str, Any]) -> dict[str, Advisory]:
    files = {f"advisories/{i}.json": json.dumps(r) for i, r in enumerate(records)}
    result = load_repository(write_repo(tmp_path, {**BASE, **files}))
    assert result.state is not None, [str(e) for e in result.errors]
    return result.state.advisories


def _affected(advisory: Advisory) -> list[str]:
    return [v for v in VERSIONS if affects(advisory, version_of(v))]


def test_introduced_zero_then_fixed_affects_everything_below_the_fix(tmp_path: Path) -> None:
    """The usual OSV range, ``introduced: "0"`` then ``fixed``: main matched nothing."""
    advisory = _load(tmp_path, _record([[{"introduced": "0"}, {"fixed": "1.4.1"}]]))["osv-1"]
    assert _affected(advisory) == ["1.3.7", "1.3.8", "1.4.0"]


def test_last_affected_is_inclusive_and_closes_the_range(tmp_path: Path) -> None:
    record = _record([[{"introduced": "1.4.0"}, {"last_affected": "1.4.2"}]])
    assert _affected(_load(tmp_path, record)["osv-1"]) == ["1.4.0", "1.4.1", "1.4.2"]


def test_limit_caps_an_open_range(tmp_path: Path) -> None:
    record = _record([[{"introduced": "1.3.8"}, {"limit": "1.4.2"}]])
    assert _affected(_load(tmp_path, record)["osv-1"]) == ["1.3.8", "1.4.0", "1.4.1"]


def test_unsorted_events_with_two_pairs_in_one_range(tmp_path: Path) -> None:
    """Events need not be sorted; one range may reopen after a fix (a regression)."""
    events = [{"fixed": "1.4.5"}, {"introduced": "1.4.3"}, {"fixed": "1.4.1"}, {"introduced": "0"}]
    assert _affected(_load(tmp_path, _record([events]))["osv-1"]) == [
        "1.3.7",
        "1.3.8",
        "1.4.0",
        "1.4.3",
        "1.4.4",
    ]


def test_several_ranges_and_a_versions_list(tmp_path: Path) -> None:
    """A range may span trains: the VyOS ecosystem orders 1.3 before 1.4."""
    record = _record(
        [[{"introduced": "1.3.8"}, {"fixed": "1.4.1"}], [{"introduced": "1.4.4"}]],
    )
    record["affected"][0]["versions"] = ["1.4.2"]
    assert _affected(_load(tmp_path, record)["osv-1"]) == [
        "1.3.8",
        "1.4.0",
        "1.4.2",
        "1.4.4",
        "1.4.5",
    ]


def test_semver_ranges_count_and_git_ranges_do_not(tmp_path: Path) -> None:
    record = _record()
    record["affected"][0]["ranges"] = [
        {"type": "SEMVER", "events": [{"introduced": "1.4.2"}, {"fixed": "1.4.3"}]},
        {"type": "GIT", "repo": "https://x/y", "events": [{"introduced": "abc123"}]},
    ]
    assert _affected(_load(tmp_path, record)["osv-1"]) == ["1.4.2"]


def test_severity_from_cvss_vectors_only(tmp_path: Path) -> None:
    def cvss_only(rid: str, *vectors: tuple[str, str]) -> dict[str, Any]:
        record = _record([[{"introduced": "0"}]], rid=rid)
        del record["database_specific"]
        record["severity"] = [{"type": t, "score": s} for t, s in vectors]
        return record

    advisories = _load(
        tmp_path,
        cvss_only("CVE-1", ("CVSS_V3", CVSS3_CRITICAL)),
        cvss_only("CVE-2", ("CVSS_V3", CVSS3_MEDIUM)),
        cvss_only("CVE-3", ("CVSS_V4", CVSS4_HIGH)),
        # The highest of several entries; a malformed vector says nothing.
        cvss_only("CVE-4", ("CVSS_V3", "CVSS:3.1/AV:X"), ("CVSS_V3", CVSS3_MEDIUM)),
    )
    severities = {name: a.spec.severity for name, a in advisories.items()}
    assert severities == {
        "cve-1": "critical",
        "cve-2": "medium",
        "cve-3": "high",
        "cve-4": "medium",
    }


def test_withdrawn_record_is_ignored_even_without_severity(tmp_path: Path) -> None:
    withdrawn = _record([[{"introduced": "0"}]], withdrawn="2025-01-01T00:00:00Z")
    del withdrawn["database_specific"]
    assert _load(tmp_path, withdrawn) == {}


def test_other_ecosystems_are_kept_with_their_events(tmp_path: Path) -> None:
    record = {
        "id": "DSA-1",
        "affected": [
            {
                "package": {"ecosystem": "Debian:12", "name": "openssh"},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1:9.2p1-2"}]}
                ],
                "versions": ["1:9.2p1-1"],
            }
        ],
        "severity": [{"type": "CVSS_V3", "score": CVSS3_CRITICAL}],
    }
    advisory = _load(tmp_path, record)["dsa-1"]
    (package,) = advisory.spec.packages
    assert (package.ecosystem, package.name, package.versions) == (
        "Debian:12",
        "openssh",
        ["1:9.2p1-1"],
    )
    assert [(e.introduced, e.fixed) for e in package.ranges[0].events] == [
        ("0", None),
        (None, "1:9.2p1-2"),
    ]
    assert _affected(advisory) == []  # no VyOS version is named


def test_other_ecosystem_without_severity_is_kept_as_unknown(tmp_path: Path) -> None:
    record = {
        "id": "DEBIAN-CVE-2025-1",
        "affected": [{"package": {"ecosystem": "Debian:12", "name": "frr"}, "versions": ["8.4"]}],
    }
    assert _load(tmp_path, record)["debian-cve-2025-1"].spec.severity == "unknown"


def test_plan_reports_the_exposure_of_an_introduced_zero_range(tmp_path: Path) -> None:
    """Through the planner: main planned the device as not exposed."""
    record = _record([[{"introduced": "0"}, {"fixed": "1.4.4"}]], rid="GHSA-x")
    write_repo(tmp_path, {**BASE, "advisories/a.json": json.dumps(record)})
    result = load_repository(tmp_path)
    assert result.state is not None
    planned = plan(result.state, {"r1": facts("r1", "1.4.3")}, None, NOW).device("r1")
    assert planned is not None
    assert [a.name for a in planned.advisories] == ["ghsa-x"]
