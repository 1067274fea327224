"""The working-copy watcher on a real temporary directory, with bounded waits."""

from __future__ import annotations

import asyncio
from pathlib import Path

from reconciler.source.watch import wake_on_changes, watch_working_copy
from tests.support.gitrepo import clone, commit_files, make_remote


async def test_a_change_yields_once_debounced(tmp_path: Path) -> None:
    stop = asyncio.Event()
    seen: list[set[str]] = []

    async def collect() -> None:
        async for changes in watch_working_copy(tmp_path, stop=stop, debounce_ms=100):
            seen.append(changes)
            stop.set()

    task = asyncio.ensure_future(collect())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10.0
    n = 0
    # The watcher starts asynchronously: keep touching files until it reports one.
    while not task.done():
        assert loop.time() < deadline, "no change reported within 10 s"
        n += 1
        (tmp_path / f"f{n}.yaml").write_text("x: 1\n")
        await asyncio.wait({task}, timeout=0.2)
    await task
    assert seen and any(p.endswith(".yaml") for p in seen[0])


async def test_commit_in_working_copy_wakes_poller(tmp_path: Path) -> None:
    work = clone(make_remote(tmp_path / "remote.git"), tmp_path / "work")
    stop = asyncio.Event()
    woken = asyncio.Event()
    watcher = asyncio.ensure_future(wake_on_changes(work, woken.set, stop=stop))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10.0
    n = 0
    while not woken.is_set():
        assert loop.time() < deadline, "commit did not wake the poller within 10 s"
        n += 1
        await asyncio.to_thread(commit_files, work, {f"fleet/r{n}.yaml": "a: 1\n"}, "c")
        waiting = asyncio.ensure_future(woken.wait())
        await asyncio.wait({waiting}, timeout=1.0)
        waiting.cancel()
    stop.set()
    await asyncio.wait_for(watcher, 5.0)
