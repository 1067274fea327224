"""Maintenance windows: allow and deny, overrun, time zones and DST, safe defaults."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from reconciler.model.kinds import Window
from reconciler.planning.windows import (
    CLOSE_HORIZON,
    allowed_until,
    is_allowed,
    next_allowed,
    window_status,
)

NIGHTLY = Window(type="allow", schedule="0 2 * * *", duration="4h", timeZone="Europe/Berlin")
FREEZE = Window(type="deny", schedule="0 0 24 12 *", duration="48h", timeZone="Europe/Berlin")


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    """A UTC datetime."""
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_inside_allow_window_reports_close_and_next_open() -> None:
    # 03:30 Berlin in winter is 02:30 UTC; the window runs 02:00-06:00 Berlin.
    status = window_status([NIGHTLY], utc(2024, 1, 10, 2, 30))
    assert status.allowed
    assert status.closes_at == utc(2024, 1, 10, 5, 0)
    assert status.next_open == utc(2024, 1, 11, 1, 0)


def test_outside_allow_window_reports_next_open() -> None:
    status = window_status([NIGHTLY], utc(2024, 1, 10, 12, 0))
    assert not status.allowed
    assert status.closes_at is None
    assert status.next_open == utc(2024, 1, 11, 1, 0)
    assert status.reason == "outside every allow window"


def test_overrun_window_closes_at_its_end() -> None:
    # The last allowed instant is just before 06:00 Berlin; at 06:00 no new device starts.
    assert is_allowed([NIGHTLY], utc(2024, 1, 10, 4, 59, 59))
    assert not is_allowed([NIGHTLY], utc(2024, 1, 10, 5, 0))
    assert allowed_until([NIGHTLY], utc(2024, 1, 10, 4, 0)) == utc(2024, 1, 10, 5, 0)
    assert allowed_until([NIGHTLY], utc(2024, 1, 10, 6, 0)) is None


def test_deny_wins_over_allow() -> None:
    # 24 December, 03:00 Berlin: the nightly window is open but the freeze denies it.
    status = window_status([NIGHTLY, FREEZE], utc(2024, 12, 24, 2, 0))
    assert not status.allowed
    assert status.reason == "a deny window is open"
    # The freeze ends at midnight on the 26th (Berlin); the next night's window then opens.
    assert status.next_open == utc(2024, 12, 26, 1, 0)


def test_deny_opening_inside_allow_window_ends_it_early() -> None:
    deny = Window(type="deny", schedule="0 4 * * *", duration="30m", timeZone="Europe/Berlin")
    status = window_status([NIGHTLY, deny], utc(2024, 1, 10, 1, 30))
    assert status.allowed
    assert status.closes_at == utc(2024, 1, 10, 3, 0)
    # Allowed again when the deny window ends, still inside the nightly window.
    assert status.next_open == utc(2024, 1, 10, 3, 30)
    assert next_allowed([NIGHTLY, deny], utc(2024, 1, 10, 3, 0)) == utc(2024, 1, 10, 3, 30)


def test_no_allow_window_is_never_allowed() -> None:
    assert not is_allowed([], utc(2024, 1, 10, 2, 0))
    assert not is_allowed([FREEZE], utc(2024, 1, 10, 2, 0))
    status = window_status([FREEZE], utc(2024, 1, 10, 2, 0))
    assert (status.allowed, status.next_open, status.reason) == (
        False,
        None,
        "no allow window is defined",
    )
    assert next_allowed([], utc(2024, 1, 10)) is None


def test_time_zone_of_the_window_is_used() -> None:
    new_york = NIGHTLY.model_copy(update={"timeZone": "America/New_York"})
    at = utc(2024, 1, 10, 8, 0)  # 03:00 in New York, 09:00 in Berlin
    assert is_allowed([new_york], at)
    assert not is_allowed([NIGHTLY], at)


def test_spring_forward_gap_shifts_the_start() -> None:
    # 2024-03-31: Berlin skips 02:00-03:00. A 02:30 start opens at 03:30 CEST (01:30 UTC).
    w = Window(type="allow", schedule="30 2 * * *", duration="1h", timeZone="Europe/Berlin")
    assert window_status([w], utc(2024, 3, 31, 0, 0)).next_open == utc(2024, 3, 31, 1, 30)
    assert window_status([w], utc(2024, 4, 1, 0, 0)).next_open == utc(2024, 4, 1, 0, 30)


def test_autumn_repeated_hour_opens_at_first_occurrence_and_duration_is_elapsed() -> None:
    # 2024-10-27: Berlin repeats 02:00-03:00. 02:30 first occurs at 00:30 UTC (CEST).
    w = Window(type="allow", schedule="30 2 * * *", duration="2h", timeZone="Europe/Berlin")
    status = window_status([w], utc(2024, 10, 27, 0, 0))
    assert status.next_open == utc(2024, 10, 27, 0, 30)
    during = window_status([w], utc(2024, 10, 27, 1, 0))
    assert during.allowed
    assert during.closes_at == utc(2024, 10, 27, 2, 30)  # two real hours


def test_window_longer_than_its_period_stays_open() -> None:
    w = Window(type="allow", schedule="0 * * * *", duration="90m")
    status = window_status([w], utc(2024, 1, 10, 5, 10))
    assert status.allowed
    # Always open: the state never changes within the search horizon.
    assert status.closes_at is None


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        is_allowed([NIGHTLY], datetime(2024, 1, 10, 2, 0))


def test_same_inputs_same_answer_and_other_offsets_accepted() -> None:
    at = utc(2024, 1, 10, 2, 30)
    berlin = at.astimezone(ZoneInfo("Europe/Berlin"))
    assert window_status([NIGHTLY], at) == window_status([NIGHTLY], at)
    assert window_status([NIGHTLY], berlin).closes_at == window_status([NIGHTLY], at).closes_at


def test_dense_schedule_is_open_past_the_close_horizon() -> None:
    # One opening a minute, each lasting an hour: the windows overlap without end.
    now = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
    status = window_status([Window(schedule="* * * * *", duration="1h")], now)
    assert status.allowed
    assert status.closes_at is None
    assert status.next_open is None
    blocked = [
        Window(schedule="* * * * *", duration="1h"),
        Window(type="deny", schedule="0 6 * * *", duration="1h"),
    ]
    closes = window_status(blocked, now).closes_at
    assert closes == datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
    assert now + CLOSE_HORIZON > closes
