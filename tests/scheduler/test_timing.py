"""When schedules fall due: intervals, cron in a time zone, and folding missed slots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scheduler.timing import Timing, format_every, parse_every

NOW = datetime(2026, 3, 28, 12, 0, 7, 250000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("every 30s", 30), ("every 15m", 900), ("2h", 7200), ("every 1d", 86400), ("EVERY 5M", 300)],
)
def test_intervals_are_read_in_the_forms_operators_type(text: str, seconds: int) -> None:
    assert parse_every(text) == seconds
    assert parse_every(f"every {format_every(seconds)}") == seconds


@pytest.mark.parametrize("text", ["every 0m", "15 minutes", "every 1w", "", "every -5m"])
def test_a_bad_interval_names_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match="every 30s, every 15m, every 2h, every 1d"):
        parse_every(text)


def test_an_interval_starts_one_interval_on_and_folds_missed_slots_into_the_latest() -> None:
    timing = Timing.parse(every="every 15m")
    first = timing.first(NOW)
    assert first == datetime(2026, 3, 28, 12, 15, 7, tzinfo=UTC)
    on_time = timing.due(first, first + timedelta(seconds=2))
    assert (on_time.slot, on_time.missed, on_time.following) == (
        first,
        0,
        first + timedelta(minutes=15),
    )
    late = timing.due(first, first + timedelta(hours=2, minutes=1))
    assert late.slot == first + timedelta(hours=2) and late.missed == 8
    assert late.following == first + timedelta(hours=2, minutes=15)


def test_cron_follows_its_time_zone_across_daylight_saving_time() -> None:
    nine_in_paris = Timing.parse(cron="0 9 * * *", timezone="Europe/Paris")
    assert nine_in_paris.first(NOW) == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)  # CEST, UTC+2
    assert nine_in_paris.first(NOW - timedelta(days=1)) == datetime(2026, 3, 28, 8, tzinfo=UTC)


def test_a_cron_schedule_late_by_three_days_runs_its_latest_slot_once() -> None:
    daily = Timing.parse(cron="30 6 * * *")
    due = daily.due(datetime(2026, 3, 25, 6, 30, tzinfo=UTC), NOW)
    assert due.slot == datetime(2026, 3, 28, 6, 30, tzinfo=UTC)
    assert due.missed == 3
    assert due.following == datetime(2026, 3, 29, 6, 30, tzinfo=UTC)
