"""Every injectable fault, seen through gitfirm's client (and the observer)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest

from reconciler.clock import FakeClock
from reconciler.devices.client import ClientSettings, VyOSClient
from reconciler.devices.observe import ObserveSettings, observe
from reconciler.devices.transport import make_http_client
from reconciler.errors import CommandError, DeviceServerError, Unreachable, UpstreamTimeout
from reconciler.simulator.install import MSG_IMPROPER_IMAGE
from reconciler.simulator.iso import build_iso, iso_file_name
from reconciler.simulator.run import parse_fault
from tests.support.simulator import SimFleet, iso_server, running_simulator

ISO = build_iso("1.4.4", "amd64", "generic", size=20_000)
FAST = ClientSettings(timeout=2.0, read_attempts=2, backoff=0.01, poll_interval=0.02)


@pytest.fixture
async def fleet() -> AsyncIterator[SimFleet]:
    async with running_simulator(3, releases=["1.4"], boot_seconds=0.05, hang_seconds=5) as f:
        for name in f.names:
            f.device(name).arch = "amd64"
        yield f


@pytest.fixture
async def iso_url() -> AsyncIterator[str]:
    async with iso_server({iso_file_name("1.4.4"): ISO}) as base:
        yield f"{base}/{iso_file_name('1.4.4')}"


def _client(fleet: SimFleet, http: httpx.AsyncClient, name: str = "r0001") -> VyOSClient:
    return VyOSClient(fleet.endpoint(name), http, settings=FAST, clock=FakeClock(autojump=True))


async def _wait_up(client: VyOSClient, limit: float = 5.0) -> str:
    async with asyncio.timeout(limit):
        while True:
            try:
                return (await client.version()).version
            except Unreachable:
                await asyncio.sleep(0.02)


async def test_unreachable_and_recovery(fleet: SimFleet) -> None:
    fleet.device("r0001").faults.unreachable = True
    async with make_http_client() as http:
        c = _client(fleet, http)
        with pytest.raises(Unreachable):
            await c.version()
        fleet.device("r0001").faults.unreachable = False
        assert (await c.version()).version == "1.4.3"


async def test_hang_times_out_as_unreachable(fleet: SimFleet) -> None:
    fleet.device("r0001").faults.hang = True
    settings = ClientSettings(timeout=0.2, read_attempts=1)
    async with make_http_client() as http:
        c = VyOSClient(fleet.endpoint("r0001"), http, settings=settings)
        with pytest.raises(Unreachable, match=r"no answer within 0\.2s"):
            await c.version()


async def test_slow_device_is_slow(fleet: SimFleet) -> None:
    fleet.device("r0001").faults.slow_seconds = 0.2
    loop = asyncio.get_running_loop()
    async with make_http_client() as http:
        started = loop.time()
        await _client(fleet, http).version()
        assert loop.time() - started >= 0.2


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_retried_reads_then_raised(fleet: SimFleet, status: int) -> None:
    fleet.device("r0001").faults.http_status = status
    async with make_http_client() as http:
        with pytest.raises(DeviceServerError):
            await _client(fleet, http).version()
    assert fleet.device("r0001").calls["/show"] == FAST.read_attempts


async def test_writes_are_never_retried(fleet: SimFleet) -> None:
    fleet.device("r0001").faults.http_status = 503
    async with make_http_client() as http:
        with pytest.raises(DeviceServerError):
            await _client(fleet, http).config_file_save()
    assert fleet.device("r0001").calls["/config-file"] == 1


async def test_504_while_install_carries_on(fleet: SimFleet, iso_url: str) -> None:
    dev = fleet.device("r0001")
    dev.faults.gateway_timeout = True
    fleet.sim.settings = replace(fleet.sim.settings, bandwidth=200_000.0)
    async with make_http_client() as http:
        c = VyOSClient(fleet.endpoint("r0001"), http, settings=FAST)
        out = await c.image_add(iso_url, expected_name="1.4.4")
        assert "confirmed after a 504" in out
        assert dev.calls["/image"] == 1  # polled show system image, never re-added
        assert dev.default == "1.4.4" and dev.image_ops_max == 1


async def test_504_without_result_raises_upstream_timeout(fleet: SimFleet) -> None:
    fleet.device("r0001").faults.gateway_timeout = True
    fleet.sim.settings = replace(fleet.sim.settings, bandwidth=1_000.0)
    async with iso_server({"big.iso": ISO}) as base, make_http_client() as http:
        settings = ClientSettings(image_timeout=0.2, poll_interval=0.05)
        c = VyOSClient(fleet.endpoint("r0001"), http, settings=settings)
        with pytest.raises(UpstreamTimeout):
            await c.image_add(f"{base}/big.iso", expected_name="1.4.4")


@pytest.mark.parametrize("outcome", ["none", "revert", "never"])
async def test_boot_failures(fleet: SimFleet, iso_url: str, outcome: str) -> None:
    dev = fleet.device("r0001")
    dev.faults.boot_failure = outcome  # type: ignore[assignment]
    async with make_http_client() as http:
        c = _client(fleet, http)
        await c.image_add(iso_url, expected_name="1.4.4")
        await c.reboot()
        if outcome == "never":
            await asyncio.sleep(0.1)
            with pytest.raises(Unreachable):
                await c.version()
            assert fleet.sim.device("r0001").snapshot(fleet.sim.now())["dead"]
            return
        running = await _wait_up(c)
    assert running == ("1.4.4" if outcome == "none" else "1.4.3")
    assert [e["event"] for e in dev.log][-1] == "booted"


async def test_health_degrades_after_upgrade(fleet: SimFleet, iso_url: str) -> None:
    dev = fleet.device("r0001")
    dev.faults.degrade_after_upgrade = True
    async with make_http_client() as http:
        c = _client(fleet, http)
        before = await c.show(["ip", "bgp", "summary"])
        assert "Active" not in before
        await c.image_add(iso_url, expected_name="1.4.4")
        await c.reboot()
        await _wait_up(c)
        after = await c.show(["ip", "bgp", "summary"])
    assert "Active" in after and "never" in after


async def test_disk_full_and_corrupt_download(fleet: SimFleet, iso_url: str) -> None:
    async with make_http_client() as http:
        c = _client(fleet, http)
        fleet.device("r0001").faults.corrupt_download = True
        with pytest.raises(CommandError) as e:
            await c.image_add(iso_url, expected_name="1.4.4")
        assert e.value.detail == MSG_IMPROPER_IMAGE
        assert fleet.device("r0001").images == ["1.4.2", "1.4.3"]


async def test_concurrent_image_ops_are_recorded(fleet: SimFleet, iso_url: str) -> None:
    fleet.sim.settings = replace(fleet.sim.settings, bandwidth=100_000.0)  # a 0.2 s download
    async with make_http_client() as http:
        c = _client(fleet, http)
        adding = asyncio.create_task(c.image_add(iso_url, expected_name="1.4.4"))
        await asyncio.sleep(0.05)  # the download is under way
        await c.image_delete("1.4.2")
        await adding
    assert fleet.device("r0001").image_ops_max == 2


async def test_observer_reports_every_device_whatever_the_fault(fleet: SimFleet) -> None:
    fleet.device("r0001").faults.unreachable = True
    fleet.device("r0002").faults.http_status = 500
    async with make_http_client() as http:
        facts = await observe(
            fleet.endpoints(),
            http,
            settings=ObserveSettings(client=FAST, deadline=3.0, health=True),
            clock=FakeClock(autojump=True),
        )
    assert set(facts) == {"r0001", "r0002", "r0003"}
    assert not facts["r0001"].reachable and facts["r0001"].error
    assert facts["r0002"].error is not None and facts["r0002"].error.startswith("server-error")
    good = facts["r0003"]
    assert good.reachable and good.version == "1.4.3" and good.running_image == "1.4.3"
    assert good.features.reboot and not good.features.set_default
    assert good.health.memory_used_percent is not None and good.health.uptime_seconds


def test_fault_flag_parsing() -> None:
    assert parse_fault("r0003:unreachable") == ("r0003", {"unreachable": True})
    assert parse_fault("*:slow_seconds=2") == ("*", {"slow_seconds": 2})
    assert parse_fault("r0001:boot_failure=revert") == ("r0001", {"boot_failure": "revert"})
    with pytest.raises(ValueError):
        parse_fault("nonsense")


async def test_a_rollback_to_an_image_that_ran_before_brings_bgp_back(
    fleet: SimFleet, iso_url: str
) -> None:
    # The degraded image is the new one: booting back into the old image heals BGP, and
    # booting the new one again breaks it again (a chaos run rolled a router back to the
    # image of its previous, healthy upgrade and the simulator kept BGP down there).
    dev = fleet.device("r0001")
    old = dev.running
    dev.faults.degrade_after_upgrade = True
    async with make_http_client() as http:
        c = _client(fleet, http)
        await c.image_add(iso_url, expected_name="1.4.4")
        await c.reboot()
        await _wait_up(c)
        assert "Active" in await c.show(["ip", "bgp", "summary"])
        dev.default = old  # as a rollback points the default boot back
        await c.reboot()
        await _wait_up(c)
        assert dev.running == old
        assert "Active" not in await c.show(["ip", "bgp", "summary"])
        dev.default = "1.4.4"
        await c.reboot()
        await _wait_up(c)
        assert "Active" in await c.show(["ip", "bgp", "summary"])
