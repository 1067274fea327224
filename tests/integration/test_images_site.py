"""Site images: fetched once from a peer site's mirror (verified again) or the upstream,
under the site's fetch cap and download-concurrency cap, served under its serve cap.

The caps are checked through the real fetch and serve paths by the limiters' own
accounting (every byte moved went through the site's throttle) and on the injected clock
(the throttle made the transfer take at least bytes / rate of clock time), never by wall
time.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.clock import FakeClock
from reconciler.images.serve import DistributionServer
from reconciler.images.site import SiteImages, SiteImageSettings
from reconciler.images.store import ImageStore
from reconciler.images.tokens import TokenSigner
from reconciler.model.state import DesiredState
from tests.support.images import SignedImage, make_image

SHARED_KEY = b"k" * 32
PEER = "http://ams.images.test"
BURST = 0.25  # the Throttle's burst allowance, in seconds of rate


@dataclass
class Site:
    images: SiteImages
    server: DistributionServer
    clock: FakeClock


def _site(tmp: Path, name: str, **settings: object) -> Site:
    clock = FakeClock(autojump=True)
    store = ImageStore(tmp / f"store-{name}", clock)
    tokens = TokenSigner(SHARED_KEY, clock=clock)
    images = SiteImages(
        store,
        site=name,
        tokens=tokens,
        clock=clock,
        settings=SiteImageSettings.model_validate(settings),
    )
    server = DistributionServer(store, tokens, clock=clock, limits=images.serve_limits())
    return Site(images, server, clock)


def _state(*signed: SignedImage) -> DesiredState:
    return DesiredState(
        images={s.image.name: s.image for s in signed},
        trust_policies={"vyos": signed[0].trust},
    )


def _via(server: DistributionServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=server.app))


async def test_a_site_pulls_once_from_its_peer_under_both_caps(tmp_path: Path) -> None:
    signed = make_image(tmp_path / "upstream", size=300_000)
    state = _state(signed)
    name, size = signed.image.name, signed.image.spec.size
    ams = _site(tmp_path, "ams", serve_bps=100_000)
    fra = _site(tmp_path, "fra", peers=[PEER], fetch_bps=60_000)
    assert not isinstance((await ams.images.fetch(state, [name]))[name], Exception)
    signed.file.unlink()  # the upstream is gone: fra can only get the image from ams

    served_before = ams.clock.monotonic()
    fetched_before = fra.clock.monotonic()
    async with _via(ams.server) as client:
        result = (await fra.images.fetch(state, [name], client=client))[name]
    assert not isinstance(result, Exception), result
    stored = fra.images.store.get(signed.image.spec.sha256)
    assert stored is not None and stored.path.read_bytes() == signed.data
    assert fra.images.from_peer == {name: PEER}

    # Every byte went through each site's cap, and the cap paced it on the clock.
    served = ams.server.counters.bytes_served
    assert served >= size
    assert ams.server.global_throttle is not None
    assert ams.server.global_throttle.consumed == served
    assert ams.clock.monotonic() - served_before >= served / 100_000 - BURST
    assert fra.images.fetch_throttle is not None
    assert fra.images.fetch_throttle.consumed == size
    assert fra.clock.monotonic() - fetched_before >= size / 60_000 - BURST

    # Once: asked again, fra checks what it stored and downloads nothing.
    async with _via(ams.server) as client:
        again = (await fra.images.fetch(state, [name], client=client))[name]
    assert not isinstance(again, Exception)
    assert ams.server.counters.bytes_served == served
    assert fra.images.fetch_throttle.consumed == size


async def test_bytes_from_a_peer_are_verified_again(tmp_path: Path) -> None:
    signed = make_image(tmp_path / "upstream", size=200_000)
    state = _state(signed)
    name = signed.image.name
    ams = _site(tmp_path, "ams")
    await ams.images.fetch(state, [name])
    # The peer's copy is corrupted after it verified it (a bad disk, a hostile peer).
    stored = ams.images.store.get(signed.image.spec.sha256)
    assert stored is not None
    os.chmod(stored.path, 0o644)
    stored.path.write_bytes(b"\0" * len(signed.data))

    fra = _site(tmp_path, "fra", peers=[PEER])
    async with _via(ams.server) as client:
        result = (await fra.images.fetch(state, [name], client=client))[name]
    # Refused from the peer, then fetched from the upstream and verified there.
    assert not isinstance(result, Exception), result
    assert fra.images.from_peer == {}
    mine = fra.images.store.get(signed.image.spec.sha256)
    assert mine is not None and mine.path.read_bytes() == signed.data

    # With the upstream gone too, the image is refused, never stored.
    lon = _site(tmp_path, "lon", peers=[PEER])
    signed.file.unlink()
    async with _via(ams.server) as client:
        refused = (await lon.images.fetch(state, [name], client=client))[name]
    assert isinstance(refused, Exception)
    assert lon.images.store.get(signed.image.spec.sha256) is None


@pytest.mark.parametrize("cap", [1, 2])
async def test_downloads_at_once_stay_under_the_cap(tmp_path: Path, cap: int) -> None:
    first = make_image(tmp_path / "upstream", version="1.4.1", size=100_000)
    rest = [
        make_image(tmp_path / "upstream", version=v, size=100_000, key=first.key)
        for v in ("1.4.2", "1.4.3", "1.4.4")
    ]
    state = _state(first, *rest)
    site = _site(tmp_path, "fra", fetch_concurrency=cap, fetch_bps=50_000)
    results = await site.images.fetch(state, sorted(state.images))
    assert not [r for r in results.values() if isinstance(r, Exception)], results
    # Four downloads wanted at once: the gate let exactly ``cap`` run together.
    assert site.images.peak == cap
    assert site.images.fetch_throttle is not None
    assert site.images.fetch_throttle.consumed == 4 * 100_000


def test_settings_refuse_nonsense() -> None:
    for bad in ({"serve_bps": 0}, {"fetch_concurrency": 0}, {"peer": ["x"]}):
        with pytest.raises(ValueError):
            SiteImageSettings.model_validate(bad)


async def test_its_own_http_client_is_made_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Making an HTTP client loads the CA bundle into a TLS context (0.1 s of CPU, one of
    the longest event-loop blocks of a 10,000-device pass)."""
    loop_thread = threading.get_ident()
    made_on: list[bool] = []
    real = httpx.AsyncClient.__init__

    def init(self: httpx.AsyncClient, *args: Any, **kwargs: Any) -> None:
        made_on.append(threading.get_ident() == loop_thread)
        real(self, *args, **kwargs)

    monkeypatch.setattr(httpx.AsyncClient, "__init__", init)
    signed = make_image(tmp_path / "upstream", version="1.4.1", size=10_000)
    site = _site(tmp_path, "fra")
    results = await site.images.fetch(_state(signed), [signed.image.name])
    assert not isinstance(results[signed.image.name], Exception), results
    assert made_on == [False], made_on
