"""Journal.prune: events past the cut-off go, newer events and every record stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from reconciler.rollout.journal import DeviceRecord, Journal
from reconciler.rollout.model import Transition

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def _write(journal: Journal, device: str, when: datetime) -> None:
    event = Transition(device, "pending", "precheck", "rev", "fleet", when)
    journal.write_device(DeviceRecord("fleet", device, "rev"), event)


def test_prune_compares_instants_across_offsets(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite3")
    berlin = timezone(timedelta(hours=1))
    _write(journal, "old", NOW - timedelta(days=31))
    # 00:30 at +01:00 is 23:30 UTC the day before the cut-off: older, though it reads later.
    _write(journal, "tz-old", (NOW - timedelta(days=30, minutes=30)).astimezone(berlin))
    _write(journal, "new", NOW - timedelta(days=29))
    assert journal.prune(NOW - timedelta(days=30)) == 2
    assert [e.device for e in journal.events("fleet")] == ["new"]
    assert journal.device("fleet", "old") is not None  # records are current state
    assert journal.prune(NOW - timedelta(days=30)) == 0
    journal.close()


def test_prune_refuses_a_naive_time(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite3")
    with pytest.raises(ValueError, match="timezone-aware"):
        journal.prune(datetime(2026, 1, 1))
    journal.close()
