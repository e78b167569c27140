"""Which fire times are due, after the missed-fire policy and backoff."""

from __future__ import annotations

import datetime as dt

from agent_runtime import planner, spec


def _schedule(**extra) -> spec.ScheduleSpec:
    return spec.ScheduleSpec.model_validate(
        {"name": "s", "function": "f", "cron": "* * * * *", **extra})


def at(minute: int, second: int = 0) -> dt.datetime:
    return dt.datetime(2030, 1, 1, 12, minute, second, tzinfo=dt.UTC)


def test_on_time_fires_are_due():
    due = planner.due_fire_times(_schedule(missedFireGraceSeconds=300), at(0, 30), at(2, 5))
    assert due == [at(1), at(2)]


def test_skip_drops_fires_older_than_the_grace():
    assert planner.due_fire_times(_schedule(), at(0, 30), at(10, 5)) == [at(10)]


def test_run_once_keeps_the_latest_missed_fire():
    due = planner.due_fire_times(_schedule(missedFirePolicy="runOnce"), at(0, 30), at(10, 5))
    assert due == [at(9), at(10)]


def test_backfill_keeps_at_most_the_limit():
    due = planner.due_fire_times(_schedule(missedFirePolicy="backfill", backfillLimit=3),
                                 at(0, 30), at(10, 5))
    assert due == [at(7), at(8), at(9), at(10)]


def test_backoff_drops_fires_before_its_end():
    assert planner.due_fire_times(_schedule(), at(0, 30), at(3, 5), backoff_until=at(2, 30)) == [
        at(3)]


def test_lane_of_single_mode_is_shared_and_of_cluster_mode_is_the_replica():
    assert planner.lane_of(_schedule(), "duck") == ""
    assert planner.lane_of(_schedule(mode="cluster"), "duck") == "duck"
