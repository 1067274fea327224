"""Attack 2 of issue 9: a stored image skips current trust. Through the real daemon, real
git pushes, real minisign keys made here and the simulator.

- An image verified for ``testing`` with key A, re-declared with the same sha256 in
  ``production`` (whose TrustPolicy pins key B), is refused: no device gets an image add.
- Removing a key from a TrustPolicy refuses the stored image at the next revision.
- Image URLs are bound to one device and one image, and withdrawn when the step ends.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml

from reconciler.daemon import DaemonSettings
from reconciler.errors import RolloutError
from reconciler.images import minisign
from tests.support.daemon import wait_for
from tests.support.gitrepo import git
from tests.support.images import trust_policy
from tests.support.trustops import (
    FIRST,
    REST,
    TrustFleet,
    config,
    image_adds,
    images_yaml,
    relabel,
    rollout_yaml,
    signed_images,
    trust_fleet,
    trust_yaml,
)


async def _first_on_144(ops: TrustFleet) -> None:
    await wait_for(lambda: all(ops.versions()[n] == "1.4.4" for n in FIRST), 90, "first rollout")
    await ops.settle()


def _rollout_status(ops: TrustFleet) -> str:
    return git(ops.remote, "show", "status:rollouts/fleet.yaml")


async def _refused(ops: TrustFleet, sha: str, image: str, reason: str) -> None:
    daemon = ops.running
    await ops.applied(sha)
    await wait_for(lambda: image in daemon.state.refused_images, 30, f"{image} refused")
    assert reason in daemon.state.refused_images[image]
    # The refusal is in status, with its reason, and the edge devices were never touched.
    await wait_for(lambda: reason in _rollout_status(ops), 30, "refusal in status")
    halt = yaml.safe_load(_rollout_status(ops))
    assert image in str(halt) and reason in str(halt)
    assert image_adds(ops.fleet, REST) == 0
    assert all(ops.versions()[n] == "1.4.3" for n in REST)
    assert not daemon.rollouts_running()


async def test_image_verified_for_testing_is_refused_in_production(tmp_path: Path) -> None:
    key_a, key_b = minisign.generate_keypair(), minisign.generate_keypair()
    image = signed_images(tmp_path / "up", ["1.4.4"], key_a, channel="testing")["1.4.4"].image
    trust = trust_yaml(
        trust_policy({"release": key_a.public}, channels=("testing",), name="testing"),
        trust_policy({"release": key_b.public}, channels=("production",), name="production"),
    )
    files = config([image], trust, rollout_yaml("1.4.4", first=True))
    async with trust_fleet(tmp_path, files) as ops:
        await _first_on_144(ops)  # verified with key A and stored, for testing
        assert ops.running.store.get(image.spec.sha256) is not None
        sha = ops.merge(
            {
                "images/images.yaml": images_yaml([relabel(image, channel="production")]),
                "policies/fleet.yaml": rollout_yaml("1.4.4"),
            },
            "Promote 1.4.4 to production (signed by key A only)",
        )
        await _refused(ops, sha, image.name, "key-not-trusted")
        # Each plan checks again: another pass refuses it again, still without a device.
        await ops.running.reconcile(None)
        assert image.name in ops.running.state.refused_images
        assert image_adds(ops.fleet, REST) == 0


async def test_removing_a_key_refuses_the_stored_image(tmp_path: Path) -> None:
    key_a, key_b = minisign.generate_keypair(), minisign.generate_keypair()
    image = signed_images(tmp_path / "up", ["1.4.4"], key_a)["1.4.4"].image
    files = config(
        [image],
        trust_yaml(trust_policy({"release": key_a.public})),
        rollout_yaml("1.4.4", first=True),
    )
    async with trust_fleet(tmp_path, files) as ops:
        await _first_on_144(ops)
        sha = ops.merge(
            {
                "trust/trust.yaml": trust_yaml(trust_policy({"release": key_b.public})),
                "policies/fleet.yaml": rollout_yaml("1.4.4"),
            },
            "Rotate the release key: A is compromised",
        )
        await _refused(ops, sha, image.name, "key-not-trusted")
        # A rollout already running asks for URLs too: none is issued for the image.
        with pytest.raises(RolloutError, match="key-not-trusted"):
            ops.running.engine.image_url(REST[0], image.name)
        assert ops.running.distribution.live(REST[0]) == 0


async def test_image_urls_are_bound_to_device_and_image_and_end_with_the_step(
    tmp_path: Path,
) -> None:
    assert DaemonSettings(repo=".", state_dir=tmp_path).image_url_ttl <= 15 * 60
    key = minisign.generate_keypair()
    images = signed_images(tmp_path / "up", ["1.4.4"], key)
    image = images["1.4.4"].image
    files = config(
        [image],
        trust_yaml(trust_policy({"release": key.public})),
        rollout_yaml("1.4.4", first=True),
    )
    async with trust_fleet(tmp_path, files) as ops:
        await _first_on_144(ops)
        x, y = REST
        # The URL the rollout engine would hand device x for its stage step.
        url = ops.running.engine.image_url(x, image.name)
        path = httpx.URL(url).path
        assert f"/{x}/" in path
        file_name = image.spec.source.file_name
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ops.port}") as http:
            head = await http.head(path)
            assert head.status_code == 200
            assert (await http.get(path + ".minisig")).status_code == 200
            # Device y presenting x's token, or x's token for another file: refused.
            as_y = path.replace(f"/{x}/", f"/{y}/")
            assert (await http.get(as_y)).status_code == 403
            other = path.replace(file_name, "vyos-1.4.9-generic-amd64.iso")
            assert (await http.get(other)).status_code in (403, 404)
            # x's step: the rollout takes x through stage; once it is over, the URL is dead.
            ops.merge({"policies/fleet.yaml": rollout_yaml("1.4.4")}, "Roll the edge")
            await wait_for(lambda: ops.versions()[x] == "1.4.4", 90, "x upgraded")
            await ops.settle()
            refused = await http.get(path)
            assert refused.status_code == 403 and "revoked" in refused.text
            assert ops.running.distribution.live(x) == 0
