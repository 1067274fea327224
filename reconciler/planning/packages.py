"""Exposure of an image through its packages: OSV records of a Debian release matched
against the packages of the image's SBOM, in dpkg version order (``python-debian``:
epochs, ``~`` before anything, revisions).

A package is affected when its version is listed in ``versions`` or falls in a range: the
events, sorted in dpkg order, open an interval at each ``introduced`` (``0``: from the
first version) and close it at the next ``fixed`` (exclusive) or ``lastAffected``
(inclusive); a ``limit`` caps the range (OSV semantics).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from debian.debian_support import Version as DebVersion

from reconciler.model.kinds import Advisory, AffectedPackage, PackageRange

__all__ = ["package_advisories", "package_affected"]


def _dpkg(text: str) -> DebVersion | None:
    try:
        return DebVersion(text)
    except ValueError:
        return None


def _in_range(version: DebVersion, rng: PackageRange) -> bool:
    limits = [v for e in rng.events if e.limit and (v := _dpkg(e.limit)) is not None]
    if limits and not version < max(limits):
        return False
    # (after "0"?, bound, kind); an unparsable bound orders against nothing and is left out.
    points: list[tuple[bool, DebVersion, str]] = []
    for e in rng.events:
        if e.introduced == "0":
            points.append((False, DebVersion("0"), "introduced"))
            continue
        for kind in ("introduced", "fixed", "lastAffected"):
            text = getattr(e, kind)
            if text is not None and (bound := _dpkg(text)) is not None:
                points.append((True, bound, kind))
    affected = False
    for real, bound, kind in sorted(points, key=lambda p: (p[0], p[1])):
        if kind == "introduced":
            affected = affected or not real or version >= bound
        elif kind == "fixed":
            affected = affected and version < bound
        else:
            affected = affected and version <= bound
    return affected


def package_affected(entry: AffectedPackage, installed: str) -> bool:
    """Whether ``installed`` (a dpkg version) of the entry's package is affected."""
    version = _dpkg(installed)
    if version is None:
        return False
    if any((v := _dpkg(listed)) is not None and v == version for listed in entry.versions):
        return True
    return any(_in_range(version, r) for r in entry.ranges)


def package_advisories(
    advisories: Iterable[Advisory], ecosystem: str, packages: Mapping[str, str]
) -> list[tuple[Advisory, str]]:
    """Every advisory affecting an installed package of ``ecosystem`` (e.g. ``Debian:12``),
    with the package name."""
    found = []
    for advisory in advisories:
        for entry in advisory.spec.packages:
            installed = packages.get(entry.name)
            if entry.ecosystem == ecosystem and installed and package_affected(entry, installed):
                found.append((advisory, entry.name))
                break
    return found
