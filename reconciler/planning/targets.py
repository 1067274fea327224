"""Resolving a rollout policy's target for one device: which Image it should end on.

- ``target.version``: the non-revoked Image of that version supporting the device's
  platform (the first by name if several). A missing, revoked or unsupported target is
  reported, never silently replaced.
- ``target.channel``: the newest (see :func:`reconciler.planning.paths.newness`)
  non-revoked Image of the channel that supports the platform and that the device can
  reach through a path (or already runs). When none is reachable but the channel has
  older images on the device's own train, the newest of those is the target, and the
  planner then treats it as a downgrade.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reconciler.model.kinds import Image, Platform, RolloutPolicy
from reconciler.model.versions import Version, newness
from reconciler.planning.paths import reachable, version_of

__all__ = ["TargetChoice", "platform_text", "resolve_target"]


@dataclass(frozen=True, slots=True)
class TargetChoice:
    """Either an ``image`` to end on, or a ``problem`` with its ``kind``: ``blocked`` (the
    policy names something unusable) or ``incompatible`` (nothing fits this device)."""

    version: str | None
    image: Image | None = None
    problem: str | None = None
    kind: str | None = None


def platform_text(platform: Platform) -> str:
    """``amd64/generic`` style text for a platform."""
    return f"{platform.arch}/{platform.flavor}"


def _same(image: Image, version: Version) -> bool:
    other = version_of(image.spec.version)
    return other.train == version.train and other.key == version.key


def resolve_target(
    policy: RolloutPolicy,
    images: Sequence[Image],
    hops: Sequence[Image],
    current: Version,
    platform: Platform,
) -> TargetChoice:
    """The Image ``current`` should end on under ``policy``. ``images`` are all Images
    sorted by name; ``hops`` the usable ones (:func:`~reconciler.planning.paths.usable_images`)."""
    target = policy.spec.target
    if target.version is not None:
        wanted = version_of(target.version)
        named = [i for i in images if _same(i, wanted)]
        if not named:
            return TargetChoice(target.version, problem="no Image declares it", kind="blocked")
        live = [i for i in named if not i.spec.revoked]
        if not live:
            why = next((i.spec.revokedReason for i in named if i.spec.revokedReason), None)
            text = f"target image {named[0].name} is revoked" + (f": {why}" if why else "")
            return TargetChoice(target.version, problem=text, kind="blocked")
        fitting = [i for i in live if i.spec.supports(platform)]
        if not fitting:
            return TargetChoice(
                target.version,
                problem=f"no Image of {target.version} supports {platform_text(platform)}",
                kind="incompatible",
            )
        return TargetChoice(target.version, image=fitting[0])

    channel = target.channel
    in_channel = [i for i in hops if i.spec.channel == channel]
    if not in_channel:
        return TargetChoice(
            None,
            problem=f"no non-revoked Image of channel {channel} supports {platform_text(platform)}",
            kind="incompatible",
        )
    reach = reachable(current, hops)
    candidates = [i for i in in_channel if i.name in reach or _same(i, current)]
    if not candidates:
        candidates = [i for i in in_channel if version_of(i.spec.version).comparable(current)]
    if not candidates:
        return TargetChoice(
            None,
            problem=f"no Image of channel {channel} can be reached from {current}",
            kind="incompatible",
        )
    best = max(candidates, key=lambda i: newness(version_of(i.spec.version)))
    return TargetChoice(best.spec.version, image=best)
