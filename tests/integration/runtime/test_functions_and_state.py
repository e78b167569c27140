"""Function kinds (http, python sync/async), replica state limits and archiving, NOTIFY reload."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from aiohttp import web

from agent_api.db import cluster_store
from agent_runtime import state
from devcluster import ports
from tests.integration.runtime import harness, sample_functions
from tests.integration.runtime.harness import CLUSTER, NAMESPACE, FakeClock, Replica


async def _replica(database_url, spec, name="r0", clock=None):
    await harness.migrated(database_url)
    await harness.write_spec(database_url, 1, spec)
    return await Replica(database_url, name, clock or harness.scheduler.database_clock).start()



async def _serve_hook(handler) -> tuple[web.AppRunner, int]:
    """A local HTTP server answering POST /hook with `handler`; the caller cleans it up."""
    app = web.Application()
    app.router.add_post("/hook", handler)
    site_runner = web.AppRunner(app)
    await site_runner.setup()
    port = ports.free_port()
    await web.TCPSite(site_runner, "127.0.0.1", port).start()
    return site_runner, port

async def test_http_function_posts_every_body_field_and_the_state(database_url):
    received: list[dict] = []

    async def handler(request):
        received.append(await request.json())
        return web.json_response({"ok": True})

    site_runner, port = await _serve_hook(handler)
    clock = FakeClock(dt.datetime(2030, 1, 1, 12, 0, 0, 500_000, tzinfo=dt.UTC))
    spec = harness.spec_with(
        [{"name": "scraping.fetch",
          "http": {"url": f"http://127.0.0.1:{port}/hook", "timeoutSeconds": 5, "retries": 1}}],
        [harness.schedule("hourly", "scraping.fetch", payload={"site": "example.org"})],
    )
    replica = await _replica(database_url, spec, clock=clock)
    try:
        await replica.tick()
        clock.advance(1)
        await replica.tick()
        await replica.settle()
    finally:
        await replica.close()
        await site_runner.cleanup()
    fire_time = "2030-01-01T12:00:01+00:00"
    assert received == [{
        "agent": CLUSTER, "namespace": NAMESPACE, "replica": "r0", "function": "scraping.fetch",
        "trigger": "schedule", "schedule": "hourly", "fire_time": fire_time, "attempt": 1,
        "idempotency_key": f"hourly:{fire_time}", "payload": {"site": "example.org"},
        "state": {},
    }]
    run = (await harness.fetch(database_url, "SELECT status, output FROM runs"))[0]
    assert run["status"] == "succeeded" and '"ok": true' in run["output"]


async def test_http_function_retries_server_errors_then_fails(database_url):
    calls = 0

    async def handler(_request):
        nonlocal calls
        calls += 1
        return web.Response(status=503, text="down")

    site_runner, port = await _serve_hook(handler)
    spec = harness.spec_with(
        [{"name": "f", "http": {"url": f"http://127.0.0.1:{port}/hook", "retries": 2}}], [])
    replica = await _replica(database_url, spec)
    try:
        _, outcome = await replica.runner.run_now("f", "manual", {}, None)
    finally:
        await replica.close()
        await site_runner.cleanup()
    assert calls == 3
    assert outcome.status == "failed" and "HTTP 503" in outcome.error


@pytest.mark.parametrize("entrypoint", ["sync_echo", "async_echo"])
async def test_python_function_sync_and_async_receive_the_context(database_url, entrypoint):
    sample_functions.CALLS.clear()
    spec = harness.spec_with([harness.python_function("f", entrypoint)], [])
    replica = await _replica(database_url, spec)
    try:
        await replica.runner.state_store().put("seen", 3)
        _, outcome = await replica.runner.run_now("f", "webhook", {"x": 1}, "hook:1")
    finally:
        await replica.close()
    assert outcome.status == "succeeded"
    assert outcome.output == {"result": {"echo": {"x": 1}, "replica": "r0"}}
    call = sample_functions.CALLS[-1]
    assert call["kind"] == entrypoint.split("_")[0] and call["key"] == "hook:1"
    if entrypoint == "sync_echo":
        assert call["state"] == {"seen": 3}


async def test_state_value_past_the_size_limit_is_refused_with_a_clear_error(database_url):
    spec = harness.spec_with([], [], stateMaxValueBytes=100, stateMaxTotalBytes=150)
    replica = await _replica(database_url, spec)
    store = replica.runner.state_store()
    try:
        with pytest.raises(state.StateTooLarge, match=r"is 203 bytes; the limit is 100 bytes"):
            await store.put("big", "x" * 201)
        await store.put("a", "x" * 80)
        with pytest.raises(state.StateTooLarge, match=r"would make the state of replica 'r0'"):
            await store.put("b", "y" * 80)
        await store.put("a", "z" * 90)  # replacing a key counts only its new size
        items = await store.items()
    finally:
        await replica.close()
    assert items == {"a": "z" * 90}


async def test_archived_replica_state_is_kept_and_read_only(database_url):
    replica = await _replica(database_url, harness.spec_with([], []))
    store = replica.runner.state_store()
    try:
        await store.put("memory", {"n": 1})
        await store.put("team", "shared", shared=True)
        await cluster_store.archive_members(replica.pool, NAMESPACE, CLUSTER, ["r0"])
        with pytest.raises(state.StateReadOnly, match="archived"):
            await store.put("memory", {"n": 2})
        with pytest.raises(state.StateReadOnly):
            await store.delete("memory")
        kept = await store.get("memory")
        shared = await store.get("team", shared=True)
    finally:
        await replica.close()
    assert kept == {"n": 1} and shared == "shared"


async def test_config_change_applies_without_restart_via_notify(database_url):
    await harness.migrated(database_url)
    await harness.write_spec(database_url, 1, harness.spec_with([], []))
    replica = await Replica(database_url, "r0").start(loops=True)  # polls only every 60 s
    try:
        new = harness.spec_with([harness.python_function("echo", "async_echo")],
                                [harness.schedule("every-second", "echo")])
        await harness.write_spec(database_url, 2, new)

        async def ran():
            """a run of the schedule added by generation 2"""
            rows = await harness.fetch(database_url,
                                       "SELECT 1 FROM runs WHERE status = 'succeeded'")
            return bool(rows)

        await harness.wait_for(ran, within=20)
        generation = replica.watcher.current.generation
    finally:
        await replica.close()
    assert generation == 2


async def test_run_history_is_queryable_by_agent_and_replica(database_url):
    spec = harness.spec_with([harness.python_function("f", "async_echo")], [])
    a = await _replica(database_url, spec, "a")
    b = await Replica(database_url, "b").start()
    try:
        await asyncio.gather(a.runner.run_now("f", "manual", {}, None),
                             b.runner.run_now("f", "manual", {}, None))
        rows = await a.pool.fetch(harness.queries_sql("ListRuns"), NAMESPACE, CLUSTER, "b", 10)
        everyone = await a.pool.fetch(harness.queries_sql("ListRuns"), NAMESPACE, CLUSTER,
                                      None, 10)
    finally:
        await a.close()
        await b.close()
    assert [r["replica"] for r in rows] == ["b"]
    assert sorted(r["replica"] for r in everyone) == ["a", "b"]
