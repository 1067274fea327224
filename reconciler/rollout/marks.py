"""Anti-rollback high-water marks, kept in the journal's sqlite file.

A mark is the newest version a device of the fleet has *completed* an upgrade to, per
channel and release train. It rises only when a device reaches ``done`` on its final
target, never when an image is merely downloaded or verified, so concurrent downloads
cannot move it and a verified-but-unused image cannot block a path. Planning reads the
marks as plain data (:meth:`HighWaterMarks.snapshot`) and blocks a path whose final
target is below them (:mod:`reconciler.planning.rollback`).

The table lives beside the journal's tables, in the same file, so the marks survive a
restart exactly as the journal does; a separate connection keeps the journal untouched.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from reconciler.model.versions import VersionError, parse_version
from reconciler.rollout.journal import connect

__all__ = ["HighWaterMarks"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS high_water (
    channel TEXT NOT NULL, train TEXT NOT NULL, version TEXT NOT NULL,
    device TEXT NOT NULL, updated TEXT NOT NULL,
    PRIMARY KEY (channel, train));
"""


class HighWaterMarks:
    """The ``high_water`` table of a journal file."""

    def __init__(self, path: Path) -> None:
        self._db = connect(path, _SCHEMA)

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def completed(self, channel: str, version: str, device: str, when: datetime) -> bool:
        """A device completed an upgrade to ``version`` of ``channel``: raise that train's
        mark if the version is newer. Returns whether the mark rose."""
        try:
            new = parse_version(version)
        except VersionError:
            return False  # the machine only runs planned VyOS versions; nothing to order
        self._db.execute("BEGIN IMMEDIATE")
        try:
            row = self._db.execute(
                "SELECT version FROM high_water WHERE channel=? AND train=?",
                (channel, new.train),
            ).fetchone()
            rose = row is None or new > parse_version(str(row[0]))
            if rose:
                self._db.execute(
                    "INSERT OR REPLACE INTO high_water VALUES (?,?,?,?,?)",
                    (channel, new.train, new.text, device, when.isoformat()),
                )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        return rose

    def snapshot(self) -> dict[str, dict[str, str]]:
        """``{channel: {train: version}}``, for the planner."""
        marks: dict[str, dict[str, str]] = {}
        for channel, train, version in self._db.execute(
            "SELECT channel, train, version FROM high_water ORDER BY channel, train"
        ):
            marks.setdefault(str(channel), {})[str(train)] = str(version)
        return marks
