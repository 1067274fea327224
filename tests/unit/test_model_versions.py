"""VyOS version strings: every format of VYOS-API.md, trains, order and constraints."""

from __future__ import annotations

import pytest

from reconciler.model.versions import VersionError, parse_constraint, parse_version


@pytest.mark.parametrize(
    ("text", "train", "family"),
    [
        ("1.3.8", "1.3", "1.3"),
        ("1.4.0", "1.4", "1.4"),
        ("1.4.0-rc3", "1.4", "1.4"),
        ("1.4.0-epa1", "1.4", "1.4"),
        ("1.5-rolling-202410230007", "rolling", "1.5"),
        ("2025.01.10-0020-rolling", "rolling", "1.5"),
        ("2025.01.10-0020-integration", "integration", "1.5"),
    ],
)
def test_parse(text: str, train: str, family: str) -> None:
    version = parse_version(text)
    assert (version.train, version.family, str(version)) == (train, family, text)


def test_lts_order_with_prereleases() -> None:
    texts = ["1.4.0", "1.3.8", "1.4.0-epa1", "1.4.1", "1.4.0-rc3", "1.4.0-rc10", "1.3.10"]
    lts14 = sorted(parse_version(t) for t in texts if t.startswith("1.4"))
    assert [v.text for v in lts14] == ["1.4.0-rc3", "1.4.0-rc10", "1.4.0-epa1", "1.4.0", "1.4.1"]
    assert parse_version("1.3.10") > parse_version("1.3.8")


def test_rolling_orders_by_timestamp_and_date_names_are_newer() -> None:
    old = parse_version("1.5-rolling-202412312359")
    older = parse_version("1.5-rolling-202410230007")
    new = parse_version("2025.01.10-0020-rolling")
    newer = parse_version("2025.01.10-0021-rolling")
    assert older < old < new < newer


def test_lts_and_rolling_are_never_ordered() -> None:
    with pytest.raises(VersionError, match="cannot order"):
        _ = parse_version("1.4.3") < parse_version("2025.01.10-0020-rolling")
    assert not parse_version("1.4.3").comparable(parse_version("1.3.8"))


@pytest.mark.parametrize("bad", ["1.4", "v1.4.3", "1.4.3-beta1", "2025.1.10-0020-rolling", ""])
def test_bad_versions(bad: str) -> None:
    with pytest.raises(VersionError):
        parse_version(bad)


def test_constraints() -> None:
    c = parse_constraint(">=1.3.8, <=1.3.99 || rolling")
    assert c.matches(parse_version("1.3.9"))
    assert not c.matches(parse_version("1.3.7"))
    assert not c.matches(parse_version("1.4.0"))
    assert c.matches(parse_version("2025.01.10-0020-rolling"))
    assert c.trains == {"1.3", "rolling"}
    assert parse_constraint("1.4.*").matches(parse_version("1.4.0-rc1"))
    assert parse_constraint("=1.4.2").matches(parse_version("1.4.2"))
    assert not parse_constraint("!=1.4.2").matches(parse_version("1.4.2"))


@pytest.mark.parametrize("bad", ["", ">=", "1.x.*", ">=1.4.3 ||", "~1.4.3"])
def test_bad_constraints(bad: str) -> None:
    with pytest.raises(VersionError):
        parse_constraint(bad)
