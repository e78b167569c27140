"""The function context and result summaries."""

from __future__ import annotations

import pytest

from agent_runtime import functions


def test_http_body_carries_every_field_but_the_state():
    context = functions.RunContext("agent", "ns", "duck", "f", "schedule", "s",
                                   "2030-01-01T00:00:00+00:00", 1, "s:2030", {"a": 1}, {"k": 2})
    assert set(context.body()) == {"agent", "namespace", "replica", "function", "trigger",
                                   "schedule", "fire_time", "attempt", "idempotency_key",
                                   "payload"}


def test_long_results_are_truncated_in_the_summary():
    summary = functions.summarize("x" * 10_000)
    assert summary["truncated"] and len(summary["result"]) == functions.OUTPUT_SUMMARY_CHARS


def test_unresolvable_entrypoint_is_a_function_error():
    with pytest.raises(functions.FunctionError, match="cannot import"):
        functions.resolve("no_such_module_xyz:fn")
