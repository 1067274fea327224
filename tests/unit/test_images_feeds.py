"""Parsing upstream feeds: which builds a releases JSON or a directory index offers."""

from __future__ import annotations

import json

import pytest

from reconciler.errors import ImageError
from reconciler.images.feeds import parse_index, parse_releases
from reconciler.images.intake import image_name
from reconciler.model.kinds import ImageSourceSpec

PATTERN = ImageSourceSpec.model_fields["namePattern"].default
BASE = "https://github.com/vyos/vyos-nightly-build/releases/download"


def _asset(name: str, size: int = 100) -> dict[str, object]:
    return {"name": name, "browser_download_url": f"{BASE}/x/{name}", "size": size}


def test_releases_offer_matching_isos_newest_first_with_their_signatures() -> None:
    old, new = "2025.01.10-0020-rolling", "2025.06.01-0020-rolling"
    releases = [
        {"tag_name": old, "assets": [_asset(f"vyos-{old}-generic-amd64.iso")]},
        {
            "tag_name": new,
            "assets": [
                _asset(f"vyos-{new}-generic-amd64.iso", 5000),
                _asset(f"vyos-{new}-generic-amd64.iso.minisig"),
                _asset(f"vyos-{new}-generic-arm64.iso"),  # another platform: no match
                _asset("vyos-not-a-version-generic-amd64.iso"),  # no VyOS version
                {"name": "broken"},
            ],
        },
        "not a release",
    ]
    builds = parse_releases(json.dumps(releases).encode(), PATTERN)
    assert [b.version for b in builds] == [new, old]
    assert builds[0].signature_url == f"{BASE}/x/vyos-{new}-generic-amd64.iso.minisig"
    assert builds[0].size == 5000
    assert builds[1].signature_url is None  # listed, then refused: never proposed unsigned


def test_an_index_offers_the_linked_isos() -> None:
    page = b"""<html><body><pre>
<a href="../">../</a>
<a href="vyos-1.4.5-generic-amd64.iso">vyos-1.4.5-generic-amd64.iso</a>
<a href="vyos-1.4.5-generic-amd64.iso.minisig">sig</a>
<a href="/other/vyos-1.4.6-generic-amd64.iso">elsewhere</a>
<a href="ftp://x/vyos-1.4.7-generic-amd64.iso">ftp</a>
<a href="javascript:alert(1)">x</a>
</pre></body></html>"""
    builds = parse_index(page, "https://mirror.example/isos/", PATTERN)
    assert [(b.version, b.url) for b in builds] == [
        ("1.4.6", "https://mirror.example/other/vyos-1.4.6-generic-amd64.iso"),
        ("1.4.5", "https://mirror.example/isos/vyos-1.4.5-generic-amd64.iso"),
    ]
    assert (
        builds[1].signature_url
        == "https://mirror.example/isos/vyos-1.4.5-generic-amd64.iso.minisig"
    )


@pytest.mark.parametrize("data", [b"{not json", b'{"releases": []}'])
def test_a_broken_releases_feed_is_an_error(data: bytes) -> None:
    with pytest.raises(ImageError):
        parse_releases(data, PATTERN)


def test_image_names_are_valid_names() -> None:
    assert image_name("2025.06.01-0020-rolling") == "vyos-2025.06.01-0020-rolling"
    assert image_name("1.5-stream-2025-Q1") == "vyos-1.5-stream-2025-q1"
