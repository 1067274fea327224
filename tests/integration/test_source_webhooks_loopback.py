"""One webhook over a real loopback socket, served by uvicorn."""

from __future__ import annotations

import asyncio
import socket

import httpx
import uvicorn

from reconciler.clock import FakeClock
from reconciler.source.webhooks import WebhookSecrets, webhook_app

SECRET = "It's a Secret to Everybody"
SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


async def test_github_vector_over_loopback() -> None:
    woken = asyncio.Event()
    app = webhook_app(WebhookSecrets(github=SECRET), woken.set, FakeClock())
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while not server.started:
                assert loop.time() < deadline, "uvicorn did not start"
                await asyncio.sleep(0.01)
            good = await client.post(
                "/webhooks/github",
                content=b"Hello, World!",
                headers={"X-Hub-Signature-256": SIGNATURE},
            )
            bad = await client.post(
                "/webhooks/github",
                content=b"Hello, World?",
                headers={"X-Hub-Signature-256": SIGNATURE},
            )
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
        sock.close()
    assert good.status_code == 202 and woken.is_set()
    assert bad.status_code == 401
    assert SECRET not in bad.text
