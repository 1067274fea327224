"""``GET /_sim/events``: the simulator's event log in the chaos suite's vocabulary, with
config saves and loads, over the control API."""

from __future__ import annotations

import json
import time

import httpx

from tests.support.simulator import running_simulator


async def test_config_save_and_load_appear_in_the_event_log_with_wall_clock_times() -> None:
    async with running_simulator(2, releases=["1.4"]) as fleet, httpx.AsyncClient() as http:

        async def call(endpoint: str, command: dict[str, str]) -> None:
            data = {"data": json.dumps(command), "key": fleet.api_key}
            answer = await http.post(fleet.url("r0002") + endpoint, data=data, timeout=5)
            assert answer.status_code == 200, answer.text

        before = time.time()
        await call("/config-file", {"op": "save"})
        await call("/config-file", {"op": "load", "file": "/config/config.boot"})
        base = fleet.url("r0001").rsplit("/", 1)[0]
        events = (await http.get(f"{base}/_sim/events", timeout=5)).json()["events"]
    assert [(e["device"], e["event"], e["file"]) for e in events] == [
        ("r0002", "config-save", "/config/config.boot"),
        ("r0002", "config-load", "/config/config.boot"),
    ]
    assert all(before - 1 <= e["wall"] <= time.time() + 1 for e in events)
