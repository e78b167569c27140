"""The function context and result summaries."""

from __future__ import annotations

import pytest

from agent_api import models, secret_env
from agent_runtime import functions


def _context(state: dict) -> functions.RunContext:
    return functions.RunContext("agent", "ns", "duck", "f", "schedule", "s",
                                "2030-01-01T00:00:00+00:00", 1, "s:2030", {"a": 1}, state)


def _http(**fields) -> models.HttpFunction:
    return models.HttpFunction.model_validate({"url": "http://h", **fields})


def test_http_body_carries_every_field_and_the_whole_state():
    body = _context({"k": 2}).body(_http())

    assert set(body) == {"agent", "namespace", "replica", "function", "trigger", "schedule",
                         "fire_time", "attempt", "idempotency_key", "payload", "state"}
    assert body["state"] == {"k": 2}


def test_http_body_carries_only_the_listed_state_keys():
    body = _context({"k": 2, "big": "x" * 10, "other": 1}).body(_http(stateKeys=["k", "missing"]))

    assert body["state"] == {"k": 2}


def test_state_over_the_body_limit_fails_naming_state_keys():
    context = _context({"big": "x" * models.HTTP_STATE_MAX_BYTES})

    with pytest.raises(functions.FunctionError,
                       match=r"over the 1048576 bytes an http function's body carries; list the keys "
                             r"the function needs in spec.functions\[f\].http.stateKeys"):
        context.body(_http())


def test_listed_keys_keep_a_large_state_under_the_limit():
    context = _context({"big": "x" * models.HTTP_STATE_MAX_BYTES, "cursor": 7})

    assert context.body(_http(stateKeys=["cursor"]))["state"] == {"cursor": 7}


def test_header_values_come_from_the_environment_the_operator_fills():
    http = _http(headers=[{"name": "Authorization", "secretKeyRef": {"name": "api", "key": "t"}}])
    env = {secret_env.http_header("f", "Authorization"): "Bearer abc"}

    assert functions.headers("f", http, env) == {"Authorization": "Bearer abc"}


def test_a_header_missing_from_the_environment_names_its_secret_and_variable():
    http = _http(headers=[{"name": "Authorization", "secretKeyRef": {"name": "api", "key": "t"}}])

    with pytest.raises(functions.FunctionError, match=r"Secret 'api', key 't', is not in this "
                                                      r"replica's environment \(AGENT_HTTP_F_HEADER_AUTHORIZATION_"):
        functions.headers("f", http, {})


def test_long_results_are_truncated_in_the_summary():
    summary = functions.summarize("x" * 10_000)
    assert summary["truncated"] and len(summary["result"]) == functions.OUTPUT_SUMMARY_CHARS


def test_unresolvable_entrypoint_is_a_function_error():
    with pytest.raises(functions.FunctionError, match="cannot import"):
        functions.resolve("no_such_module_xyz:fn")


def test_a_prompts_fields_are_every_field_but_the_state():
    assert "state" not in _context({"k": 2}).fields()
