"""The durable local journal: sqlite3 in WAL mode, one row per device and policy, one row
per rollout, and an append-only event log.

Every transition is committed *before* the action it announces, so a restart knows what
may have been started. The journal only speeds recovery: each step re-observes the device,
so deleting the file loses nothing but the attempt counters and the halt flag, which the
next failure rebuilds.

``synchronous=NORMAL`` in WAL mode survives a killed process (the OS keeps the written
pages); only a power cut can lose the last transaction, and observation covers that too.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from reconciler.planning.progress import Phase
from reconciler.rollout.model import Transition

__all__ = ["DeviceRecord", "Journal", "RolloutRecord", "connect"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS device_state (
    policy TEXT NOT NULL, device TEXT NOT NULL, revision TEXT NOT NULL,
    retry_token TEXT NOT NULL, phase TEXT NOT NULL, hop INTEGER NOT NULL,
    target TEXT NOT NULL, previous TEXT NOT NULL, marker TEXT NOT NULL,
    attempts INTEGER NOT NULL, last_error TEXT NOT NULL, updated TEXT NOT NULL,
    PRIMARY KEY (policy, device));
CREATE TABLE IF NOT EXISTS rollout_state (
    policy TEXT PRIMARY KEY, revision TEXT NOT NULL, retry_token TEXT NOT NULL,
    halted INTEGER NOT NULL, reason TEXT NOT NULL, wave INTEGER NOT NULL,
    wave_passed_at TEXT NOT NULL, updated TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, policy TEXT NOT NULL, device TEXT NOT NULL,
    revision TEXT NOT NULL, from_phase TEXT NOT NULL, to_phase TEXT NOT NULL,
    hop INTEGER NOT NULL, target TEXT NOT NULL, time TEXT NOT NULL, detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS device_attempt (
    policy TEXT NOT NULL, device TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (policy, device));
"""


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """Where one device stands in one policy's rollout.

    ``marker`` records an action announced inside a phase (``add-issued``,
    ``reboot-issued``) so that a restart can tell "never sent" from "maybe running".
    ``attempts`` counts automatic attempts for (``revision``, ``retry_token``).
    """

    policy: str
    device: str
    revision: str
    retry_token: str = ""
    phase: Phase = Phase.PENDING
    hop: int = 0
    target: str = ""
    previous: str = ""
    marker: str = ""
    attempts: int = 0
    last_error: str = ""
    updated: str = ""

    def but(self, **changes: object) -> DeviceRecord:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class RolloutRecord:
    """Where one policy's rollout stands: halt, current wave and when it last passed."""

    policy: str
    revision: str
    retry_token: str = ""
    halted: bool = False
    reason: str = ""
    wave: int = 0
    wave_passed_at: str = ""
    updated: str = ""
    target: str = ""
    """What the policy rolls out (target and selector): wave progress and the pause belong
    to it, and start over only when it changes."""

    def but(self, **changes: object) -> RolloutRecord:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def connect(path: Path, schema: str) -> sqlite3.Connection:
    """Open a journal file (WAL, autocommit) and create the tables of ``schema``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(schema)
    return db


class Journal:
    """The sqlite3 journal. One instance per process; writes commit at once."""

    def __init__(self, path: Path) -> None:
        self._db = connect(path, _SCHEMA)
        self._add_columns("rollout_state", {"target": "TEXT NOT NULL DEFAULT ''"})

    def _add_columns(self, table: str, columns: dict[str, str]) -> None:
        # Journals written by an older version gain new columns in place.
        have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
        for name, decl in columns.items():
            if name not in have:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def device(self, policy: str, device: str) -> DeviceRecord | None:
        """The record of one device, if any."""
        row = self._db.execute(
            "SELECT * FROM device_state WHERE policy=? AND device=?", (policy, device)
        ).fetchone()
        return _device(row) if row else None

    def devices(self, policy: str) -> dict[str, DeviceRecord]:
        """Every device record of a policy, by device name."""
        rows = self._db.execute(
            "SELECT * FROM device_state WHERE policy=? ORDER BY device", (policy,)
        ).fetchall()
        return {r[1]: _device(r) for r in rows}

    def write_device(self, record: DeviceRecord, event: Transition | None = None) -> None:
        """Commit a device record, and its transition event, in one transaction."""
        values = dataclasses.astuple(record)
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO device_state VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (*values[:4], str(values[4]), *values[5:]),
            )
            if event is not None:
                self._db.execute(
                    "INSERT INTO events (policy, device, revision, from_phase, to_phase, hop,"
                    " target, time, detail) VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        event.policy,
                        event.device,
                        event.revision,
                        event.from_phase,
                        event.to_phase,
                        event.hop,
                        event.target,
                        event.time.isoformat(),
                        event.detail,
                    ),
                )

    def attempt(self, policy: str, device: str) -> dict[str, Any]:
        """What the current hop of a device recorded for after its reboot (health
        baseline, reboot time, pre-activation backup); empty if nothing."""
        row = self._db.execute(
            "SELECT data FROM device_attempt WHERE policy=? AND device=?", (policy, device)
        ).fetchone()
        data: dict[str, Any] = json.loads(row[0]) if row else {}
        return data

    def write_attempt(self, policy: str, device: str, data: dict[str, Any]) -> None:
        """Replace what the current hop of a device recorded."""
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO device_attempt VALUES (?,?,?)",
                (policy, device, json.dumps(data, sort_keys=True)),
            )

    def rollout(self, policy: str) -> RolloutRecord | None:
        """The rollout record of a policy, if any."""
        row = self._db.execute(
            "SELECT policy, revision, retry_token, halted, reason, wave, wave_passed_at,"
            " updated, target FROM rollout_state WHERE policy=?",
            (policy,),
        ).fetchone()
        if not row:
            return None
        return RolloutRecord(
            row[0], row[1], row[2], bool(row[3]), row[4], row[5], row[6], row[7], row[8]
        )

    def write_rollout(self, record: RolloutRecord) -> None:
        """Commit a rollout record."""
        r = record
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO rollout_state (policy, revision, retry_token, halted,"
                " reason, wave, wave_passed_at, updated, target) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    r.policy,
                    r.revision,
                    r.retry_token,
                    int(r.halted),
                    r.reason,
                    r.wave,
                    r.wave_passed_at,
                    r.updated,
                    r.target,
                ),
            )

    def events(self, policy: str, *, limit: int = 100) -> list[Transition]:
        """The last ``limit`` events of a policy, oldest first."""
        rows = self._db.execute(
            "SELECT device, from_phase, to_phase, revision, policy, time, hop, target, detail"
            " FROM events WHERE policy=? ORDER BY id DESC LIMIT ?",
            (policy, limit),
        ).fetchall()
        return _transitions(reversed(rows))

    def history(self, *, limit: int = 10_000) -> list[Transition]:
        """The last ``limit`` events of every policy, oldest first (statistics, timelines)."""
        rows = self._db.execute(
            "SELECT device, from_phase, to_phase, revision, policy, time, hop, target, detail"
            " FROM events ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return _transitions(reversed(rows))

    def prune(self, before: datetime) -> int:
        """Delete events older than ``before`` (timezone-aware); returns how many.

        Device and rollout records are kept whatever their age: they are the current state.
        Times are compared as instants (``julianday`` reads the stored UTC offsets).
        """
        if before.tzinfo is None:
            raise ValueError("prune needs a timezone-aware time")
        with self._transaction():
            done = self._db.execute(
                "DELETE FROM events WHERE julianday(time) < julianday(?)", (before.isoformat(),)
            )
        return done.rowcount

    def _transaction(self) -> _Tx:
        return _Tx(self._db)


def _transitions(rows: Iterable[Sequence[Any]]) -> list[Transition]:
    return [
        Transition(r[0], r[1], r[2], r[3], r[4], datetime.fromisoformat(r[5]), r[6], r[7], r[8])
        for r in rows
    ]


class _Tx:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")


def _device(row: tuple[object, ...]) -> DeviceRecord:
    p, d, rev, tok, phase, hop, target, prev, marker, attempts, err, upd = row
    return DeviceRecord(
        str(p),
        str(d),
        str(rev),
        str(tok),
        Phase(str(phase)),
        int(str(hop)),
        str(target),
        str(prev),
        str(marker),
        int(str(attempts)),
        str(err),
        str(upd),
    )
