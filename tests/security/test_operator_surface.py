"""Point 6: ``/`` and ``/metrics`` list every device, its version and halt reasons. Through
the real daemon they answer only an operator: with the bearer token, or on the operator
listener; routers and probes keep ``/images``, ``/healthz``, ``/readyz`` and webhooks."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from reconciler.surfaces import OperatorAccess, build_surfaces
from tests.support.attacker import attacker_server, evil_device, secured_gitops
from tests.support.daemon import config_files, free_port
from tests.support.gitrepo import git_env, seeded_remote
from tests.support.simulator import KEY_ENV, running_simulator

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
        # The dashboard lives where / does: only on the operator listener.
        for path in ("/ui/", "/ui/login", "/ui/events", "/ui/static/app.js"):
            assert (await http.get(f"{device_port}{path}")).status_code == 404, path
        pages = await http.get(f"{operator}/ui/")
        assert pages.status_code == 200 and ops.fleet.names[0] in pages.text


async def test_gitfirm_run_process_wires_the_operator_and_secret_flags(tmp_path: Path) -> None:
    """The flags of the real ``gitfirm run``: operator listener plus token from a named
    variable, and a secret allowlist that refuses a Device naming that very variable."""
    operator_port, port = free_port(), free_port()
    async with (
        running_simulator(1, releases=["1.4"]) as fleet,
        attacker_server(tls_dir=tmp_path / "tls") as attacker,
    ):
        files, _ = config_files(tmp_path / "upstream", fleet, ["1.4.3"])
        evil = evil_device(
            "evil", attacker.url, {"env": "OPS_TOKEN"}, tls={"insecureSkipVerify": True}
        )
        files["fleet/evil.yaml"] = yaml.safe_dump(evil)
        files["fleet/devices.yaml"] = files["fleet/devices.yaml"].replace(KEY_ENV, "OPS_KEY")
        remote, _ = seeded_remote(tmp_path / "git", files)
        args = [
            "--repo", str(remote), "--state-dir", str(tmp_path / "state"),
            "--listen", f"127.0.0.1:{port}", "--operator-listen", f"127.0.0.1:{operator_port}",
            "--operator-token-env", "OPS_TOKEN", "--secret-env-prefix", "OPS_",
            "--status-coalesce", "0", "--no-watch",
        ]  # fmt: skip
        env = git_env(tmp_path, {"OPS_TOKEN": TOKEN, "OPS_KEY": fleet.api_key})
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "reconciler.cli", "run", *args,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        try:
            async with httpx.AsyncClient(timeout=5) as http:
                operator = f"http://127.0.0.1:{operator_port}"

                async def summary() -> dict[str, Any] | None:
                    with contextlib.suppress(httpx.HTTPError):
                        got = await http.get(
                            f"{operator}/", headers={"Authorization": f"Bearer {TOKEN}"}
                        )
                        devices = got.json().get("devices", {}) if got.status_code == 200 else {}
                        if all(d["reachable"] is not None for d in devices.values()) and devices:
                            return dict(got.json())
                    return None

                loop = asyncio.get_running_loop()
                deadline = loop.time() + 60
                while (seen := await summary()) is None:
                    assert loop.time() < deadline, "gitfirm run never observed its devices"
                    await asyncio.sleep(0.2)
                assert (await http.get(f"{operator}/metrics")).status_code == 401
                assert (await http.get(f"http://127.0.0.1:{port}/metrics")).status_code == 404
                assert (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert attacker.requests == []
    assert seen["devices"]["evil"]["reachable"] is False
    assert seen["devices"][fleet.names[0]]["reachable"] is True  # OPS_KEY: allowed
    assert TOKEN not in err.decode()


async def test_with_a_listener_and_a_token_both_are_required() -> None:
    async def ok(_: Request) -> Response:
        return PlainTextResponse("fleet")

    surfaces = build_surfaces(
        probes=[Route("/healthz", ok)],
        operator=[Route("/metrics", ok)],
        devices=[Route("/images/x", ok)],
        access=OperatorAccess("OPS_TOKEN", token=TOKEN, listen="127.0.0.1:9"),
    )
    assert surfaces.operator is not None
    operator = httpx.ASGITransport(app=surfaces.operator)
    device = httpx.ASGITransport(app=surfaces.device)
    async with (
        httpx.AsyncClient(transport=operator, base_url="http://ops") as ops,
        httpx.AsyncClient(transport=device, base_url="http://dev") as dev,
    ):
        assert (await ops.get("/metrics")).status_code == 401
        auth = {"Authorization": f"bearer {TOKEN}"}  # the scheme is case-insensitive
        assert (await ops.get("/metrics", headers=auth)).text == "fleet"
        assert (await ops.get("/images/x")).status_code == 404
        assert (await dev.get("/metrics", headers=auth)).status_code == 404
        assert (await dev.get("/images/x")).status_code == 200
        assert (await dev.get("/healthz")).status_code == 200
