"""Provider errors become run errors with the provider's message, scrubbed of the key; each
orchestration limit stops a runaway loop and is recorded in the run history."""

from __future__ import annotations

import json
import logging
import uuid

import pytest

from agent_api import secret_env
from agent_runtime import logs
from tests.integration.runtime import harness
from tests.support.ai_provider import Reply, ScriptedProvider


def _spec(provider: ScriptedProvider, api: str = "openai", **limits) -> dict:
    base = provider.openai_base_url if api == "openai" else provider.url
    return {"replicas": 1,
            "ai": {"provider": api, "model": "scripted", "baseURL": base,
                   "apiKeySecretRef": {"name": "llm", "key": "k"}},
            "functions": [{"name": "think", "prompt": {"template": "think about {{ topic }}"}}],
            "limits": {"leaseSeconds": 5, **limits}}


@pytest.fixture
async def provider():
    scripted = await ScriptedProvider(expected_key="sk-the-right-key-000").start()
    yield scripted
    await scripted.stop()


async def _replica(database_url: str, spec: dict) -> harness.Replica:
    await harness.migrated(database_url)
    await harness.write_spec(database_url, 1, spec)
    return await harness.Replica(database_url, "brave-bee").start()


@pytest.mark.parametrize("api", ["openai", "anthropic"])
async def test_bad_key_is_a_clear_run_error_without_the_key(database_url, provider, api,
                                                            monkeypatch, caplog):
    wrong = f"sk-wrong-{uuid.uuid4().hex}"
    monkeypatch.setenv(secret_env.AI_API_KEY, wrong)
    replica = await _replica(database_url, _spec(provider, api))
    caplog.handler.setFormatter(logs.formatter("team-a", "scraper", "brave-bee"))
    caplog.set_level(logging.DEBUG)
    try:
        run_id, outcome = await replica.runner.run_now("think", "manual", {"topic": "x"}, None)
    finally:
        await replica.close()
    assert outcome.status == "failed"
    assert "authentication failed" in outcome.error and "Incorrect API key provided" in outcome.error
    assert "[redacted:AGENT_AI_API_KEY]" in outcome.error
    assert len(provider.requests) == 1  # never retried
    row = (await harness.fetch(database_url, "SELECT * FROM runs WHERE id = $1", run_id))[0]
    assert row["stop_reason"] == "error" and row["status"] == "failed"
    assert wrong not in json.dumps(dict(row), default=str)
    assert wrong not in caplog.text


RUNAWAY = [("max_iterations", {"maxIterations": 3}, 0.0),
           ("max_tokens", {"maxTokens": 40}, 0.0),
           ("max_function_calls", {"maxFunctionCalls": 2}, 0.0),
           ("max_wall_clock", {"maxWallClockSeconds": 1}, 0.2)]


@pytest.mark.parametrize(("reason", "limits", "delay"), RUNAWAY, ids=[r[0] for r in RUNAWAY])
async def test_each_limit_stops_a_runaway_prompt_and_is_recorded(database_url, provider, monkeypatch,
                                                                   reason, limits, delay):
    monkeypatch.setenv(secret_env.AI_API_KEY, "sk-the-right-key-000")
    provider.responder = lambda _r: Reply(tool_calls=[("state_list", {})], delay=delay)
    replica = await _replica(database_url, _spec(provider, **limits))
    try:
        run_id, _ = await replica.runner.run_now("think", "manual", {"topic": "x"}, None)
    finally:
        await replica.close()
    row = (await harness.fetch(database_url, "SELECT * FROM runs WHERE id = $1", run_id))[0]
    assert (row["status"], row["stop_reason"]) == ("failed", reason)
    assert row["error"].startswith(f"stopped by {reason}: spec.limits.{next(iter(limits))}")
    output = json.loads(row["output"])
    if reason == "max_iterations":
        assert output["iterations"] == 3
    if reason == "max_function_calls":
        assert output["function_calls"] == 2
    if reason == "max_tokens":
        assert output["tokens"]["input"] + output["tokens"]["output"] >= 40
