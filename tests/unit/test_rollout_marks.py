"""HighWaterMarks: a table in the journal's sqlite file that only rises."""

from __future__ import annotations

from pathlib import Path

from reconciler.clock import FakeClock
from reconciler.rollout.journal import Journal
from reconciler.rollout.marks import HighWaterMarks


def test_marks_rise_per_train_and_persist_beside_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    journal = Journal(path)
    marks = HighWaterMarks(path)
    now = FakeClock().now()
    assert marks.completed("production", "1.4.3", "r1", now)
    assert not marks.completed("production", "1.4.2", "r2", now)  # never goes down
    assert marks.completed("production", "1.3.8", "r3", now)
    assert not marks.completed("production", "not-a-version", "r4", now)
    assert marks.completed("testing", "2025.01.10-0020-rolling", "r5", now)
    marks.close()
    journal.close()
    again = HighWaterMarks(path)
    assert again.snapshot() == {
        "production": {"1.3": "1.3.8", "1.4": "1.4.3"},
        "testing": {"rolling": "2025.01.10-0020-rolling"},
    }
    again.close()
