"""Spec edits and their messages: what was wrong, and where."""

from __future__ import annotations

import pytest

from agent_gateway import errors, spec_edit

ECHO = {"name": "scraping.fetch", "python": {"entrypoint": "agent_runtime.builtins:echo"}}
BASE = {"replicas": 1, "functions": [ECHO]}


def schedule(**overrides):
    return {"name": "fetch", "function": "scraping.fetch", "cron": "*/5 * * * *", "timezone": "UTC",
            "mode": "single", **overrides}


def refusal(call, *args) -> str:
    with pytest.raises(errors.GatewayError) as refused:
        call(*args)
    return str(refused.value)


def test_add_schedule_keeps_everything_else():
    new = spec_edit.add_schedule({**BASE, "limits": {"maxConcurrentRuns": 2}}, schedule(), "scraper")
    assert new["schedules"] == [schedule()] and new["limits"] == {"maxConcurrentRuns": 2}


def test_invalid_cron_says_what_and_where():
    message = refusal(spec_edit.add_schedule, BASE, schedule(cron="*/5 * * *"), "scraper")
    assert 'invalid schedule "fetch" for agent "scraper"' in message
    assert "'*/5 * * *' must have 5 fields" in message and "cron_expression" in message
    message = refusal(spec_edit.add_schedule, BASE, schedule(cron="99 * * * *"), "scraper")
    assert "'99 * * * *' is not a valid cron expression" in message


def test_unknown_timezone():
    message = refusal(spec_edit.add_schedule, BASE, schedule(timezone="Mars/Olympus"), "scraper")
    assert "unknown time zone 'Mars/Olympus'" in message


def test_schedule_of_an_undefined_function():
    message = refusal(spec_edit.add_schedule, BASE, schedule(function="nope"), "scraper")
    assert message == ('agent "scraper" has no function named "nope" (defined: scraping.fetch); '
                       "add it with add_function first")


def test_duplicate_and_missing_names():
    with_one = spec_edit.add_schedule(BASE, schedule(), "scraper")
    assert 'already has a schedule named "fetch"' in refusal(spec_edit.add_schedule, with_one, schedule(), "scraper")
    assert refusal(spec_edit.remove_item, with_one, "schedule", "other", "scraper") == (
        'agent "scraper" has no schedule named "other"; its schedules: fetch')


def test_model_refusals_carry_the_field_path():
    bad = {"name": "Bad_Name", "python": {"entrypoint": "agent_runtime.builtins:echo"}}
    message = refusal(spec_edit.add_item, BASE, "function", bad, "scraper")
    assert message.startswith('invalid change to agent "scraper": spec.functions[1].name: ')
    two_kinds = {"name": "both", "python": {"entrypoint": "a:b"}, "http": {"url": "https://x.example"}}
    assert "exactly one of http, python or prompt" in refusal(spec_edit.add_item, BASE, "function", two_kinds, "s")


def test_function_in_use_cannot_be_removed():
    with_one = spec_edit.add_schedule(BASE, schedule(), "scraper")
    message = refusal(spec_edit.remove_function, with_one, "scraping.fetch", "scraper")
    assert message == ('function "scraping.fetch" of agent "scraper" is still used by schedule "fetch"; '
                       "remove those first")


def test_schedule_names_are_derived_and_never_collide():
    assert spec_edit.schedule_name(BASE, "scraping.fetch", "single") == "scraping-fetch-single"
    taken = {**BASE, "schedules": [schedule(name="scraping-fetch-single")]}
    assert spec_edit.schedule_name(taken, "scraping.fetch", "single") == "scraping-fetch-single-2"


def test_agent_names():
    spec_edit.check_name("social-scraper")
    assert "must be a DNS label of at most 41" in refusal(spec_edit.check_name, "Social_Scraper")
    assert "must be a DNS label of at most 41" in refusal(spec_edit.check_name, "a" * 42)


def test_ai_needs_a_model_unless_echo():
    spec_edit.replace_field(BASE, "ai", {"provider": "echo"}, "scraper")
    assert "ai.model is required unless ai.provider is echo" in refusal(
        spec_edit.replace_field, BASE, "ai", {"provider": "openai"}, "scraper")
