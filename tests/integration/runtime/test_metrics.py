"""A replica's `/metrics`, read from a real runtime process as Prometheus would scrape it.

The names and labels follow docs/operations.md "Metrics" (`tests/support/prometheus.py`
holds the rules); the counters move with what the replica really did: runs by trigger and
outcome with their duration, claimed fires with their lateness, webhook deliveries.
"""

from __future__ import annotations

import httpx

from agent_runtime import metrics
from tests.integration.runtime import harness
from tests.support import prometheus

IDENTITY = {"agentcluster_namespace": harness.NAMESPACE, "agentcluster": harness.CLUSTER,
            "agent_replica": "daring-duck"}


async def _serving(spawn, database_url: str, schedules: list[dict] | None = None) -> harness.RuntimeProcess:
    await harness.migrated(database_url)
    await harness.write_spec(database_url, 1, harness.spec_with(
        [harness.python_function("echo", "async_echo"), harness.python_function("boom", "fail")],
        schedules or []))
    process = spawn("daring-duck", database_url)
    await harness.until_serving(process)
    return process


async def _scrape(process: harness.RuntimeProcess) -> str:
    async with httpx.AsyncClient(base_url=process.url, headers=harness.AUTH, timeout=30) as http:
        answer = await http.get("/metrics")
    assert answer.status_code == 200, answer.text
    return answer.text


async def test_replica_metrics_follow_the_naming_conventions(spawn, database_url):
    process = await _serving(spawn, database_url)
    async with httpx.AsyncClient(base_url=process.url, headers=harness.AUTH, timeout=30) as http:
        assert (await http.post("/run/echo", json={"payload": {"a": 1}})).status_code == 200
    text = await _scrape(process)
    assert prometheus.convention_problems(text) == []
    assert "agentclusters_runs_total" in prometheus.sample_names(text)


async def test_runs_are_counted_by_trigger_and_outcome_with_their_duration(spawn, database_url):
    process = await _serving(spawn, database_url)
    async with httpx.AsyncClient(base_url=process.url, headers=harness.AUTH, timeout=30) as http:
        await http.post("/run/echo", json={"trigger": "webhook", "payload": {}})
        await http.post("/run/echo", json={"payload": {}})
        await http.post("/run/boom", json={"payload": {}})
    text = await _scrape(process)
    runs = "agentclusters_runs_total"
    assert prometheus.value(text, runs, **IDENTITY, trigger="webhook", outcome="succeeded") == 1
    assert prometheus.value(text, runs, **IDENTITY, trigger="manual", outcome="succeeded") == 1
    assert prometheus.value(text, runs, **IDENTITY, trigger="manual", outcome="failed") == 1
    assert prometheus.value(text, "agentclusters_run_duration_seconds_count", **IDENTITY, trigger="manual") == 2
    assert prometheus.value(text, "agentclusters_runs_in_flight", **IDENTITY) == 0
    assert prometheus.value(text, "agentclusters_replica_ready", **IDENTITY) == 1


async def test_claimed_fires_are_counted_with_their_lateness(spawn, database_url):
    process = await _serving(spawn, database_url, [harness.schedule("tick", "echo")])

    async def ran_twice() -> bool:
        """two scheduled runs finished"""
        text = await _scrape(process)
        return prometheus.value(text, "agentclusters_runs_total", trigger="schedule", outcome="succeeded") >= 2

    await harness.wait_for(ran_twice, within=30)
    text = await _scrape(process)
    claims = prometheus.value(text, "agentclusters_fire_claims_total", **IDENTITY)
    assert claims >= 2
    assert prometheus.value(text, "agentclusters_fire_lateness_seconds_count", **IDENTITY) == claims
    assert prometheus.value(text, "agentclusters_run_duration_seconds_count", trigger="schedule") >= 2
    for quiet in ("agentclusters_fencing_rejections_total", "agentclusters_self_fenced_runs_total",
                  "agentclusters_fires_missed_total"):
        assert prometheus.samples(text, quiet) == [(IDENTITY, 0.0)], quiet


async def test_webhook_deliveries_are_counted_by_status(spawn, database_url):
    process = await _serving(spawn, database_url)
    async with httpx.AsyncClient(base_url=process.url, headers=harness.AUTH, timeout=30) as http:
        answer = await http.post("/hooks/nope", content=b"{}")
    assert answer.status_code == 404
    text = await _scrape(process)
    assert prometheus.value(text, "agentclusters_webhook_deliveries_total", **IDENTITY, code="404") == 1


async def test_model_tokens_and_provider_errors_are_counted(spawn, database_url):
    await harness.migrated(database_url)
    await harness.write_spec(database_url, 1, {**harness.spec_with([], []), "ai": {"provider": "echo"}})
    process = spawn("daring-duck", database_url)
    await harness.until_serving(process)
    async with httpx.AsyncClient(base_url=process.url, headers=harness.AUTH, timeout=30) as http:
        answered = await http.post("/chat", json={"message": "hello there"})
        # The echo engine turns a `/call` line into a tool call; arguments that are not JSON
        # are the provider's malformed_tool_call error, as a real model's would be.
        refused = await http.post("/chat", json={"message": "/call state_get {not json"})
    assert answered.status_code == 200 and refused.status_code == 502, refused.text
    text = await _scrape(process)
    tokens = "agentclusters_ai_tokens_total"
    assert prometheus.value(text, tokens, **IDENTITY, provider="echo", token_type="input") > 0
    assert prometheus.value(text, tokens, **IDENTITY, provider="echo", token_type="output") > 0
    assert prometheus.value(text, "agentclusters_ai_provider_errors_total", **IDENTITY, provider="echo",
                            kind="malformed_tool_call") == 1
    assert prometheus.value(text, "agentclusters_runs_total", trigger="chat", outcome="succeeded") == 1
    assert prometheus.value(text, "agentclusters_run_duration_seconds_count", trigger="chat") == 2


def test_two_replicas_in_one_process_expose_only_their_own_counts():
    first = metrics.Metrics("team-a", "scraper", "daring-duck")
    second = metrics.Metrics("team-a", "scraper", "swift-falcon")
    first.run_finished("manual", "succeeded")
    assert prometheus.value(first.render().decode(), "agentclusters_runs_total") == 1
    assert prometheus.samples(second.render().decode(), "agentclusters_runs_total") == []
