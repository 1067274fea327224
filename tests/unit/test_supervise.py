"""Supervision helpers on a fake clock: loop restarts with backoff, retry schedules."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from reconciler.supervise import RetrySchedule, Supervisor


class _Clock:
    """Time moves only when someone sleeps."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
        await asyncio.sleep(0)


async def test_a_dying_loop_is_restarted_with_doubling_backoff() -> None:
    clock = _Clock()
    supervisor = Supervisor(clock, backoff=1.0, ceiling=4.0)
    runs = 0
    down_seen: list[set[str]] = []
    forever = asyncio.Event()

    async def loop() -> None:
        nonlocal runs
        runs += 1
        down_seen.append(set(supervisor.down))
        if runs < 5:
            raise ValueError("boom")
        await forever.wait()

    task = supervisor.task("observe", loop)
    while runs < 5:
        await asyncio.sleep(0)
    assert clock.sleeps == [1.0, 2.0, 4.0, 4.0]
    assert supervisor.deaths["observe"] == 4
    assert supervisor.down == set()  # up again, and each restart cleared it
    assert all(seen == set() for seen in down_seen)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def test_retry_schedule_doubles_and_forgets() -> None:
    clock = _Clock()
    retries = RetrySchedule(clock, floor=5.0, ceiling=30.0)
    assert retries.due("img") and retries.next_in() is None
    assert [retries.failed("img") for _ in range(4)] == [5.0, 10.0, 20.0, 30.0]
    assert not retries.due("img") and retries.waiting() == {"img"}
    clock.t += 30.0
    assert retries.due("img") and retries.next_in() == 0.0
    retries.succeeded("img")
    assert retries.waiting() == set() and retries.next_in() is None
