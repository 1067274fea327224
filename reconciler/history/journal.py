"""Reading the daemon's journal for a report: read-only, while the daemon may be writing.

Only the ``events`` table is read (one row per device transition, kept for
``journal_retention_days``); the connection is opened with ``mode=ro`` so a report can never
change the journal the running daemon owns.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from reconciler.errors import GitfirmError
from reconciler.history.stats import Step

__all__ = ["read_steps"]


def read_steps(path: Path, since: datetime | None = None) -> list[Step]:
    """Every journalled transition at or after ``since``, oldest first."""
    if not path.is_file():
        raise GitfirmError(
            f"no journal at {path}: give the daemon's --state-dir (it holds journal.sqlite3)"
        )
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT device, policy, from_phase, to_phase, time, target, detail"
            " FROM events ORDER BY id"
        ).fetchall()
    except sqlite3.DatabaseError as exc:
        raise GitfirmError(f"{path} is not a gitfirm journal ({exc})") from None
    finally:
        db.close()
    steps = [
        Step(device, policy, src, dst, _aware(datetime.fromisoformat(at)), target, detail)
        for device, policy, src, dst, at, target, detail in rows
    ]
    return [s for s in steps if since is None or s.at >= since]


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)
