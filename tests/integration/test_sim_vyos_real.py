"""The simulator behaves as real VyOS builds do where we first assumed otherwise (issue 10,
point 12): a flavor mismatch hangs ``/image add`` until nginx's 504, features follow build
dates, 1.3 refuses a re-add with its own text, and digit-only image names right-align the
image table. Raw requests show the wire; the client shows how gitfirm reads it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from reconciler.devices.client import VyOSClient
from reconciler.devices.parse import parse_version_output
from reconciler.devices.transport import make_http_client
from reconciler.errors import CommandError, Unsupported
from reconciler.simulator.device import VirtualDevice
from reconciler.simulator.install import MSG_FLAVOR_MISMATCH
from reconciler.simulator.iso import build_iso, iso_file_name
from tests.support.simulator import SimFleet, iso_server, running_simulator


def _device(name: str, images: list[str], flavor: str = "generic", **kw: Any) -> VirtualDevice:
    return VirtualDevice(name, "amd64", flavor, list(images), images[-1], images[-1], **kw)


@pytest.fixture
async def fleet() -> AsyncIterator[SimFleet]:
    devices = [
        _device("lts13", ["1.3.7", "1.3.8"]),
        _device("roll14", ["1.4-rolling-202301010000", "1.4-rolling-202305120317"]),
        _device("early15", ["1.5-rolling-202401150000"]),
        _device("stream", ["1.5-stream-2025-Q1"]),
        _device("azure", ["1.4.2", "1.4.3"], flavor="azure"),
        _device("digits", ["1", "2"], custom_names={"1": "1.4.2", "2": "1.4.3"}),
    ]
    async with running_simulator(devices=devices, upstream_timeout=0.3) as f:
        yield f


async def _post(fleet: SimFleet, name: str, path: str, body: dict[str, Any]) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as s,
        s.post(fleet.url(name) + path, json={"key": fleet.api_key, **body}) as r,
    ):
        return r.status, await r.text()


async def _get(fleet: SimFleet, name: str, path: str) -> int:
    async with aiohttp.ClientSession() as s, s.get(fleet.url(name) + path) as r:
        return r.status


async def test_flavor_mismatch_hangs_the_add_until_nginx_answers_504(fleet: SimFleet) -> None:
    iso = build_iso("1.4.4", "amd64", "generic", size=8_000)
    async with iso_server({iso_file_name("1.4.4"): iso}) as base:
        url = f"{base}/{iso_file_name('1.4.4')}"
        status, text = await _post(fleet, "azure", "/image", {"op": "add", "url": url})
    assert status == 504 and "504 Gateway Time-out" in text and "nginx" in text
    dev = fleet.device("azure")
    # The installer is still asking its question: nothing installed, the operation open.
    assert "1.4.4" not in dev.images and dev.default == "1.4.3"
    assert dev.image_ops_active == 1
    prompts = [e for e in dev.log if e["event"] == "image-add-prompt"]
    assert prompts == [
        {"at": prompts[0]["at"], "event": "image-add-prompt",
         "question": MSG_FLAVOR_MISMATCH.format("azure", "generic")}
    ]  # fmt: skip


async def test_same_flavor_installs(fleet: SimFleet) -> None:
    iso = build_iso("1.4.4", "amd64", "azure", size=8_000)
    async with iso_server({iso_file_name("1.4.4", flavor="azure"): iso}) as base:
        url = f"{base}/{iso_file_name('1.4.4', flavor='azure')}"
        status, _ = await _post(fleet, "azure", "/image", {"op": "add", "url": url})
    assert status == 200 and fleet.device("azure").default == "1.4.4"


async def test_older_branches_rolling_builds_answer_as_their_branch(fleet: SimFleet) -> None:
    status, text = await _post(fleet, "roll14", "/image", {"op": "set_default", "name": "x"})
    # 1.4's API: not HTML-escaped, no set_default.
    assert (status, json.loads(text)["error"]) == (400, "'set_default' is not a valid operation")
    assert await _get(fleet, "roll14", "/info") == 404
    async with make_http_client() as http:
        await VyOSClient(fleet.endpoint("roll14"), http).reboot()  # 1.3 has no /reboot
    assert fleet.device("roll14").down_until is not None
    status, text = await _post(fleet, "lts13", "/image", {"op": "show"})
    assert json.loads(text)["error"] == '"show" is not a valid operation'


async def test_image_ops_and_info_follow_the_build_date(fleet: SimFleet) -> None:
    status, text = await _post(fleet, "early15", "/image", {"op": "show"})
    assert (status, json.loads(text)["error"]) == (
        400,
        "&#x27;show&#x27; is not a valid operation",
    )
    assert await _get(fleet, "early15", "/info") == 404
    async with make_http_client() as http:
        with pytest.raises(Unsupported):
            await VyOSClient(fleet.endpoint("early15"), http).image_set_default("x")
        stream = VyOSClient(fleet.endpoint("stream"), http)
        already = await stream.image_set_default("1.5-stream-2025-Q1")
        assert "already configured as default" in already
        # Stream 2025-Q1 predates /info: the client falls back to show version.
        assert (await stream.info()).version == "1.5-stream-2025-Q1"
    assert await _get(fleet, "stream", "/info") == 404


async def test_13_refuses_a_readd_and_the_client_sees_it_present(fleet: SimFleet) -> None:
    iso = build_iso("1.3.8", "amd64", "generic", size=8_000)
    async with iso_server({iso_file_name("1.3.8"): iso}) as base:
        url = f"{base}/{iso_file_name('1.3.8')}"
        status, text = await _post(fleet, "lts13", "/image", {"op": "add", "url": url})
        assert status == 400
        error = json.loads(text)["error"]
        assert error.startswith("An image named 1.3.8 is already installed on this system.")
        assert "Will not replace 1.3.8\nExiting..." in error
        async with make_http_client() as http:
            client = VyOSClient(fleet.endpoint("lts13"), http)
            assert "already installed" in await client.image_add(url, expected_name="1.3.8")
    assert fleet.device("lts13").images == ["1.3.7", "1.3.8"]


async def test_digit_only_names_right_align_the_table(fleet: SimFleet) -> None:
    async with make_http_client() as http:
        client = VyOSClient(fleet.endpoint("digits"), http)
        text = await client.show(["system", "image"])
        assert text.splitlines()[:2] == [
            "  Name  Default boot    Running",
            "------  --------------  ---------",
        ]
        assert [(i.name, i.default, i.running) for i in await client.images()] == [
            ("2", True, True),
            ("1", False, False),
        ]
        # The image's name is its own; show version reports the version it holds.
        assert parse_version_output(await client.show(["version"])).version == "1.4.3"


async def test_client_refuses_an_add_of_another_flavor_without_sending_it(
    fleet: SimFleet,
) -> None:
    async with make_http_client() as http:
        client = VyOSClient(fleet.endpoint("azure"), http)
        with pytest.raises(CommandError, match=r"release flavor 'azure'.*'generic'"):
            await client.image_add("http://127.0.0.1:1/x.iso", flavor="generic")
        # 1.3 prints no flavor and asks nothing: the add goes ahead (and fails to download).
        with pytest.raises(CommandError, match="Download failed"):
            await VyOSClient(fleet.endpoint("lts13"), http).image_add(
                "http://127.0.0.1:1/x.iso", flavor="generic"
            )
    assert fleet.device("azure").calls["/image"] == 0
    assert fleet.device("lts13").calls["/image"] == 1
