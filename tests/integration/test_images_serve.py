"""Distribution server: tokens, ranges, HEAD, signatures, caps, counters and site mirrors."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn

from reconciler.clock import FakeClock
from reconciler.images.fetch import Fetcher
from reconciler.images.mirror import pull_from_peer
from reconciler.images.serve import DistributionServer, ServeLimits
from reconciler.images.store import ImageStore
from reconciler.images.tokens import TokenSigner
from reconciler.sanitize import redact
from tests.support.images import SignedImage, make_image

BASE = "http://dist.test"


@dataclass
class Setup:
    server: DistributionServer
    client: httpx.AsyncClient
    clock: FakeClock
    si: SignedImage
    url: str


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    clock = FakeClock(autojump=True)
    store = ImageStore(tmp_path / "cache", clock)
    si = make_image(tmp_path / "src")
    async with httpx.AsyncClient() as plain:
        await Fetcher(store, plain, clock=clock).fetch(si.image, [si.trust])
    server = DistributionServer(
        store,
        TokenSigner(b"s" * 32, clock=clock),
        clock=clock,
        limits=ServeLimits(chunk_size=65_536),
    )
    url = server.url_for(BASE, "r1", si.image.spec.sha256, timedelta(minutes=10))
    transport = httpx.ASGITransport(app=server.app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield Setup(server, client, clock, si, url)


async def test_full_download_and_counters(setup: Setup) -> None:
    resp = await setup.client.get(setup.url)
    assert resp.status_code == 200
    assert resp.content == setup.si.data
    assert resp.headers["accept-ranges"] == "bytes"
    counters = setup.server.counters
    assert counters.bytes_served == len(setup.si.data)
    assert counters.bytes_by_image == {setup.si.image.spec.sha256: len(setup.si.data)}


async def test_signature_served_beside_the_image(setup: Setup) -> None:
    resp = await setup.client.get(setup.url + ".minisig")
    assert resp.status_code == 200 and resp.content == setup.si.minisig.read_bytes()


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=1000-", 1000, None),
        ("bytes=-500", -500, None),
        ("bytes=10-999999999", 10, None),
    ],
)
async def test_ranges(setup: Setup, header: str, start: int, end: int | None) -> None:
    data = setup.si.data
    resp = await setup.client.get(setup.url, headers={"Range": header})
    assert resp.status_code == 206
    expected = data[start : None if end is None else end + 1]
    assert resp.content == expected
    first = start % len(data)
    assert resp.headers["content-range"] == f"bytes {first}-{first + len(expected) - 1}/{len(data)}"


async def test_unsatisfiable_range_and_head(setup: Setup) -> None:
    size = len(setup.si.data)
    resp = await setup.client.get(setup.url, headers={"Range": f"bytes={size}-"})
    assert resp.status_code == 416 and resp.headers["content-range"] == f"bytes */{size}"
    head = await setup.client.head(setup.url)
    assert head.status_code == 200 and head.headers["content-length"] == str(size)
    assert head.content == b""
    head = await setup.client.head(setup.url, headers={"Range": "bytes=0-9"})
    assert head.status_code == 206 and head.headers["content-length"] == "10"


async def test_expired_foreign_and_wrong_file_tokens(setup: Setup, tmp_path: Path) -> None:
    token_url = setup.url
    setup.clock.advance(601)
    assert (await setup.client.get(token_url)).status_code == 403
    foreign = TokenSigner(b"x" * 32, clock=setup.clock).issue(
        "r1", setup.si.image.spec.sha256, timedelta(hours=1)
    )
    resp = await setup.client.get(f"/images/r1/{foreign}/{setup.si.file.name}")
    assert resp.status_code == 403 and "invalid" in resp.text
    fresh = setup.server.url_for(BASE, "r1", setup.si.image.spec.sha256, timedelta(hours=1))
    token = fresh.split("/")[-2]
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert (
        await setup.client.get(f"/images/r1/{tampered}/{setup.si.file.name}")
    ).status_code == 403
    assert (await setup.client.get(f"/images/r1/{token}/other.iso")).status_code == 404
    unknown = setup.server.tokens.issue(
        "r1", hashlib.sha256(b"nothing").hexdigest(), timedelta(hours=1)
    )
    assert (
        await setup.client.get(f"/images/r1/{unknown}/{setup.si.file.name}")
    ).status_code == 403  # never issued by url_for: not a live grant
    assert setup.server.counters.refused == 5
    assert "sss" not in repr(setup.server.tokens)


async def test_bandwidth_caps_pace_on_the_clock(setup: Setup) -> None:
    server = setup.server
    capped = DistributionServer(
        server.store,
        server.tokens,
        clock=setup.clock,
        limits=ServeLimits(global_bps=1_000_000, per_connection_bps=100_000, chunk_size=50_000),
    )
    before = setup.clock.monotonic()
    url = capped.url_for(BASE, "r1", setup.si.image.spec.sha256, timedelta(minutes=10))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=capped.app), base_url=BASE) as c:
        resp = await c.get(url)
    assert resp.content == setup.si.data
    # 300 kB at 100 kB/s per connection, less the quarter-second burst allowance.
    assert setup.clock.monotonic() - before == pytest.approx(2.75, abs=0.6)


async def test_site_mirror_pulls_and_verifies_again(setup: Setup, tmp_path: Path) -> None:
    other_store = ImageStore(tmp_path / "site-b", setup.clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=setup.server.app)) as client:
        fetcher = Fetcher(other_store, client, clock=setup.clock)
        verified = await pull_from_peer(
            fetcher,
            setup.si.image,
            [setup.si.trust],
            peers=[BASE],
            tokens=setup.server.tokens,
            site="b",
        )
    stored = other_store.get(verified.sha256)
    assert stored is not None and stored.path.read_bytes() == setup.si.data
    assert stored.signature is not None


async def test_tokens_in_urls_are_redacted_by_the_sanitizer(setup: Setup) -> None:
    token = setup.url.split("/")[-2]
    assert len(token) >= 16
    assert token not in redact(f"stage failed for {setup.url}")


async def test_uvicorn_sends_large_bodies_zero_copy(setup: Setup) -> None:
    """Over a real uvicorn socket the body goes out by sendfile and the connection closes."""
    server = setup.server
    config = uvicorn.Config(
        server.app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", http="h11"
    )
    web = uvicorn.Server(config)
    task = asyncio.create_task(web.serve())
    try:
        for _ in range(200):
            if web.started:
                break
            await asyncio.sleep(0.05)
        assert web.started
        port = web.servers[0].sockets[0].getsockname()[1]
        url = setup.url.replace(BASE, f"http://127.0.0.1:{port}")
        data = setup.si.data
        async with httpx.AsyncClient(timeout=10) as client:
            whole = await client.get(url)
            part = await client.get(url, headers={"range": "bytes=70000-"})
            sig = await client.get(url + ".minisig")
        assert whole.status_code == 200 and whole.content == data
        assert whole.headers["connection"] == "close"
        assert part.status_code == 206 and part.content == data[70_000:]
        assert sig.status_code == 200 and "connection" not in sig.headers  # small: read loop
        sent = len(data) + len(data) - 70_000 + len(sig.content)
        assert server.counters.bytes_served == sent
    finally:
        web.should_exit = True
        await asyncio.wait_for(task, 10)
