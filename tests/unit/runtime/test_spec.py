"""Parsing the stored spec: tolerant of unknown fields, one bad schedule spoils nothing."""

from __future__ import annotations

from agent_runtime import spec


def test_unknown_fields_are_ignored_and_defaults_apply():
    parsed = spec.parse(4, {"replicas": 2, "engine": {"model": "x"},
                            "functions": [{"name": "f", "http": {"url": "http://h"}, "new": 1}],
                            "schedules": [{"name": "s", "function": "f", "cron": "* * * * *"}]})
    (schedule,) = parsed.schedules
    assert (schedule.mode, schedule.missed_fire_policy, schedule.allow_overlap) == (
        "single", "skip", False)
    assert parsed.functions["f"].http.timeout_seconds == 30
    assert parsed.limits.max_concurrent_runs == 4


def test_bad_schedules_get_readable_errors_and_good_ones_survive():
    parsed = spec.parse(1, {
        "functions": [{"name": "f", "python": {"entrypoint": "m:fn"}}],
        "schedules": [{"name": "a", "function": "f", "cron": "nope"},
                      {"name": "b", "function": "g", "cron": "* * * * *"},
                      {"name": "c", "function": "f", "cron": "* * * * *", "mode": "everywhere"},
                      {"name": "d", "function": "f", "cron": "*/5 * * * * *"}]})
    assert [s.name for s in parsed.schedules] == ["d"]
    assert "must have 5 fields" in parsed.schedule_errors["a"]
    assert parsed.schedule_errors["b"] == "function 'g' is not defined in spec.functions"
    assert "mode" in parsed.schedule_errors["c"]


def test_definition_hash_changes_with_the_schedule():
    a = spec.ScheduleSpec.model_validate({"name": "s", "function": "f", "cron": "* * * * *"})
    b = spec.ScheduleSpec.model_validate({"name": "s", "function": "f", "cron": "*/2 * * * *"})
    assert a.definition_hash() != b.definition_hash()
