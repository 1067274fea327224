"""Point 6: ``/`` and ``/metrics`` list every device, its version and halt reasons. Through
the real daemon they answer only an operator: with the bearer token, or on the operator
listener; routers and probes keep ``/images``, ``/healthz``, ``/readyz`` and webhooks."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.attacker import secured_gitops
from tests.support.daemon import free_port

TOKEN = "operator-token-4b9e1d77"


async def test_operator_endpoints_need_the_token(tmp_path: Path) -> None:
    env = {"GITFIRM_OPERATOR_TOKEN": TOKEN}
    async with secured_gitops(tmp_path, environ=env) as ops:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ops.port}") as http:
            for path in ("/", "/metrics"):
                anonymous = await http.get(path)
                assert anonymous.status_code == 401
                assert ops.fleet.names[0] not in anonymous.text
                assert TOKEN not in anonymous.text
                wrong = await http.get(path, headers={"Authorization": "Bearer " + "x" * 22})
                assert wrong.status_code == 401
                basic = await http.get(path, headers={"Authorization": f"Basic {TOKEN}"})
                assert basic.status_code == 401
                good = await http.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
                assert good.status_code == 200
            assert ops.fleet.names[0] in good.text or "gitfirm_" in good.text
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.get("/readyz")).status_code == 200
        assert TOKEN not in ops.logs.getvalue()


async def test_without_token_or_listener_operator_endpoints_are_off(tmp_path: Path) -> None:
    async with (
        secured_gitops(tmp_path) as ops,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{ops.port}") as http,
    ):
        for path in ("/", "/metrics"):
            response = await http.get(path)
            assert response.status_code == 401
            assert "GITFIRM_OPERATOR_TOKEN" in response.text
            assert ops.fleet.names[0] not in response.text
        assert (await http.get("/healthz")).status_code == 200


async def test_operator_listener_separates_the_surfaces(tmp_path: Path) -> None:
    operator_port = free_port()
    settings = {"operator_listen": f"127.0.0.1:{operator_port}"}
    env = {"GITFIRM_WEBHOOK_SECRET": "hook-secret-71c0aa"}
    async with (
        secured_gitops(tmp_path, environ=env, settings=settings) as ops,
        httpx.AsyncClient() as http,
    ):
        device_port = f"http://127.0.0.1:{ops.port}"
        operator = f"http://127.0.0.1:{operator_port}"
        assert (await http.get(f"{device_port}/metrics")).status_code == 404
        dashboard = await http.get(f"{device_port}/")
        assert dashboard.status_code == 404
        assert ops.fleet.names[0] not in dashboard.text
        assert (await http.get(f"{device_port}/healthz")).status_code == 200
        assert (await http.get(f"{device_port}/readyz")).status_code == 200
        hook = await http.post(f"{device_port}/webhooks/github", content=b"{}")
        assert hook.status_code == 401  # webhooks stay on the device port
        assert (await http.get(f"{operator}/metrics")).status_code == 200
        summary = await http.get(f"{operator}/")
        assert summary.status_code == 200
        assert ops.fleet.names[0] in summary.text
        assert (await http.get(f"{operator}/healthz")).status_code == 200
        assert (await http.get(f"{operator}/images/x/y")).status_code == 404
