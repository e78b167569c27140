"""Cron matching in a schedule's time zone: seconds field and DST rules."""

from __future__ import annotations

import datetime as dt

import pytest

from agent_api import cron

UTC = dt.UTC


def at(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def test_leading_sixth_field_is_seconds():
    assert cron.fire_times("*/20 * * * * *", "UTC", at(2030, 1, 1), at(2030, 1, 1, 0, 1)) == [
        at(2030, 1, 1, 0, 0, 20), at(2030, 1, 1, 0, 0, 40), at(2030, 1, 1, 0, 1)]


def test_skipped_local_time_runs_once_at_the_spring_forward_transition():
    # Berlin 2030-03-31: 02:00 CET jumps to 03:00 CEST (01:00 UTC); 02:30 never happens.
    fires = cron.fire_times("30 2 * * *", "Europe/Berlin", at(2030, 3, 30, 12), at(2030, 4, 1, 12))
    assert fires == [at(2030, 3, 31, 1, 0), at(2030, 4, 1, 0, 30)]


def test_several_skipped_matches_collapse_into_one_run():
    fires = cron.fire_times("*/15 2 * * *", "Europe/Berlin", at(2030, 3, 30, 12),
                            at(2030, 3, 31, 12))
    assert fires == [at(2030, 3, 31, 1, 0)]


def test_repeated_local_time_runs_once_at_its_first_occurrence():
    # Berlin 2030-10-27: 03:00 CEST falls back to 02:00 CET (01:00 UTC); 02:30 happens twice.
    fires = cron.fire_times("30 2 * * *", "Europe/Berlin", at(2030, 10, 26, 12),
                            at(2030, 10, 28, 12))
    assert fires == [at(2030, 10, 27, 0, 30), at(2030, 10, 28, 1, 30)]


def test_hourly_schedule_across_fall_back_does_not_repeat_the_hour():
    fires = cron.fire_times("0 * * * *", "Europe/Berlin", at(2030, 10, 26, 23, 30),
                            at(2030, 10, 27, 3, 30))
    local = [f.astimezone(cron.zone("Europe/Berlin")).strftime("%H:%M %Z") for f in fires]
    assert local == ["02:00 CEST", "03:00 CET", "04:00 CET"]  # 02:00 CET (repeat) skipped


def test_latest_fire_times_returns_the_most_recent_ones_ascending():
    fires = cron.latest_fire_times("0 * * * *", "UTC", at(2030, 1, 1), at(2030, 1, 1, 10, 30), 3)
    assert fires == [at(2030, 1, 1, 8), at(2030, 1, 1, 9), at(2030, 1, 1, 10)]


@pytest.mark.parametrize(("expression", "zone", "message"), [
    ("* * * *", "UTC", "must have 5 fields"),
    ("61 * * * *", "UTC", "not a valid cron expression"),
    ("* * * * *", "Mars/Olympus", "unknown time zone"),
])
def test_invalid_expressions_and_zones_are_rejected_with_a_readable_message(
        expression, zone, message):
    with pytest.raises(cron.CronError, match=message):
        cron.validate(expression, zone)


def test_a_cron_no_date_matches_is_refused_as_never_firing():
    with pytest.raises(cron.CronError, match=r"never fires \(no date matches it\)"):
        cron.validate("0 0 31 2 *", "UTC")


def test_a_cron_no_date_matches_has_no_fire_times():
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert cron.fire_times("0 0 30 2 *", "UTC", start, start + dt.timedelta(days=800)) == []
