"""Unit tests of the rollout journal, the encrypted backup store and progress export."""

from __future__ import annotations

import base64
import logging
import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import reconciler.rollout as rollout
from reconciler.errors import ConfigError, RolloutError
from reconciler.planning.progress import Phase, attempt_key
from reconciler.rollout import (
    BackupKey,
    BackupStore,
    DeviceRecord,
    Journal,
    RolloutRecord,
    Transition,
    policy_progress,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_public_names_are_declared() -> None:
    for name in rollout.__all__:
        assert hasattr(rollout, name), name


def test_journal_round_trip_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "j" / "rollout.sqlite"
    journal = Journal(path)
    rec = DeviceRecord("p", "r1", "rev1", "t", Phase.STAGE, 1, "1.4.3", "1.3.8", "add-issued", 1)
    event = Transition("r1", "backup", "stage", "rev1", "p", NOW, 1, "1.4.3")
    journal.write_device(rec, event)
    journal.write_rollout(RolloutRecord("p", "rev1", "t", True, "failureThreshold", 2))
    journal.close()

    # A fresh connection (a restarted process) sees every committed write.
    again = Journal(path)
    assert again.device("p", "r1") == rec
    assert again.devices("p") == {"r1": rec}
    assert again.device("p", "nope") is None
    assert again.rollout("p") == RolloutRecord("p", "rev1", "t", True, "failureThreshold", 2)
    assert again.events("p") == [event]
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_attempt_records_survive_restarts_and_older_journals(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    # A journal from before attempt records existed: other tables, not this one.
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE device_state (policy TEXT, device TEXT)")
    old.commit()
    old.close()
    journal = Journal(path)
    assert journal.attempt("p", "r1") == {}
    journal.write_attempt("p", "r1", {"baseline": {"bgp": 2.0}, "rebooted_at": NOW.isoformat()})
    journal.close()
    again = Journal(path)
    assert again.attempt("p", "r1") == {"baseline": {"bgp": 2.0}, "rebooted_at": NOW.isoformat()}
    assert again.attempt("p", "r2") == {}
    again.close()


def test_progress_export_uses_planning_types(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    journal.write_device(
        DeviceRecord("p", "r1", "rev1", "", Phase.FAILED, 0, "1.4.3", "1.3.8", "", 1, "boom",
                     NOW.isoformat())
    )  # fmt: skip
    journal.write_rollout(RolloutRecord("p", "rev1", "tok", True, "failureThreshold reached"))
    progress = policy_progress(journal, "p")
    assert progress.halted and progress.halt_in_force("tok")
    assert not progress.halt_in_force("new-token")
    dev = progress.devices["r1"]
    assert dev.phase is Phase.FAILED
    assert dev.attempted("rev1", None)
    assert dev.attempts == {attempt_key("rev1", None): 1}
    assert dev.last_error == "boom" and dev.updated_at == NOW


def _key() -> BackupKey:
    return BackupKey(os.urandom(32))


def test_backup_round_trip_is_encrypted_and_bound(tmp_path: Path) -> None:
    store = BackupStore(tmp_path, _key())
    config = "service { https { api { keys { id a { key SECRET-CONFIG-VALUE } } } } }"
    first = store.put("r1", "rev1", config)
    second = store.put("r1", "rev1", config + " ")
    assert first != second and store.latest("r1", "rev1") == second
    assert b"SECRET-CONFIG-VALUE" not in first.read_bytes()
    assert store.read(first, "r1", "rev1") == config
    # The associated data binds device and revision: a copied file does not decrypt.
    with pytest.raises(RolloutError):
        store.read(first, "r2", "rev1")
    with pytest.raises(RolloutError):
        store.read(first, "r1", "rev2")
    # Another key does not decrypt either.
    with pytest.raises(RolloutError):
        BackupStore(tmp_path, _key()).read(first, "r1", "rev1")


def test_backup_key_never_shows(caplog: pytest.LogCaptureFixture) -> None:
    raw = os.urandom(32)
    text = base64.b64encode(raw).decode()
    key = BackupKey.from_text(text)
    caplog.set_level(logging.DEBUG)
    logging.getLogger("test").info("key %r %s", key, key)
    assert text not in repr(key) and text not in str(key)
    assert text not in caplog.text and raw.hex() not in caplog.text
    with pytest.raises(ConfigError) as err:
        BackupKey.from_text("not base64 at all!")
    assert "not valid base64" in str(err.value)
    with pytest.raises(ConfigError):
        BackupKey(b"short")


def test_backups_keep_the_newest_per_device_and_find_one_by_time(tmp_path: Path) -> None:
    store = BackupStore(tmp_path, _key(), keep=3)
    hour = timedelta(hours=1)
    for i in range(5):
        store.put("r1", f"rev{i}", f"config {i}", NOW + i * hour)
    store.put("r2", "rev0", "other device", NOW)
    kept = store.entries("r1")
    assert [e.revision for e in kept] == ["rev2", "rev3", "rev4"]
    assert [e.taken for e in kept] == [NOW + 2 * hour, NOW + 3 * hour, NOW + 4 * hour]
    assert len(store.entries("r2")) == 1  # retention is per device
    found = store.at("r1", NOW + 3 * hour + timedelta(minutes=5))
    assert found is not None and store.read(found.path, "r1", found.revision) == "config 3"
    assert store.at("r1", NOW) is None  # older ones are gone
    with pytest.raises(ConfigError):
        BackupStore(tmp_path, _key(), keep=1)
