"""CVE exposure over time, read from a real status branch's history of compliance.yaml: the
newest commit of each day counts, shard folders add up, and a malformed document counts as
empty (the status branch is not trusted)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from reconciler.history.stats import exposure_over_time
from reconciler.report.view import compliance_history
from tests.support.gitrepo import git, seeded_remote


def _doc(**devices: list[str]) -> str:
    verdicts: dict[str, Any] = {
        name: {"compliant": not ids, "exposures": [{"id": i, "severity": "high"} for i in ids]}
        for name, ids in devices.items()
    }
    return yaml.safe_dump({"summary": {}, "devices": verdicts})


def _commit(work: Path, files: dict[str, str], day: str) -> None:
    for rel, text in files.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(text)
        git(work, "add", "--", rel)
    stamp = {"GIT_COMMITTER_DATE": f"{day} +0000", "GIT_AUTHOR_DATE": f"{day} +0000"}
    git(work, "commit", "--quiet", "--no-gpg-sign", "-m", day, env=stamp)


def test_exposure_per_day_from_the_status_branch(tmp_path: Path) -> None:
    remote, work = seeded_remote(tmp_path, {"README.md": "status\n"}, branch="status")
    _commit(work, {"compliance.yaml": _doc(r1=["CVE-1"], r2=[])}, "2026-11-01T08:00:00")
    _commit(
        work, {"compliance.yaml": _doc(r1=["CVE-1", "CVE-2"], r2=["CVE-2"])}, "2026-11-01T20:00:00"
    )
    _commit(work, {"compliance.yaml": "devices: [not, a, mapping]\n"}, "2026-11-02T08:00:00")
    _commit(
        work,
        {
            "compliance.yaml": _doc(),
            "shards/fra/compliance.yaml": _doc(r1=["CVE-3"], r3=[]),
            "shards/ams/compliance.yaml": _doc(r2=["CVE-3", "CVE-4"]),
            "shards/ams/notes.yaml": _doc(r9=["CVE-9"]),
        },
        "2026-11-03T08:00:00",
    )
    _commit(work, {"README.md": "unrelated\n"}, "2026-11-04T08:00:00")
    git(work, "push", "--quiet", "origin", "status")

    history = compliance_history(str(remote), "status")
    assert [when.astimezone(UTC).date().isoformat() for when, _ in history] == [
        "2026-11-01",
        "2026-11-02",
        "2026-11-03",
    ]
    points = exposure_over_time(history)
    by_day = {p.day: (p.exposed, p.advisories, p.noncompliant) for p in points}
    assert by_day == {
        "2026-11-01": (2, 2, 2),  # the day's newest commit, not its first
        "2026-11-02": (0, 0, 0),  # malformed: counts as empty
        "2026-11-03": (2, 2, 2),  # two shards add up; other files are not compliance
    }
    assert points[0].day < points[-1].day
    assert datetime(2026, 11, 1, tzinfo=UTC) <= history[0][0]
