"""FleetTransport's per-request shortcuts keep behaviour: no cookies, minimal answer headers,
no reference cycles per answer, and exactly two device calls per observation."""

from __future__ import annotations

import gc
import weakref
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from reconciler.devices.observe import observe
from reconciler.devices.transport import make_http_client
from tests.support.simulator import running_simulator

SEEN: list[dict[str, str]] = []


async def _answer(request: web.Request) -> web.Response:
    SEEN.append(dict(request.headers))
    response = web.json_response({"success": True, "data": "ok", "error": None})
    response.set_cookie("session", "from-one-device")
    return response


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/{device}/show", _answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    SEEN.clear()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_cookies_are_never_kept_or_sent(base_url: str) -> None:
    async with make_http_client() as http:
        for device in ("r1", "r2"):
            response = await http.post(f"{base_url}/{device}/show", json={"op": "show"})
            assert response.status_code == 200
            assert "set-cookie" not in response.headers
        assert not http.cookies
    assert len(SEEN) == 2
    assert "Cookie" not in SEEN[1]


async def test_answer_keeps_content_headers_and_request_headers_are_lean(base_url: str) -> None:
    async with make_http_client() as http:
        response = await http.post(f"{base_url}/r1/show", json={"op": "show"})
    assert response.headers["content-type"].startswith("application/json")
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.json()["data"] == "ok"
    assert SEEN[0]["Content-Type"] == "application/json"
    assert "python-httpx" not in SEEN[0].get("User-Agent", "")


async def test_answer_is_freed_without_the_cyclic_collector(base_url: str) -> None:
    async with make_http_client() as http:
        await http.post(f"{base_url}/r1/show", json={"op": "show"})  # warm the pool
        gc.disable()
        try:
            response = await http.post(f"{base_url}/r1/show", json={"op": "show"})
            ref = weakref.ref(response)
            del response
            assert ref() is None
        finally:
            gc.enable()


async def test_observation_is_exactly_two_calls_per_device() -> None:
    async with running_simulator(3) as fleet, make_http_client() as http:
        facts = await observe(fleet.endpoints(), http)
        assert all(f.reachable for f in facts.values())
        for name in fleet.names:
            assert sum(fleet.device(name).calls.values()) == 2


async def test_device_calls_skip_httpx_on_the_fleet_client() -> None:
    # The hot path goes straight to aiohttp; httpx's request hooks never see a device call,
    # while the same client still serves plain httpx requests.
    seen: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        seen.append(request)

    async with running_simulator(2) as fleet, make_http_client() as http:
        http.event_hooks["request"].append(record)
        facts = await observe(fleet.endpoints(), http)
        assert all(f.reachable for f in facts.values())
        assert sum(sum(fleet.device(n).calls.values()) for n in fleet.names) == 4
        assert seen == []
        await http.post(fleet.url("r0001") + "/show", json={"key": fleet.api_key, "op": "show"})
        assert len(seen) == 1
