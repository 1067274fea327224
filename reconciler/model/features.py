"""Which API calls a VyOS build offers, from its version string (VYOS-API.md).

Features came with build dates on the current branch, not with families:

- ``/image`` ops ``set_default`` and ``show``: current builds from 2024-05-27 on; the 1.3
  and 1.4 branches (their rolling builds included) never had them;
- ``GET /info``: current builds from March 2025 on (older ones answer nginx's 404);
- ``/reboot``: every branch from 1.4 on; 1.3 has none.

A numbered release of 1.5 or later (no build date in its name) came after both dates. An
unknown version offers nothing, so callers fall back to the calls every release has.
"""

from __future__ import annotations

import functools
from datetime import date

from reconciler.model.facts import ApiFeatures
from reconciler.model.versions import VersionError, parse_version

__all__ = ["IMAGE_OPS_SINCE", "INFO_SINCE", "api_features"]

IMAGE_OPS_SINCE = date(2024, 5, 27)
"""First current build with ``/image`` ``set_default`` and ``show``."""
INFO_SINCE = date(2025, 3, 1)
"""First current build with ``GET /info``."""


# Fleets run few versions, and planning asks once per device.
@functools.lru_cache(maxsize=1024)
def api_features(version: str | None) -> ApiFeatures:
    """The API features of a device running ``version``."""
    try:
        parsed = parse_version(version or "")
    except VersionError:
        return ApiFeatures()
    branch = tuple(int(n) for n in parsed.family.split("."))
    reboot = branch >= (1, 4)
    if branch < (1, 5):
        return ApiFeatures(reboot=reboot)
    built = parsed.built
    image_ops = built is None or built >= IMAGE_OPS_SINCE
    return ApiFeatures(
        info=built is None or built >= INFO_SINCE,
        set_default=image_ops,
        image_show=image_ops,
        reboot=reboot,
    )
