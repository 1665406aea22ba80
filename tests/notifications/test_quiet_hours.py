"""When a user's quiet hours end, from fixed instants: across midnight and the year's end,
in the user's time zone, on the nights clocks change, and outside quiet hours."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from notifications.preferences import quiet_until

PARIS = ZoneInfo("Europe/Paris")
UTC_ZONE = ZoneInfo("UTC")
NIGHT = (time(22), time(7))
LUNCH = (time(12), time(14))


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "quiet", "zone", "until"),
    [
        (at(2026, 12, 5, 23, 30), NIGHT, UTC_ZONE, at(2026, 12, 6, 7)),  # ends tomorrow
        (at(2026, 12, 6, 0, 30), NIGHT, UTC_ZONE, at(2026, 12, 6, 7)),  # past midnight: today
        (at(2026, 12, 31, 22, 41), NIGHT, UTC_ZONE, at(2027, 1, 1, 7)),  # into the next year
        (at(2026, 12, 5, 22), NIGHT, UTC_ZONE, at(2026, 12, 6, 7)),  # the start is quiet
        (at(2026, 12, 6, 7), NIGHT, UTC_ZONE, None),  # the end is not
        (at(2026, 12, 5, 12), NIGHT, UTC_ZONE, None),
        (at(2026, 12, 5, 12, 30), LUNCH, UTC_ZONE, at(2026, 12, 5, 14)),
        (at(2026, 12, 5, 23, 30), LUNCH, UTC_ZONE, None),
        (at(2026, 12, 5, 9), (time(9), time(9)), UTC_ZONE, None),  # start == end: never quiet
        # the user's clock, not UTC's: 21:30 UTC is 22:30 in Paris (winter, UTC+1)
        (at(2026, 12, 5, 21, 30), NIGHT, PARIS, at(2026, 12, 6, 6)),
        (at(2026, 12, 5, 23, 30), NIGHT, PARIS, at(2026, 12, 6, 6)),
        (at(2026, 12, 5, 6, 30), NIGHT, PARIS, None),  # 07:30 in Paris
        # clocks go forward on 29 March 2026: 07:00 in Paris is then 05:00 UTC
        (at(2026, 3, 28, 22, 30), NIGHT, PARIS, at(2026, 3, 29, 5)),
        # and back on 25 October 2026: 07:00 in Paris is then 06:00 UTC
        (at(2026, 10, 24, 21, 30), NIGHT, PARIS, at(2026, 10, 25, 6)),
    ],
)
def test_quiet_hours_end_at_the_users_local_end_time(
    now: datetime, quiet: tuple[time, time], zone: ZoneInfo, until: datetime | None
) -> None:
    assert quiet_until(now, quiet, zone) == until
