"""Anti-rollback, pure: is a path's final target below what the fleet already completed?

The marks are plain data, ``{channel: {train: version}}``, the newest version a device
completed an upgrade to in each channel and train (kept with the rollout journal). A path
is judged as a whole by its final target: intermediate hops below the mark are fine, since
the device ends above it. A target below the mark of its channel is a rollback, blocked
unless the RolloutPolicy says ``strategy.allowDowngrade``.

Trains are compared too, or a new train name would escape the mark. Within a train the
version order of :mod:`reconciler.model.versions` decides. Across trains: numbered LTS
trains order by number (1.3 < 1.4 < 1.5), every LTS release is older than every
rolling or integration build, and rolling and integration builds form one timeline
ordered by build time (``1.5-rolling-*`` before the date-named ones). So moving a channel
from rolling back to an LTS train needs ``allowDowngrade``, like any other step back.
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.model.kinds import Image
from reconciler.model.versions import Version, VersionError
from reconciler.planning.paths import version_of

__all__ = ["Marks", "rollback_rank", "rollback_reason"]

Marks = Mapping[str, Mapping[str, str]]
"""``{channel: {train: version}}`` of completed upgrades."""


def rollback_rank(version: Version) -> tuple[int, ...]:
    """A sort key that orders any two VyOS versions for anti-rollback (module docstring)."""
    return (0 if version.is_lts else 1, *version.key)


def rollback_reason(target: Image, marks: Marks) -> str | None:
    """Why installing ``target`` as a final target is a rollback, or None when it is not."""
    channel = target.spec.channel
    wanted = version_of(target.spec.version)
    newest: Version | None = None
    for text in marks.get(channel, {}).values():
        try:
            mark = version_of(text)
        except VersionError:
            continue
        if newest is None or rollback_rank(mark) > rollback_rank(newest):
            newest = mark
    if newest is None or rollback_rank(wanted) >= rollback_rank(newest):
        return None
    return (
        f"rollback: {wanted} is older than {newest}, which a device already completed in "
        f"channel {channel}; set strategy.allowDowngrade to go back on purpose"
    )
