"""Upgrade paths: which approved images a device can go through, and the shortest way to
its target.

Rules (VYOS-API.md, DESIGN.md):

- Versions order only within a release train (``1.3``, ``1.4``, ``rolling``,
  ``integration``); see :mod:`reconciler.model.versions`.
- An Image is a usable hop when it is not revoked and supports the device's Platform.
- An Image with no ``upgradeFrom`` accepts any *older* version of its own train.
- An Image with ``upgradeFrom`` accepts exactly the versions its constraint matches, and
  on its own train only older ones. A constraint clause matches only versions of its own
  train, so **naming another train's versions (``1.4.*``, ``>=1.3.8, <1.4``) is the one
  explicit allowance to cross trains**; nothing else ever crosses.
- The path is a shortest one (fewest hops). Among equally short paths the newest
  intermediate is preferred at every step (newest by :func:`newness`, then Image name).

For "the latest image of a channel" across trains, :func:`newness` ranks trains by
generation (:attr:`reconciler.model.versions.Version.generation`): numbered branches by
number, then ``rolling``, then ``integration``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache

from reconciler.model.kinds import Image, Platform
from reconciler.model.versions import (
    Constraint,
    Version,
    newness,
    parse_constraint,
    parse_version,
)

__all__ = [
    "accepts",
    "constraint_of",
    "find_path",
    "reachable",
    "usable_images",
    "version_of",
]

# Parsing is pure and fleets share few versions: memoize (bounded) for 10,000-device plans.
version_of: Callable[[str], Version] = lru_cache(maxsize=4096)(parse_version)
constraint_of: Callable[[str], Constraint] = lru_cache(maxsize=1024)(parse_constraint)


def accepts(image: Image, current: Version) -> bool:
    """Whether ``image`` may be installed straight over ``current`` (its ``upgradeFrom``)."""
    target = version_of(image.spec.version)
    if image.spec.upgradeFrom is None:
        return current.comparable(target) and current < target
    if not constraint_of(image.spec.upgradeFrom).matches(current):
        return False
    return not current.comparable(target) or current < target


def usable_images(images: Iterable[Image], platform: Platform) -> list[Image]:
    """Images that can be a hop on this platform: not revoked, platform supported; one per
    version (the first by name), sorted newest first."""
    by_version: dict[str, Image] = {}
    for image in sorted(images, key=lambda i: i.name):
        if image.spec.revoked or not image.spec.supports(platform):
            continue
        by_version.setdefault(image.spec.version, image)
    # by_version keeps name order; the stable sort keeps it among equally new versions.
    return sorted(
        by_version.values(), key=lambda i: newness(version_of(i.spec.version)), reverse=True
    )


def reachable(current: Version, hops: Sequence[Image]) -> dict[str, int]:
    """Every hop image reachable from ``current``, by Image name, with its distance in
    hops. ``hops`` come from :func:`usable_images`."""
    distance: dict[str, int] = {}
    queue: deque[tuple[Version, int]] = deque([(current, 0)])
    while queue:
        version, d = queue.popleft()
        for image in hops:
            if image.name not in distance and accepts(image, version):
                distance[image.name] = d + 1
                queue.append((version_of(image.spec.version), d + 1))
    return distance


def find_path(current: Version, target: Image, hops: Sequence[Image]) -> tuple[Image, ...] | None:
    """The shortest path of images from ``current`` to ``target`` (target last), preferring
    the newest intermediate at each step; ``()`` when already there; None when no path
    exists. ``hops`` come from :func:`usable_images` and must contain ``target``."""
    if version_of(target.spec.version).text == current.text:
        return ()
    # Distances to the target, walking edges backwards from it.
    to_target: dict[str, int] = {target.name: 0}
    queue: deque[Image] = deque([target])
    while queue:
        image = queue.popleft()
        for before in hops:
            if before.name not in to_target and accepts(image, version_of(before.spec.version)):
                to_target[before.name] = to_target[image.name] + 1
                queue.append(before)
    # Walk forward: from each version take the newest next hop that is one step closer.
    path: list[Image] = []
    version = current
    best = min(
        (to_target[i.name] for i in hops if i.name in to_target and accepts(i, version)),
        default=None,
    )
    if best is None:
        return None
    remaining = best + 1  # hops still to take
    while remaining:
        step = next(
            i for i in hops if to_target.get(i.name) == remaining - 1 and accepts(i, version)
        )
        path.append(step)
        version = version_of(step.spec.version)
        remaining -= 1
    return tuple(path)
