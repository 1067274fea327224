"""A scan's bounds: at most ``concurrency`` probes in flight, new probes paced at ``rate``
(on the injected clock), and a port that accepts but never answers costs one timeout and
is not reported."""

from __future__ import annotations

import asyncio

from reconciler.clock import FakeClock, SystemClock
from reconciler.devices.transport import make_http_client
from reconciler.discovery import ProbeSettings, scan
from tests.support.discovery import free_port


async def test_silent_ports_time_out_within_the_concurrency_bound() -> None:
    host = "127.0.0.7"
    active = peak = connections = 0

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal active, peak, connections
        active += 1
        connections += 1
        peak = max(peak, active)
        try:
            await asyncio.wait_for(reader.read(), 30)  # until the prober gives up
        except (TimeoutError, ConnectionError):
            pass
        finally:
            active -= 1
            writer.close()

    server = await asyncio.start_server(silent, host, 0)
    port = server.sockets[0].getsockname()[1]
    http = make_http_client()
    try:
        found = await scan(
            [(host, port)] * 9,
            http=http,
            clock=SystemClock(),
            settings=ProbeSettings(timeout=0.5, concurrency=3, rate=1000.0),
        )
    finally:
        await http.aclose()
        server.close()
        await server.wait_closed()
    assert found == []
    assert connections == 9
    assert 1 <= peak <= 3


async def test_new_probes_are_paced_on_the_clock() -> None:
    clock = FakeClock(autojump=True)
    closed = [("127.0.0.8", free_port("127.0.0.8")) for _ in range(20)]
    http = make_http_client()
    try:
        found = await scan(
            closed, http=http, clock=clock, settings=ProbeSettings(concurrency=20, rate=10.0)
        )
    finally:
        await http.aclose()
    assert found == []
    # The 20th probe may start 1.9 s (of clock time) after the first, never sooner.
    assert clock.monotonic() >= 1.9
