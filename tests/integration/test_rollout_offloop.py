"""The rollout's config backups are written and read off the event loop's thread.

One device's file I/O on a busy disk held the whole loop for seconds at 10,000 devices (see
docs/scaling.md): every device, probe and request waited. Through the real engine, the
simulator and a real BackupStore, every backup write and read must run in a worker thread.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from reconciler.rollout import OutcomeStatus
from reconciler.rollout.backup import BackupStore
from tests.support.rollout import TARGET, make_device, make_plan, make_policy, rig


async def test_backups_are_written_and_read_in_worker_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_thread = threading.get_ident()
    calls: list[tuple[str, bool]] = []  # (method, ran on the loop's thread)
    real_put, real_read = BackupStore.put, BackupStore.read

    def put(self: BackupStore, *args: Any, **kwargs: Any) -> Path:
        calls.append(("put", threading.get_ident() == loop_thread))
        return real_put(self, *args, **kwargs)

    def read(self: BackupStore, *args: Any, **kwargs: Any) -> str:
        calls.append(("read", threading.get_ident() == loop_thread))
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(BackupStore, "put", put)
    monkeypatch.setattr(BackupStore, "read", read)
    devices = [make_device(f"r{i}") for i in range(3)]
    waves = {d.name: 0 for d in devices}
    async with rig(tmp_path, devices) as r:
        result = await r.run(make_policy(), make_plan("rev1", "fleet", devices, waves=waves))
        assert result.complete and not result.halted, result.reason
        for d in devices:
            assert result.outcomes[d.name].status is OutcomeStatus.DONE
            assert r.device(d.name).running == TARGET
            assert len(r.backups.entries(d.name)) == 2  # before staging, before activation

    puts = [on_loop for name, on_loop in calls if name == "put"]
    reads = [on_loop for name, on_loop in calls if name == "read"]
    assert len(puts) == 2 * len(devices), calls
    assert len(reads) == len(devices), calls  # the config compared after boot
    assert not any(puts) and not any(reads), calls
