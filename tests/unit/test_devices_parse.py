"""Parsers of ``show`` output, and the version formats the devices report."""

from __future__ import annotations

import pytest

from reconciler.devices.parse import (
    ParseError,
    parse_bgp_summary,
    parse_health,
    parse_image_list,
    parse_memory,
    parse_uptime,
    parse_version_output,
)
from reconciler.model.features import api_features
from reconciler.model.versions import VersionError, parse_version
from reconciler.simulator import outputs
from reconciler.simulator.fleet import make_fleet

LIST_13 = """The system currently has the following image(s) installed:

   1: 1.3.8 (default boot) (running image)
   2: 1.3.7

"""
TABLE_14 = """Name                      Default boot    Running
------------------------  --------------  ---------
2025.01.10-0020-rolling   Yes
1.5-rolling-202410230007                  Yes
"""


def test_both_image_list_formats() -> None:
    assert [(i.name, i.default, i.running) for i in parse_image_list(LIST_13)] == [
        ("1.3.8", True, True),
        ("1.3.7", False, False),
    ]
    assert [(i.name, i.default, i.running) for i in parse_image_list(TABLE_14)] == [
        ("2025.01.10-0020-rolling", True, False),
        ("1.5-rolling-202410230007", False, True),
    ]
    with pytest.raises(ParseError):
        parse_image_list("garbage")


def test_show_version() -> None:
    text = (
        "Version:          VyOS 1.4.0-epa1\nRelease train:    sagitta\n"
        "Release flavor:   generic\n\nArchitecture:     x86_64\n"
    )
    v = parse_version_output(text)
    assert (v.version, v.architecture, v.flavor) == ("1.4.0-epa1", "amd64", "generic")
    v13 = parse_version_output("Version:          VyOS 1.3.8\nArchitecture:     aarch64\n")
    assert (v13.version, v13.architecture, v13.flavor) == ("1.3.8", "arm64", None)
    with pytest.raises(ParseError):
        parse_version_output("nothing here")


def test_health_both_families() -> None:
    assert parse_uptime(
        "Uptime: 2d 3h 4m 5s\n\nLoad averages:\n1  minute:   12.0%\n5  minutes:  1%\n"
    ) == (2 * 86400 + 3 * 3600 + 4 * 60 + 5, 0.12)
    seconds, load = parse_uptime(
        " 12:00:00 up 3 days,  2:03,  1 user,  load average: 0.25, 0.10, 0.05\n"
    )
    assert (seconds, load) == (3 * 86400 + 2 * 3600 + 3 * 60, 0.25)
    assert parse_memory("Total: 2000\nFree:  1500\nUsed:  500\n") == 25.0
    assert parse_memory("Total: 4.00 GB\nFree:  3.00 GB\nUsed:  1.00 GB\n") == 25.0
    assert parse_memory("no figures") is None


def test_simulator_outputs_round_trip_through_parsers() -> None:
    for dev in make_fleet(8, seed=3):
        assert parse_version_output(outputs.show_version(dev)).version == dev.running
        images = parse_image_list(outputs.image_list(dev))
        assert {i.name for i in images} == set(dev.images)
        health = parse_health(outputs.uptime(dev, 90_061), outputs.memory(dev))
        assert health.uptime_seconds is not None and abs(health.uptime_seconds - 90_061) < 60
        expected = 100 * dev.memory_used_mb / dev.memory_total_mb
        assert health.memory_used_percent is not None
        assert abs(health.memory_used_percent - expected) < 1.0
        peers = parse_bgp_summary(outputs.bgp_summary(dev))
        assert len(peers) == len(dev.bgp_peers) and all(p.established for p in peers)
        dev.bgp_down = True
        assert not any(p.established for p in parse_bgp_summary(outputs.bgp_summary(dev)))


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("1.3.7", "1.3.8"),
        ("1.4.0-rc3", "1.4.0-epa1"),
        ("1.4.0-epa1", "1.4.0"),
        ("1.4.0", "1.4.3"),
        ("1.5-rolling-202409250007", "1.5-rolling-202410230007"),
        ("1.5-rolling-202410230007", "2025.01.10-0020-rolling"),
        ("2025.01.10-0020-rolling", "2025.02.01-0010-rolling"),
        ("2025.01.10-0020-integration", "2025.01.11-0020-integration"),
    ],
)
def test_version_ordering(older: str, newer: str) -> None:
    assert parse_version(older) < parse_version(newer)


def test_lts_and_rolling_are_not_ordered_and_families() -> None:
    with pytest.raises(VersionError):
        _ = parse_version("1.4.3") < parse_version("2025.01.10-0020-rolling")
    assert [
        parse_version(v).family for v in ("1.3.8", "1.4.0-rc3", "1.5-rolling-202410230007")
    ] == [
        "1.3",
        "1.4",
        "1.5",
    ]
    assert api_features("1.3.8").reboot is False
    assert api_features("1.4.3").reboot and not api_features("1.4.3").set_default
    rolling = api_features("2025.03.10-0020-rolling")
    assert rolling.info and rolling.set_default and rolling.image_show
    assert api_features("not-a-version").reboot is False
