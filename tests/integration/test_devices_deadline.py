"""The observer's per-device deadline, kept by one periodic check per pass: a device past
its deadline is reported unreachable, its worker goes on with the next device untouched,
and a cancel from outside still cancels the pass."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from reconciler.devices import observe as observe_mod
from reconciler.devices.client import ClientSettings
from reconciler.devices.observe import ObserveSettings, observe
from reconciler.devices.transport import make_http_client
from tests.support.simulator import running_simulator

# The client alone would wait 30 s for the hanging device: only the deadline ends it.
SLOW_CLIENT = ClientSettings(timeout=30.0, read_attempts=1)


async def test_past_the_deadline_is_unreachable_and_the_worker_goes_on() -> None:
    async with (
        running_simulator(4, releases=["1.4"], hang_seconds=20) as fleet,
        make_http_client() as http,
    ):
        fleet.device("r0001").faults.hang = True
        fleet.device("r0003").faults.hang = True
        # One worker: every device after a hanging one runs on the task the check cancelled.
        settings = ObserveSettings(concurrency=1, deadline=0.3, client=SLOW_CLIENT)
        facts = await observe(fleet.endpoints(), http, settings=settings)
        for name in ("r0001", "r0003"):
            assert not facts[name].reachable
            assert facts[name].error == "unreachable: no observation within 0.3s"
        for name in ("r0002", "r0004"):
            assert facts[name].reachable and facts[name].version == "1.4.3", facts[name]
        # The worker task is not left with a cancel pending.
        assert (await observe([fleet.endpoint("r0002")], http, settings=settings))[
            "r0002"
        ].reachable


async def test_a_cancel_from_outside_still_cancels_the_pass() -> None:
    async with running_simulator(2, hang_seconds=20) as fleet, make_http_client() as http:
        fleet.device("r0001").faults.hang = True
        settings = ObserveSettings(deadline=60.0, client=SLOW_CLIENT)
        task = asyncio.create_task(observe(fleet.endpoints(), http, settings=settings))
        async with asyncio.timeout(10):
            while not fleet.device("r0001").calls:
                await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_workers_start_in_batches_one_turn_of_the_loop_apart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At most START_BATCH devices begin in one turn of the event loop: 256 connections
    opened in one turn held the loop at the start of every observation of a large fleet."""
    turn = 0

    async def ticker() -> None:
        nonlocal turn
        while True:
            await asyncio.sleep(0)
            turn += 1

    began: Counter[int] = Counter()
    real = observe_mod._observe_one

    async def one(*args: Any) -> Any:
        began[turn] += 1
        return await real(*args)

    monkeypatch.setattr(observe_mod, "_observe_one", one)
    async with (
        running_simulator(3 * observe_mod.START_BATCH, latency=0.2) as fleet,
        make_http_client() as http,
    ):
        ticking = asyncio.create_task(ticker())
        facts = await observe(fleet.endpoints(), http, settings=ObserveSettings(concurrency=96))
        ticking.cancel()
    assert all(f.reachable for f in facts.values())
    assert sum(began.values()) == 3 * observe_mod.START_BATCH
    assert max(began.values()) == observe_mod.START_BATCH, began
    assert len(began) == 3, began  # three turns, one batch each
