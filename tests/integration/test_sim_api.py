"""The simulator speaks the VyOS API as VYOS-API.md describes it, per release family.

Requests here are raw (aiohttp, form and JSON), as a third-party client would send them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from reconciler.devices.client import VyOSClient
from reconciler.devices.parse import parse_image_list, parse_version_output
from reconciler.devices.transport import make_http_client
from reconciler.errors import CommandError, Unsupported
from reconciler.simulator.install import MSG_ARCH_MISMATCH, MSG_NOT_ENOUGH_SPACE
from reconciler.simulator.iso import build_iso, iso_file_name
from tests.support.simulator import SimFleet, iso_server, running_simulator


@pytest.fixture
async def fleet() -> AsyncIterator[SimFleet]:
    # r0001: 1.3, r0002: 1.4, r0003: older rolling, r0004: dated rolling
    async with running_simulator(4, releases=["1.3", "1.4", "rolling-old", "rolling"]) as f:
        for name in f.names:
            f.device(name).arch = "amd64"
        yield f


async def _post_json(url: str, body: dict[str, Any]) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as s, s.post(url, json=body) as r:
        return r.status, r.content_type, await r.text()


async def _post_form(url: str, fields: dict[str, str]) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as s, s.post(url, data=fields) as r:
        return r.status, r.content_type, await r.text()


async def test_envelope_is_text_html_and_form_equals_json(fleet: SimFleet) -> None:
    key = fleet.api_key
    for name in fleet.names:
        url = fleet.url(name) + "/show"
        payload = {"op": "show", "path": ["system", "image"]}
        by_json = await _post_json(url, {"key": key, **payload})
        by_form = await _post_form(url, {"data": json.dumps(payload), "key": key})
        assert by_json == by_form
        status, ctype, text = by_json
        assert (status, ctype) == (200, "text/html")
        body = json.loads(text)
        assert body["success"] is True and body["error"] is None
        assert parse_image_list(body["data"])[0].running


async def test_bad_key_is_401_with_exact_text(fleet: SimFleet) -> None:
    url = fleet.url("r0002") + "/show"
    status, ctype, text = await _post_json(url, {"key": "wrong", "op": "show", "path": ["version"]})
    assert status == 401 and ctype == "text/html"
    assert json.loads(text) == {
        "success": False,
        "data": None,
        "error": "Valid API key is required",
    }
    status, _, _ = await _post_form(url, {"data": json.dumps({"op": "show", "path": []})})
    assert status == 401


async def test_form_without_data_is_422(fleet: SimFleet) -> None:
    status, _, _ = await _post_form(fleet.url("r0002") + "/show", {"key": fleet.api_key})
    assert status == 422


async def test_unknown_op_is_400_and_escaped_on_rolling(fleet: SimFleet) -> None:
    for name, expected in [
        ("r0002", "'x' is not a valid operation"),
        ("r0004", "&#x27;x&#x27; is not a valid operation"),
    ]:
        status, _, text = await _post_json(
            fleet.url(name) + "/show", {"key": fleet.api_key, "op": "x"}
        )
        assert status == 400
        assert json.loads(text)["error"] == expected


async def test_get_only_for_info_and_info_only_on_rolling(fleet: SimFleet) -> None:
    # /info came with current builds from March 2025.
    dev = fleet.device("r0004")
    dev.images.append("2025.03.10-0020-rolling")
    dev.running = dev.default = "2025.03.10-0020-rolling"
    async with aiohttp.ClientSession() as s:
        async with s.get(fleet.url("r0004") + "/info") as r:
            assert r.status == 200
            data = json.loads(await r.text())["data"]
            assert data["version"] == "2025.03.10-0020-rolling" and data["hostname"] == "r0004"
        for name in ("r0001", "r0002", "r0003"):
            async with s.get(fleet.url(name) + "/info") as r:
                assert r.status == 404
        async with s.get(fleet.url("r0002") + "/show") as r:
            assert r.status == 405


async def test_image_list_formats_per_family(fleet: SimFleet) -> None:
    async with make_http_client() as http:
        c13 = VyOSClient(fleet.endpoint("r0001"), http)
        text = await c13.show(["system", "image"])
        assert text.startswith("The system currently has the following image(s) installed:")
        assert "   1: 1.3.8 (default boot) (running image)\n   2: 1.3.7\n" in text
        c14 = VyOSClient(fleet.endpoint("r0002"), http)
        table = await c14.show(["system", "image"])
        assert table.splitlines()[0].split() == ["Name", "Default", "boot", "Running"]
        assert [i.name for i in await c14.images()] == ["1.4.3", "1.4.2"]


async def test_show_version_per_family(fleet: SimFleet) -> None:
    async with make_http_client() as http:
        v13 = parse_version_output(
            await VyOSClient(fleet.endpoint("r0001"), http).show(["version"])
        )
        assert (v13.version, v13.architecture, v13.flavor) == ("1.3.8", "amd64", None)
        v15 = await VyOSClient(fleet.endpoint("r0003"), http).version()
        assert (v15.version, v15.flavor) == ("1.5-rolling-202410230007", "generic")


async def test_endpoints_per_release(fleet: SimFleet) -> None:
    async with make_http_client() as http:
        c13, c14, c15 = (VyOSClient(fleet.endpoint(n), http) for n in ("r0001", "r0002", "r0004"))
        with pytest.raises(Unsupported):
            await c13.reboot()
        with pytest.raises(Unsupported):
            await c14.image_set_default("1.4.2")
        assert await c15.image_set_default("1.5-rolling-202410230007") == (
            'The image "1.5-rolling-202410230007" is now default boot image'
        )
        already = await c15.image_set_default("1.5-rolling-202410230007")
        assert "already configured as default" in already


async def test_image_delete_texts(fleet: SimFleet) -> None:
    async with make_http_client() as http:
        c = VyOSClient(fleet.endpoint("r0004"), http)
        cases = {
            "2025.01.10-0020-rolling": "Currently running image cannot be deleted; "
            "reboot into another image first",
            "nope": 'The image "nope" cannot be found',
        }
        for name, text in cases.items():
            with pytest.raises(CommandError) as e:
                await c.image_delete(name)
            assert e.value.detail == text
        await c.image_set_default("1.5-rolling-202410230007")
        fleet.device("r0004").running = "1.5-rolling-202410230007"
        with pytest.raises(CommandError) as e:
            await c.image_delete("1.5-rolling-202410230007")
        assert "Currently running" in e.value.detail
        fleet.device("r0004").running = "2025.01.10-0020-rolling"
        with pytest.raises(CommandError) as e:
            await c.image_delete("1.5-rolling-202410230007")
        assert (
            e.value.detail == "Default image cannot be deleted; set another image as default first"
        )


async def test_config_save_load_and_retrieve(fleet: SimFleet) -> None:
    async with make_http_client() as http:
        c = VyOSClient(fleet.endpoint("r0002"), http)
        tree = await c.retrieve()
        assert tree["system"]["host-name"] == "r0002"
        raw = await c.retrieve(["system"], config_format="raw")
        assert 'host-name "r0002"' in raw
        dev = fleet.device("r0002")
        dev.config["system"]["host-name"] = "changed"
        assert dev.saved_config["system"]["host-name"] == "r0002"
        await c.config_file_save()
        assert dev.saved_config["system"]["host-name"] == "changed"
        dev.config = {}
        await c.config_file_load("/config/config.boot")
        assert dev.config["system"]["host-name"] == "changed"


async def test_image_add_reboot_and_run_new_image(fleet: SimFleet) -> None:
    iso = build_iso("1.4.4", "amd64", "generic", size=50_000)
    wrong = build_iso("1.4.5", "arm64", "generic", size=5_000)
    files = {iso_file_name("1.4.4"): iso, iso_file_name("1.4.5", "arm64"): wrong}
    async with iso_server(files) as base, make_http_client() as http:
        c = VyOSClient(fleet.endpoint("r0002"), http)
        out = await c.image_add(f"{base}/{iso_file_name('1.4.4')}")
        assert out == "The image installed successfully; please reboot now."
        dev = fleet.device("r0002")
        assert dev.default == "1.4.4" and dev.running == "1.4.3"
        # A re-add is refused by the device; the client reports the image as present.
        assert "File exists" in await c.image_add(f"{base}/{iso_file_name('1.4.4')}")
        with pytest.raises(CommandError) as e:
            await c.image_add(f"{base}/{iso_file_name('1.4.5', 'arm64')}")
        assert e.value.detail == MSG_ARCH_MISMATCH.format("amd64", "arm64")
        await c.reboot()
        assert fleet.device("r0002").snapshot(fleet.sim.now())["rebooting"] is True
        dev.down_until = fleet.sim.now()  # skip the rest of the boot time
        assert (await c.version()).version == "1.4.4"
        assert dev.image_ops_max == 1
        events = [e["event"] for e in dev.log]
        assert events[:2] == ["image-add", "image-installed"] and "booted" in events


async def test_disk_full_text(fleet: SimFleet) -> None:
    fleet.device("r0002").faults.disk_full = True
    async with make_http_client() as http:
        with pytest.raises(CommandError) as e:
            await VyOSClient(fleet.endpoint("r0002"), http).image_add("http://127.0.0.1:1/x.iso")
    assert e.value.detail == MSG_NOT_ENOUGH_SPACE


async def test_configure_batch_and_missing_path(fleet: SimFleet) -> None:
    url = fleet.url("r0003") + "/configure"
    batch = [
        {"op": "set", "path": ["interfaces", "ethernet", "eth0", "description", "up"]},
        {"op": "delete", "path": ["system", "host-name"]},
    ]
    status, _, _ = await _post_form(url, {"data": json.dumps(batch), "key": fleet.api_key})
    assert status == 200
    config = fleet.device("r0003").config
    assert config["interfaces"]["ethernet"]["eth0"]["description"] == "up"
    assert "host-name" not in config["system"]
    status, _, text = await _post_json(
        fleet.url("r0003") + "/show", {"key": fleet.api_key, "op": "show", "path": ["bogus"]}
    )
    assert status == 400 and "Invalid command: show [bogus]" in json.loads(text)["error"]


async def test_control_api_reads_state_and_sets_faults(fleet: SimFleet) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(fleet.url("r0001").rsplit("/", 1)[0] + "/_sim/devices/r0001") as r:
            state = await r.json()
        assert state["family"] == "1.3" and state["running"] == "1.3.8"
        base = fleet.url("r0001").rsplit("/", 1)[0]
        async with s.post(base + "/_sim/devices/r0001/faults", json={"unreachable": True}) as r:
            assert (await r.json())["unreachable"] is True
        async with s.post(base + "/_sim/devices/r0001/faults", json={"nope": 1}) as r:
            assert r.status == 400
    assert fleet.device("r0001").faults.unreachable
