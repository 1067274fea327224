"""Recommendation: the lowest-risk compliant target a device can reach, and why.

For a device that is non-compliant or exposed to an advisory, every approved image its
platform can reach by an approved path is a candidate. A candidate must be compliant
(no CompliancePolicy selecting the device is violated, whatever its enforcement), its
path must pass the gate (no forbidden or unapproved step), and for a compliant but exposed
device it must be less exposed than the running version. The lowest risk wins: the worst
advisory's severity, then the number of advisories, then the fewest hops, then the newest.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.model.kinds import SEVERITY_RANK, Device, Image
from reconciler.model.state import DesiredState
from reconciler.model.versions import Version, newness
from reconciler.planning import compliance
from reconciler.planning.paths import find_path, reachable, version_of
from reconciler.planning.plan import Hop, Recommendation

__all__ = ["recommend"]


def _exposure(verdict: compliance.Verdict) -> str:
    if not verdict.advisories:
        return "no known advisory"
    worst = max(verdict.advisories, key=lambda a: SEVERITY_RANK[a.spec.severity])
    return f"{len(verdict.advisories)} advisory(ies), worst {worst.name} ({worst.spec.severity})"


def _clear_path(
    device: Device, path: Sequence[Image], desired: DesiredState, exposure: compliance.Exposure
) -> bool:
    return not any(
        compliance.evaluate(
            device, version_of(i.spec.version), desired, hop=True, exposure=exposure
        ).blocking
        for i in path[:-1]
    )


def recommend(
    device: Device,
    current: Version,
    verdict: compliance.Verdict,
    hops: Sequence[Image],
    desired: DesiredState,
    exposure: compliance.Exposure | None = None,
) -> Recommendation | None:
    """The recommended target for ``device`` running ``current`` (judged ``verdict``), or
    None when no candidate qualifies. ``hops`` come from
    :func:`~reconciler.planning.paths.usable_images`; ``exposure`` as for
    :func:`~reconciler.planning.compliance.evaluate`."""
    exposure = exposure or compliance.Exposure(desired)
    distance = reachable(current, hops)
    best: tuple[tuple[object, ...], Image, compliance.Verdict] | None = None
    for image in hops:
        if image.name not in distance:
            continue
        version = version_of(image.spec.version)
        after = compliance.evaluate(device, version, desired, exposure=exposure)
        if after.violations or (not verdict.violations and after.risk >= verdict.risk):
            continue
        key = (after.risk, distance[image.name], tuple(-k for k in newness(version)))
        if best is None or key < best[0]:
            path = find_path(current, image, hops)
            if path and _clear_path(device, path, desired, exposure):
                best = (key, image, after)
    if best is None:
        return None
    _, image, after = best
    path = find_path(current, image, hops) or ()
    now = "; ".join(verdict.violations) if verdict.violations else _exposure(verdict)
    why = (
        f"the least exposed compliant version reachable: {_exposure(after)}, "
        f"{len(path)} hop(s) ({' → '.join(i.spec.version for i in path)}); "
        f"running {current}: {now}"
    )
    return Recommendation(
        version=image.spec.version,
        image=image.name,
        path=tuple(Hop(image=i.name, version=i.spec.version, channel=i.spec.channel) for i in path),
        why=why,
    )
