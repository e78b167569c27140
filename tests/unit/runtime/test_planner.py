"""When a lane needs planning (from its cron, in memory), and which fire times a pass lists.

The missed-fire policy itself runs in SQL (SweepLateFires) and is tested on real PostgreSQL
in tests/integration/runtime/test_scheduling.py.
"""

from __future__ import annotations

import datetime as dt

from agent_runtime import planner, spec


def _schedule(**extra) -> spec.Schedule:
    return spec.Schedule.model_validate(
        {"name": "s", "function": "f", "cron": "* * * * *", **extra})


def at(minute: int, second: int = 0, hour: int = 12) -> dt.datetime:
    return dt.datetime(2030, 1, 1, hour, minute, second, tzinfo=dt.UTC)


def _planner(schedule: spec.Schedule, planned_until: dt.datetime, **state) -> planner.Planner:
    p = planner.Planner("ns", "c", "r0")
    p.lanes[(schedule.name, planner.lane_of(schedule, "r0"))] = planner.LaneState(
        state.get("definition_hash", schedule.definition_hash()), planned_until,
        state.get("backoff_until"), state.get("disabled", False))
    p.known = True
    return p


def test_a_lane_needs_planning_one_horizon_before_its_next_fire():
    schedule = _schedule()
    p = _planner(schedule, at(0, 30))
    assert p.planning_due_at(schedule) == at(1) - p.horizon
    assert p.needing_plan([schedule], at(0, 49)) == []
    assert p.needing_plan([schedule], at(0, 50)) == [schedule]


def test_a_frequent_lane_is_planned_every_half_horizon_not_before_each_fire():
    every_second = _schedule(cron="* * * * * *")
    p = _planner(every_second, at(0, 10))  # planned up to :10 at :00
    assert p.planning_due_at(every_second) == at(0, 5)


def test_a_schedule_that_does_not_fall_due_never_needs_planning_before_its_fire():
    yearly = _schedule(cron="0 0 1 1 *")
    p = _planner(yearly, at(0, 30))
    assert p.planning_due_at(yearly) == dt.datetime(2031, 1, 1, tzinfo=dt.UTC) - p.horizon
    assert p.needing_plan([yearly], at(59, 59, hour=23)) == []


def test_an_unknown_or_edited_lane_needs_planning_at_once():
    schedule = _schedule()
    p = planner.Planner("ns", "c", "r0")
    assert p.needing_plan([schedule], at(0)) == [schedule]
    edited = _planner(schedule, at(0, 30), definition_hash="older")
    assert edited.needing_plan([schedule], at(0)) == [schedule]


def test_disabled_lanes_and_disabled_schedules_are_never_planned():
    schedule = _schedule()
    assert _planner(schedule, at(0), disabled=True).planning_due_at(schedule) is None
    off = _schedule(enabled=False)
    assert _planner(off, at(0)).planning_due_at(off) is None


def test_backoff_moves_the_next_planning_to_its_end():
    schedule = _schedule()
    p = _planner(schedule, at(0, 30), backoff_until=at(5, 30))
    assert p.planning_due_at(schedule) == at(6) - p.horizon


def test_cluster_mode_lanes_are_per_replica():
    schedule = _schedule(mode="cluster")
    assert planner.lane_of(schedule, "r0") == "r0"
    assert planner.lane_of(_schedule(), "r0") == ""


def test_next_planning_is_the_earliest_lane():
    every_minute, hourly = _schedule(), _schedule(name="h", cron="0 * * * *")
    p = _planner(every_minute, at(0, 30))
    p.lanes[("h", "")] = planner.LaneState(hourly.definition_hash(), at(0, 30), None, False)
    assert p.next_planning_at([every_minute, hourly]) == at(1) - p.horizon
    assert p.next_planning_at([hourly]) == at(0, hour=13) - p.horizon


def test_keep_late_follows_the_missed_fire_policy():
    assert planner.keep_late(_schedule()) == 0
    assert planner.keep_late(_schedule(missedFirePolicy="runOnce")) == 1
    assert planner.keep_late(_schedule(missedFirePolicy="backfill", backfillLimit=7)) == 7


def test_a_pass_lists_every_fire_up_to_the_horizon():
    schedule = _schedule()
    times = planner.Planner("ns", "c", "r0")._fire_times(schedule, at(0, 30), at(3, 5))
    assert (times.listed, times.earlier) == ([at(1), at(2), at(3)], 0)


def test_a_long_outage_lists_the_latest_fires_and_counts_the_rest():
    every_second = _schedule(cron="* * * * * *")
    start = at(0)
    times = planner.Planner("ns", "c", "r0")._fire_times(
        every_second, start, start + dt.timedelta(seconds=planner.MAX_FIRES_PER_LANE + 500))
    assert len(times.listed) == planner.MAX_FIRES_PER_LANE
    assert times.earlier == 500
    assert times.earlier_first == start + dt.timedelta(seconds=1)
    assert times.earlier_last == times.listed[0] - dt.timedelta(seconds=1)
