"""The on-disk formats of a state dir, so an instance never runs on one it does not know.

A state dir holds the mirror, the journal (sqlite3), the image store and the backups. Its
layout is :data:`STATE_FORMAT`, written to ``<state dir>/FORMAT``; the journal's schema is
:data:`JOURNAL_FORMAT`, kept in sqlite's ``user_version``. A dir or journal written by a
newer gitfirm is refused (an older gitfirm would misread it); one from before the formats
were recorded (no ``FORMAT`` file, ``user_version`` 0) has the same layout and is stamped.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from reconciler.errors import GitfirmError

__all__ = ["JOURNAL_FORMAT", "STATE_FORMAT", "StateFormatError", "check_state_dir"]

STATE_FORMAT = 1
JOURNAL_FORMAT = 1
_MARK = "gitfirm-state"


class StateFormatError(GitfirmError):
    """The state dir or its journal was written by a gitfirm this one cannot read."""

    reason = "state-format"


def _newer(what: str, found: int, known: int, state_dir: Path) -> StateFormatError:
    return StateFormatError(
        f"{state_dir} holds a {what} of format {found}, newer than this gitfirm's {known}: "
        "run the gitfirm that wrote it, or give a fresh --state-dir"
    )


def check_state_dir(state_dir: Path) -> None:
    """Create or stamp ``state_dir``; raise :class:`StateFormatError` if it is too new."""
    state_dir.mkdir(parents=True, exist_ok=True)
    mark = state_dir / "FORMAT"
    if mark.exists():
        name, _, number = mark.read_text("utf-8").strip().partition(" ")
        if name != _MARK or not number.isdigit():
            raise StateFormatError(
                f"{mark} is not a gitfirm state format mark: is {state_dir} a gitfirm state dir?"
            )
        if int(number) > STATE_FORMAT:
            raise _newer("state dir", int(number), STATE_FORMAT, state_dir)
    journal = state_dir / "journal.sqlite3"
    if journal.exists():
        with contextlib.closing(sqlite3.connect(journal)) as db:
            found = int(db.execute("PRAGMA user_version").fetchone()[0])
            if found > JOURNAL_FORMAT:
                raise _newer("journal", found, JOURNAL_FORMAT, state_dir)
            if found < JOURNAL_FORMAT:  # unversioned: the same tables, recorded from now on
                db.execute(f"PRAGMA user_version={JOURNAL_FORMAT}")
                db.commit()
    mark.write_text(f"{_MARK} {STATE_FORMAT}\n", encoding="utf-8")
