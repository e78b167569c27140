"""Parsing the stored spec with the API's models: unknown fields refused, one bad schedule or
function spoils nothing else."""

from __future__ import annotations

import pytest

from agent_api import models
from agent_runtime import spec


def test_defaults_apply():
    parsed = spec.parse(4, {"replicas": 2,
                            "functions": [{"name": "f", "http": {"url": "http://h"}}],
                            "schedules": [{"name": "s", "function": "f", "cron": "* * * * *"}]})
    (schedule,) = parsed.schedules
    assert (schedule.mode, schedule.missed_fire_policy, schedule.allow_overlap) == (
        "single", "skip", False)
    assert parsed.functions["f"].http.timeout_seconds == 30
    assert parsed.functions["f"].http.method == "POST"
    assert parsed.limits.max_concurrent_runs == 4


def test_an_unknown_spec_field_is_refused_not_ignored():
    with pytest.raises(spec.InvalidSpec, match=r"unknown spec field\(s\) engine: this runtime image"):
        spec.parse(1, {"engine": {"model": "x"}})


def test_an_unknown_function_field_is_that_functions_error():
    parsed = spec.parse(1, {"functions": [{"name": "f", "http": {"url": "http://h"}, "new": 1},
                                          {"name": "g", "python": {"entrypoint": "m:fn"}}]})

    assert "new: Extra inputs are not permitted" in parsed.function_errors["f"]
    assert list(parsed.functions) == ["g"]


def test_invalid_limits_refuse_the_spec_with_the_field_named():
    with pytest.raises(spec.InvalidSpec, match="leaseSeconds: Input should be greater than or equal to 5"):
        spec.parse(1, {"limits": {"leaseSeconds": 1}})


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
    a = spec.Schedule.model_validate({"name": "s", "function": "f", "cron": "* * * * *"})
    b = spec.Schedule.model_validate({"name": "s", "function": "f", "cron": "*/2 * * * *"})
    assert a.definition_hash() != b.definition_hash()


HTTP_WITH_EVERYTHING = {"name": "scraping.fetch", "http": {
    "url": "http://h/x", "method": "PUT", "timeoutSeconds": 5, "retries": 2,
    "headers": [{"name": "Authorization", "secretKeyRef": {"name": "api", "key": "token"}}]}}


def test_an_http_function_with_secret_headers_parses():
    parsed = spec.parse(1, {"functions": [HTTP_WITH_EVERYTHING]})

    assert parsed.function_errors == {}
    (header,) = parsed.functions["scraping.fetch"].http.headers
    assert (header.name, header.secret_key_ref.name, header.secret_key_ref.key) == (
        "Authorization", "api", "token")


def test_an_http_functions_method_is_read():
    parsed = spec.parse(1, {"functions": [HTTP_WITH_EVERYTHING]})

    assert parsed.functions["scraping.fetch"].http.method == "PUT"


def test_the_runtime_parses_with_the_api_models():
    parsed = spec.parse(1, {"functions": [HTTP_WITH_EVERYTHING]})

    assert isinstance(parsed.functions["scraping.fetch"], models.Function)
    assert isinstance(parsed.limits, models.Limits)


def test_definition_hash_is_the_one_earlier_runtimes_stored():
    # Computed by the runtime's former copy of the models: an upgrade must not look like an edit
    # (an edit resets failure counters and re-enables a lane its failure policy disabled).
    schedule = spec.Schedule.model_validate(
        {"name": "s", "function": "f", "cron": "*/5 * * * * *", "timezone": "Europe/Paris",
         "mode": "cluster", "payload": {"a": [1, 2]}, "failurePolicy": {"action": "backoff"}})

    assert schedule.definition_hash() == "03bbf92b38a96f3a"
