"""Real VyOS builds: trains of older branches' rolling builds, VyOS Stream, API features by
build date, and the right-aligned image table (issue 10, point 12 b, c, d, f)."""

from __future__ import annotations

import pytest

from reconciler.devices.parse import parse_image_list
from reconciler.model.facts import ApiFeatures
from reconciler.model.features import api_features
from reconciler.model.versions import VersionError, newness, parse_constraint, parse_version


@pytest.mark.parametrize(
    ("text", "train", "family"),
    [
        ("1.3-rolling-202201010011", "1.3-rolling", "1.3"),
        ("1.4-rolling-202305120317", "1.4-rolling", "1.4"),
        ("1.5-rolling-202410230007", "rolling", "1.5"),
        ("1.5-stream-2025-Q1", "1.5-stream", "1.5"),
    ],
)
def test_branch_of_rolling_and_stream_builds(text: str, train: str, family: str) -> None:
    version = parse_version(text)
    assert (version.train, version.family, version.is_lts) == (train, family, False)


def test_older_branches_rolling_builds_order_among_themselves_only() -> None:
    older, newer = (
        parse_version("1.4-rolling-202301010000"),
        parse_version("1.4-rolling-202305120317"),
    )
    assert older < newer
    for other in ("1.4.0", "1.5-rolling-202410230007", "2025.01.10-0020-rolling"):
        assert not newer.comparable(parse_version(other))


def test_stream_versions_order_by_quarter() -> None:
    texts = ["1.5-stream-2025-Q2", "1.5-stream-2024-Q4", "1.5-stream-2025-Q1"]
    ordered = sorted(parse_version(t) for t in texts)
    assert [v.text for v in ordered] == [
        "1.5-stream-2024-Q4",
        "1.5-stream-2025-Q1",
        "1.5-stream-2025-Q2",
    ]
    with pytest.raises(VersionError, match="cannot order"):
        _ = parse_version("1.5-stream-2025-Q1") < parse_version("2025.01.10-0020-rolling")


@pytest.mark.parametrize(
    "bad", ["1.5-stream-2025-Q5", "1.5-stream-2025", "1.4-rolling-202313010000", "stream"]
)
def test_bad_new_forms(bad: str) -> None:
    with pytest.raises(VersionError):
        parse_version(bad)


def test_train_wildcards_for_new_trains() -> None:
    c = parse_constraint("1.4-rolling || 1.5-stream")
    assert c.matches(parse_version("1.4-rolling-202305120317"))
    assert c.matches(parse_version("1.5-stream-2025-Q1"))
    assert not c.matches(parse_version("1.4.0"))
    assert not c.matches(parse_version("1.5-rolling-202410230007"))
    assert parse_constraint("1.5-rolling").matches(parse_version("2025.01.10-0020-rolling"))


def test_newness_ranks_branches_before_current_trains() -> None:
    texts = [
        "2025.01.10-0020-rolling",
        "1.4-rolling-202305120317",
        "1.5-stream-2025-Q1",
        "1.4.0",
        "1.3.8",
        "1.3-rolling-202201010011",
    ]
    ranked = sorted(texts, key=lambda t: newness(parse_version(t)))
    assert ranked == [
        "1.3.8",
        "1.3-rolling-202201010011",
        "1.4.0",
        "1.4-rolling-202305120317",
        "1.5-stream-2025-Q1",
        "2025.01.10-0020-rolling",
    ]


NOTHING_NEW = ApiFeatures(reboot=True)


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("1.3.8", ApiFeatures()),
        ("1.3-rolling-202201010011", ApiFeatures()),
        ("1.4.0", NOTHING_NEW),
        ("1.4-rolling-202305120317", NOTHING_NEW),
        # Current builds before 2024-05-27 lack set_default and show.
        ("1.5-rolling-202405260000", NOTHING_NEW),
        ("1.5-rolling-202405270000", ApiFeatures(reboot=True, set_default=True, image_show=True)),
        # /info from March 2025.
        ("2025.02.28-0020-rolling", ApiFeatures(reboot=True, set_default=True, image_show=True)),
        (
            "2025.03.01-0020-rolling",
            ApiFeatures(reboot=True, set_default=True, image_show=True, info=True),
        ),
        ("1.5-stream-2025-Q1", ApiFeatures(reboot=True, set_default=True, image_show=True)),
        ("1.5.0", ApiFeatures(reboot=True, set_default=True, image_show=True, info=True)),
        ("custom", ApiFeatures()),
        (None, ApiFeatures()),
    ],
)
def test_features_by_branch_and_build_date(version: str | None, expected: ApiFeatures) -> None:
    assert api_features(version) == expected


# What tabulate prints when every image name is digits only: a right-aligned column whose
# header is padded to "  Name".
DIGITS_TABLE = """  Name  Default boot    Running
------  --------------  ---------
     2  Yes             Yes
     1
"""


def test_right_aligned_image_table() -> None:
    images = parse_image_list(DIGITS_TABLE)
    assert [(i.name, i.default, i.running) for i in images] == [
        ("2", True, True),
        ("1", False, False),
    ]
