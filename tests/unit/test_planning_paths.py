"""Upgrade paths: shortest hops, train crossings only by upgradeFrom, revoked, platform."""

from __future__ import annotations

from reconciler.model.kinds import Platform
from reconciler.model.versions import newness, parse_version
from reconciler.planning.paths import accepts, find_path, reachable, usable_images
from tests.support.planning import image

AMD = Platform(arch="amd64")
ARM = Platform(arch="arm64")

CATALOGUE = [
    image("1.3.8"),
    image("1.4.2", upgrade_from=">=1.3.8 || 1.4.*"),
    image("1.4.3", upgrade_from="1.3.* || 1.4.*"),
    image("2025.11.17-0021-rolling", upgrade_from="1.4.* || rolling"),
    image("2025.11.20-0020-rolling", upgrade_from=">=1.4.3 || rolling"),
]


def _versions(path: object) -> list[str]:
    assert isinstance(path, tuple)
    return [i.spec.version for i in path]


def test_multi_hop_lts_to_rolling_prefers_newest_intermediate() -> None:
    hops = usable_images(CATALOGUE, AMD)
    target = next(i for i in hops if i.spec.version == "2025.11.20-0020-rolling")
    path = find_path(parse_version("1.3.8"), target, hops)
    # Both 1.4.2 and 1.4.3 accept 1.3.8, but only 1.4.3 leads on to this target.
    assert _versions(path) == ["1.4.3", "2025.11.20-0020-rolling"]


def test_tie_between_equal_paths_takes_newest_intermediate() -> None:
    catalogue = [
        image("1.4.1", upgrade_from="1.3.*"),
        image("1.4.2", upgrade_from="1.3.*"),
        image("2025.11.20-0020-rolling", upgrade_from="1.4.*"),
    ]
    hops = usable_images(catalogue, AMD)
    path = find_path(parse_version("1.3.8"), hops[0], hops)
    assert _versions(path) == ["1.4.2", "2025.11.20-0020-rolling"]


def test_train_is_never_crossed_without_upgrade_from() -> None:
    catalogue = [image("1.3.8"), image("1.4.3"), image("2025.11.20-0020-rolling")]
    hops = usable_images(catalogue, AMD)
    for target in hops:
        if target.spec.version != "1.3.8":
            assert find_path(parse_version("1.3.8"), target, hops) is None
    assert reachable(parse_version("1.3.8"), hops) == {}


def test_no_upgrade_from_accepts_older_versions_of_its_own_train_only() -> None:
    img = image("1.4.3")
    assert accepts(img, parse_version("1.4.0-rc3"))
    assert accepts(img, parse_version("1.4.2"))
    assert not accepts(img, parse_version("1.4.3"))
    assert not accepts(img, parse_version("1.4.4"))
    assert not accepts(img, parse_version("1.3.8"))


def test_upgrade_from_constraint_is_evaluated() -> None:
    img = image("1.4.3", upgrade_from=">=1.4.1")
    assert accepts(img, parse_version("1.4.2"))
    assert not accepts(img, parse_version("1.4.0"))
    # Matching the constraint never allows a downgrade on the image's own train.
    assert not accepts(image("1.4.1", upgrade_from="1.4.*"), parse_version("1.4.2"))


def test_direct_hop_when_allowed_and_same_version_is_empty_path() -> None:
    hops = usable_images(CATALOGUE, AMD)
    target = next(i for i in hops if i.spec.version == "1.4.3")
    assert _versions(find_path(parse_version("1.4.2"), target, hops)) == ["1.4.3"]
    assert find_path(parse_version("1.4.3"), target, hops) == ()


def test_revoked_images_are_skipped_as_hops() -> None:
    catalogue = [
        image("1.4.3", upgrade_from="1.3.*", revoked=True),
        image("1.4.2", upgrade_from="1.3.*"),
        image("2025.11.20-0020-rolling", upgrade_from="1.4.*"),
    ]
    hops = usable_images(catalogue, AMD)
    assert [i.spec.version for i in hops] == ["2025.11.20-0020-rolling", "1.4.2"]
    path = find_path(parse_version("1.3.8"), hops[0], hops)
    assert _versions(path) == ["1.4.2", "2025.11.20-0020-rolling"]


def test_platform_limits_hops() -> None:
    catalogue = [
        image("1.4.3", upgrade_from="1.3.*", arches=("amd64",)),
        image("2025.11.20-0020-rolling", upgrade_from="1.4.*", arches=("amd64", "arm64")),
    ]
    arm_hops = usable_images(catalogue, ARM)
    assert [i.spec.version for i in arm_hops] == ["2025.11.20-0020-rolling"]
    assert find_path(parse_version("1.3.8"), arm_hops[0], arm_hops) is None
    amd_hops = usable_images(catalogue, AMD)
    assert _versions(find_path(parse_version("1.3.8"), amd_hops[0], amd_hops)) == [
        "1.4.3",
        "2025.11.20-0020-rolling",
    ]


def test_newness_orders_trains_by_generation() -> None:
    texts = ["2025.01.10-0020-rolling", "1.3.8", "1.5-rolling-202410230007", "1.4.0", "1.4.0-rc3"]
    ordered = sorted(texts, key=lambda t: newness(parse_version(t)))
    assert ordered == [
        "1.3.8",
        "1.4.0-rc3",
        "1.4.0",
        "1.5-rolling-202410230007",
        "2025.01.10-0020-rolling",
    ]


def test_reachable_reports_distances() -> None:
    hops = usable_images(CATALOGUE, AMD)
    assert reachable(parse_version("1.3.8"), hops) == {
        "vyos-1.4.2": 1,
        "vyos-1.4.3": 1,
        "vyos-2025.11.17-0021-rolling": 2,
        "vyos-2025.11.20-0020-rolling": 2,
    }
