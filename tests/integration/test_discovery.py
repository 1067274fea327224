"""Discovery against simulated routers over HTTPS on several loopback addresses and ports,
next to services that are not VyOS (a plain-HTTP look-alike, another HTTPS API, a closed
port): every router is found with its facts and pin, nothing else is reported."""

from __future__ import annotations

from pathlib import Path

import yaml

from reconciler.clock import SystemClock
from reconciler.devices.transport import make_http_client
from reconciler.discovery import (
    Found,
    ProbeSettings,
    device_documents,
    discovery_proposals,
    expand_targets,
    mark_declared,
    scan,
)
from reconciler.model.kinds import Device
from reconciler.model.loader import load_repository
from tests.support.discovery import KEY, Lan, lan

CIDRS = ["127.0.0.2/31", "127.0.0.4/31", "127.0.0.6/32"]  # .2 to .6, never .1 (shared)


async def _scan(net: Lan, key: str | None) -> list[Found]:
    http = make_http_client()
    try:
        return await scan(
            expand_targets(CIDRS, net.ports),
            http=http,
            clock=SystemClock(),
            api_key=key,
            settings=ProbeSettings(timeout=5.0, concurrency=8, rate=1000.0),
        )
    finally:
        await http.aclose()


async def test_every_router_is_found_and_nothing_else(tmp_path: Path) -> None:
    async with lan(tmp_path / "tls") as net:
        found = await _scan(net, KEY)
        by_address = {f.address: f for f in found}
        assert sorted(by_address) == sorted(r.address for r in net.routers)
        for router in net.routers:
            f = by_address[router.address]
            assert f.fingerprint == router.fingerprint
            assert f.version == router.device.release
            assert f.architecture == router.device.arch
            assert f.hostname == router.device.hostname
            assert f.note is None
        assert by_address[net.routers[0].address].flavor is None  # 1.3 has no flavor line
        assert by_address[net.routers[1].address].flavor == "generic"
        # Discovery only reads: no router saw a write.
        for router in net.routers:
            calls = router.device.calls
            assert set(calls) <= {"/retrieve", "/show", "/info"}, calls


async def test_without_a_key_only_info_gives_the_version(tmp_path: Path) -> None:
    async with lan(tmp_path / "tls") as net:
        found = {f.address: f for f in await _scan(net, None)}
        assert sorted(found) == sorted(r.address for r in net.routers)
        old13, old14, new = (found[r.address] for r in net.routers)
        assert new.version == "2025.06.01-0020-rolling" and new.note is None
        assert old13.version is None and old14.version is None
        assert "no /info" in (old13.note or "")


async def test_a_wrong_key_still_finds_the_router_and_says_so(tmp_path: Path) -> None:
    async with lan(tmp_path / "tls", releases=("1.4",)) as net:
        (found,) = await _scan(net, "not-the-key")
        assert found.address == net.routers[0].address
        assert found.version is None and found.note == "the API key was refused"


async def test_declared_routers_are_marked_and_documents_validate(tmp_path: Path) -> None:
    async with lan(tmp_path / "tls") as net:
        found = await _scan(net, KEY)
    r13, r14, r15 = net.routers
    declared = {
        # r13 by its address; r14 by its pin under another name (a DNS name, say).
        "edge-1": _device("edge-1", r13.address),
        "edge-2": _device("edge-2", "https://edge-2.example.net:443", pin=r14.fingerprint),
    }
    marked = {f.address: f for f in mark_declared(found, declared)}
    assert marked[r13.address].declared_as == "edge-1"
    assert marked[r14.address].declared_as == "edge-2"
    assert marked[r15.address].declared_as is None

    docs = device_documents(list(marked.values()), site="lab", key_env="VYOS_API_KEY")
    repo = tmp_path / "repo"
    (repo / "fleet").mkdir(parents=True)
    (repo / "fleet" / "found.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    loaded = load_repository(repo)
    assert loaded.errors == [] and loaded.state is not None
    devices = loaded.state.devices
    assert len(devices) == 3
    for f in marked.values():
        (device,) = [d for d in devices.values() if str(d.spec.address).rstrip("/") == f.address]
        assert device.spec.tls.fingerprint == f.fingerprint
        assert device.spec.site == "lab"
        assert device.spec.platform.arch == f.architecture
        assert device.metadata.annotations["gitfirm.io/discovered-version"] == f.version

    proposals = discovery_proposals(list(marked.values()), site="lab", key_env="VYOS_API_KEY")
    assert [p.subject for p in proposals] == [f"{r15.address} {r15.fingerprint}"]
    (path,) = proposals[0].files
    assert path.startswith("fleet/discovered/")


def _device(name: str, address: str, pin: str | None = None) -> Device:
    return Device.model_validate(
        {
            "apiVersion": "gitfirm.io/v1",
            "kind": "Device",
            "metadata": {"name": name},
            "spec": {
                "address": address,
                "credentials": {"apiKey": {"env": "VYOS_API_KEY"}},
                "site": "lab",
                **({"tls": {"fingerprint": pin}} if pin else {}),
            },
        }
    )
