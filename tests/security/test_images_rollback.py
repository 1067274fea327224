"""Anti-rollback, reworked (issue 9, point 6): the mark rises only when a device completes
an upgrade, the planned path is judged as a whole, ``allowDowngrade`` works, and the mark
is kept with the journal. Through the real daemon, real git, minisign keys made here and
the simulator."""

from __future__ import annotations

from pathlib import Path

from reconciler.images import minisign
from reconciler.model.kinds import Image
from reconciler.planning.plan import Action
from tests.support.daemon import wait_for
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


def _setup(tmp: Path, versions: list[str]) -> tuple[dict[str, Image], str]:
    key = minisign.generate_keypair()
    images = {v: s.image for v, s in signed_images(tmp / "up", versions, key).items()}
    return images, trust_yaml(trust_policy({"release": key.public}))


async def _all_on(ops: TrustFleet, version: str, names: tuple[str, ...]) -> None:
    await wait_for(
        lambda: all(ops.versions()[n] == version for n in names), 90, f"{names} on {version}"
    )
    await ops.settle()


async def test_verifying_an_image_moves_no_mark_so_download_order_decides_nothing(
    tmp_path: Path,
) -> None:
    images, trust = _setup(tmp_path, ["1.4.4", "1.4.5"])
    # Suspended: 1.4.5 is planned, so fetched and verified, but nothing is installed.
    files = config(images.values(), trust, rollout_yaml("1.4.5", suspend=True))
    async with trust_fleet(tmp_path, files) as ops:
        daemon = ops.running
        sha = images["1.4.5"].spec.sha256
        await wait_for(lambda: daemon.store.get(sha) is not None, 30, "1.4.5 verified")
        # 1.4.5 finished its download first. Now 1.4.5 is reached only through 1.4.4: the
        # older hop must still be allowed, since the path ends on 1.4.5.
        gated = relabel(images["1.4.5"], upgradeFrom=">=1.4.4, <1.4.5")
        merged = ops.merge(
            {
                "images/images.yaml": images_yaml([images["1.4.4"], gated]),
                "policies/fleet.yaml": rollout_yaml("1.4.5"),
            },
            "Roll out 1.4.5 through 1.4.4",
        )
        await ops.applied(merged)
        assert daemon.state.refused_images == {}
        plan = daemon.state.plan
        assert plan is not None and all(
            [h.version for h in d.path] == ["1.4.4", "1.4.5"] for d in plan.devices
        )
        await _all_on(ops, "1.4.5", (*FIRST, *REST))
        assert daemon.state.refused_images == {}
        # Only the completed upgrades moved the mark.
        assert daemon.marks.snapshot() == {"production": {"1.4": "1.4.5"}}


async def test_a_stored_sha256_under_another_version_label_is_refused(tmp_path: Path) -> None:
    images, trust = _setup(tmp_path, ["1.4.4"])
    files = config(images.values(), trust, rollout_yaml("1.4.4", first=True))
    async with trust_fleet(tmp_path, files) as ops:
        await _all_on(ops, "1.4.4", FIRST)
        adds = image_adds(ops.fleet, (*FIRST, *REST))
        # The bytes of 1.4.4, accepted once, now labelled 1.4.9.
        relabelled = relabel(images["1.4.4"], version="1.4.9")
        sha = ops.merge(
            {
                "images/images.yaml": images_yaml([relabelled]),
                "policies/fleet.yaml": rollout_yaml("1.4.9"),
            },
            "Release 1.4.9",
        )
        await ops.applied(sha)
        refused = ops.running.state.refused_images
        assert "relabelled" in refused.get(relabelled.name, ""), refused
        await ops.settle()
        assert image_adds(ops.fleet, (*FIRST, *REST)) == adds
        assert all(ops.versions()[n] == "1.4.3" for n in REST)


async def test_mark_survives_a_restart_and_allow_downgrade_passes_it(tmp_path: Path) -> None:
    images, trust = _setup(tmp_path, ["1.4.4", "1.4.5"])
    files = config(images.values(), trust, rollout_yaml("1.4.5", first=True))
    async with trust_fleet(tmp_path, files) as ops:
        await _all_on(ops, "1.4.5", FIRST)
        await ops.stop()
        daemon = await ops.start()  # a new process on the same state directory

        # 1.4.3 -> 1.4.4 is an upgrade for REST, but the fleet already completed 1.4.5.
        sha = ops.merge({"policies/fleet.yaml": rollout_yaml("1.4.4")}, "Hold at 1.4.4")
        await ops.applied(sha)
        plan = daemon.state.plan
        assert plan is not None
        for name in REST:
            device = plan.device(name)
            assert device is not None and device.action is Action.BLOCKED
            assert str(device.reason).startswith("rollback: 1.4.4 is older than 1.4.5")
        await ops.settle()
        assert image_adds(ops.fleet, REST) == 0
        assert daemon.marks.snapshot() == {"production": {"1.4": "1.4.5"}}

        ops.merge(
            {"policies/fleet.yaml": rollout_yaml("1.4.4", allowDowngrade=True)},
            "Go back to 1.4.4 on purpose",
        )
        await _all_on(ops, "1.4.4", (*FIRST, *REST))
