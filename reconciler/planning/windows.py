"""Maintenance windows: pure evaluation of a policy's allow and deny windows at a moment.

A :class:`~reconciler.model.kinds.Window` opens at every time its 5-field cron
``schedule`` matches, read as wall-clock time in its ``timeZone``, and stays open for
``duration`` of elapsed time. Rules:

- Activation is allowed at ``t`` when some allow window is open at ``t`` and no deny window
  is: **deny wins over allow**.
- **No allow window means never allowed** (the safe default).
- DST: a start time that falls into a spring-forward gap is shifted forward by the gap
  (02:30 on the night Europe/Berlin skips 02:00-03:00 opens at 03:30 summer time, the
  zoneinfo ``fold=0`` reading); a start in a repeated autumn hour opens at its first
  occurrence. Durations are elapsed time, so a 4h window across a DST change lasts
  four real hours.
- Every window is half-open ``[start, start + duration)``.

Nothing here reads a clock; ``now`` is always an argument and must be timezone-aware.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter

from reconciler.model.kinds import Window

__all__ = [
    "CLOSE_HORIZON",
    "HORIZON",
    "WindowStatus",
    "allowed_until",
    "is_allowed",
    "next_allowed",
    "window_status",
]

# How far ahead the next opening is searched. A year covers every yearly schedule.
HORIZON = timedelta(days=366)
# How far ahead the end of an open window is searched. Dense schedules ("* * * * *" for an
# hour) overlap without end, and walking a year of them minute by minute takes seconds; a
# window still open a week from now is reported as open past this horizon.
CLOSE_HORIZON = timedelta(days=7)
# Cron is evaluated in naive wall time; this margin covers any UTC offset change (DST).
_DST_MARGIN = timedelta(hours=3)


@dataclass(frozen=True, slots=True)
class WindowStatus:
    """The windows of one policy, seen at ``at``.

    ``allowed``: activation may start now. ``closes_at``: when allowed, the instant it stops
    being allowed (the current allow window ends or a deny window opens); None if that is
    beyond :data:`HORIZON`. ``next_open``: the next instant after ``at`` (after
    ``closes_at`` when allowed) at which activation becomes allowed; None if never within
    :data:`HORIZON`. ``reason`` says why, in one line.
    """

    at: datetime
    allowed: bool
    closes_at: datetime | None
    next_open: datetime | None
    reason: str


def _require_aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("window evaluation needs a timezone-aware datetime")
    return moment.astimezone(UTC)


def _to_utc(naive_local: datetime, zone: ZoneInfo) -> datetime:
    return naive_local.replace(tzinfo=zone, fold=0).astimezone(UTC)


def _naive_local(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None)


def _last_start(window: Window, at: datetime) -> datetime | None:
    """The latest start of ``window`` at or before ``at`` (UTC); None if it never starts
    (a schedule such as 31 February)."""
    zone = ZoneInfo(window.timeZone)
    # Start past ``at`` by the DST margin and walk back: converting each wall-clock start
    # to UTC, the first one not after ``at`` is the answer. Each step goes back in time,
    # and a start is at most one DST margin after its wall time, so the walk is short.
    it = croniter(window.schedule, _naive_local(at, zone) + _DST_MARGIN)
    try:
        while (start := _to_utc(it.get_prev(datetime), zone)) > at:
            pass
    except CroniterBadDateError:
        return None
    return start


def _starts_after(window: Window, after: datetime, until: datetime) -> Iterator[datetime]:
    """Every start of ``window`` in ``(after, until]``, in order (UTC)."""
    zone = ZoneInfo(window.timeZone)
    it = croniter(window.schedule, _naive_local(after, zone) - _DST_MARGIN)
    last: datetime | None = None
    while True:
        try:
            start = _to_utc(it.get_next(datetime), zone)
        except CroniterBadDateError:
            return
        if start > until:
            return
        # Two wall times can map to one instant across a gap; yield it once.
        if start > after and start != last:
            last = start
            yield start


def _open(window: Window, at: datetime) -> bool:
    start = _last_start(window, at)
    return start is not None and at < start + window.duration


def _allowed(windows: Sequence[Window], at: datetime) -> bool:
    allow = [w for w in windows if w.type == "allow"]
    if not any(_open(w, at) for w in allow):
        return False
    return not any(_open(w, at) for w in windows if w.type == "deny")


def is_allowed(windows: Sequence[Window], at: datetime) -> bool:
    """Whether activation may start at ``at``: an allow window is open and no deny window."""
    return _allowed(windows, _require_aware(at))


_Interval = tuple[datetime, datetime]


def _intervals(window: Window, lo: datetime, hi: datetime) -> list[_Interval]:
    """The open spans of ``window`` that are open after ``lo`` and start by ``hi``."""
    spans: list[_Interval] = []
    last = _last_start(window, lo)
    if last is not None and last + window.duration > lo:
        spans.append((last, last + window.duration))
    spans += [(s, s + window.duration) for s in _starts_after(window, lo, hi)]
    return spans


def _merge(spans: list[_Interval]) -> list[_Interval]:
    """Sorted, disjoint and non-touching spans covering the same instants."""
    merged: list[_Interval] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _subtract(allow: list[_Interval], deny: list[_Interval]) -> list[_Interval]:
    """The parts of ``allow`` outside every ``deny`` span (both merged)."""
    out: list[_Interval] = []
    for a, b in allow:
        for d0, d1 in deny:
            if d1 <= a or d0 >= b:
                continue
            if d0 > a:
                out.append((a, d0))
            a = max(a, d1)
            if a >= b:
                break
        if a < b:
            out.append((a, b))
    return out


def _allowed_spans(windows: Sequence[Window], lo: datetime, hi: datetime) -> list[_Interval]:
    """Where activation is allowed, as seen from the windows starting by ``hi``. Every
    transition at or before ``hi`` is exact; later ones may still move."""
    allow = [x for w in windows if w.type == "allow" for x in _intervals(w, lo, hi)]
    deny = [x for w in windows if w.type == "deny" for x in _intervals(w, lo, hi)]
    return _subtract(_merge(allow), _merge(deny))


def _first_change(windows: Sequence[Window], after: datetime, to_allowed: bool) -> datetime | None:
    """The first instant after ``after`` at which the allowed state becomes ``to_allowed``.

    The horizon (:data:`HORIZON` for an opening, :data:`CLOSE_HORIZON` for a closing) is
    searched in slices that double from one day, so a change in the next hours costs
    little and dense schedules stay bounded."""
    horizon = HORIZON if to_allowed else CLOSE_HORIZON
    lo, step, end = after, timedelta(days=1), after + horizon
    while lo < end:
        hi = min(lo + step, end)
        for a, b in _allowed_spans(windows, lo, hi):
            edge = a if to_allowed else b
            if after < edge <= hi:
                return edge
        lo, step = hi, step * 2
    return None


def allowed_until(windows: Sequence[Window], at: datetime) -> datetime | None:
    """When activation, allowed at ``at``, stops being allowed; None if not allowed now or
    still allowed at the end of :data:`CLOSE_HORIZON`."""
    at = _require_aware(at)
    if not _allowed(windows, at):
        return None
    return _first_change(windows, at, to_allowed=False)


def next_allowed(windows: Sequence[Window], after: datetime) -> datetime | None:
    """The first instant after ``after`` at which activation becomes allowed (a transition
    from not allowed), or None if none within the horizon."""
    after = _require_aware(after)
    if not any(w.type == "allow" for w in windows):
        return None
    return _first_change(windows, after, to_allowed=True)


def window_status(windows: Sequence[Window], now: datetime) -> WindowStatus:
    """Evaluate a policy's windows at ``now``: allowed or not, when the current allow
    window closes, and when the next one opens."""
    now = _require_aware(now)
    if not any(w.type == "allow" for w in windows):
        return WindowStatus(now, False, None, None, "no allow window is defined")
    if _allowed(windows, now):
        closes = _first_change(windows, now, to_allowed=False)
        reopen = None if closes is None else _first_change(windows, closes, to_allowed=True)
        return WindowStatus(now, True, closes, reopen, "inside an allow window")
    denied = any(_open(w, now) for w in windows if w.type == "deny") and any(
        _open(w, now) for w in windows if w.type == "allow"
    )
    reason = "a deny window is open" if denied else "outside every allow window"
    return WindowStatus(now, False, None, _first_change(windows, now, True), reason)
