"""Real `python -m agent_runtime` processes (what `agentclusters runtime` runs): signals,
failover, Redis outage, HTTP endpoints and the Redis registry."""

from __future__ import annotations

import itertools
import json
import random
import signal
from collections import Counter

import httpx
import pytest
import redis.asyncio as aioredis

from agent_api import redis_keys
from devcluster import ports
from tests.integration.runtime import harness
from tests.integration.runtime.harness import CLUSTER, NAMESPACE, RuntimeProcess


@pytest.fixture
def spawn(database_url, redis_url, tmp_path):
    """Runtimes with the credentials the operator hands their namespace (its own role)."""
    started: list[RuntimeProcess] = []
    octet = random.randint(2, 200)
    handed: list[str] = []

    def start(replica: str, redis: str | None = None, grace: float = 5.0) -> RuntimeProcess:
        if not handed:
            handed.append(harness.tenant_url_blocking(database_url))
        pod_ip = f"127.0.{octet}.{len(started) + 2}"
        process = RuntimeProcess(handed[0], redis or redis_url, replica, pod_ip,
                                 ports.free_port(pod_ip), tmp_path, grace, len(started))
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


async def _rows(database_url, query, *args):
    return await harness.fetch(database_url, query, *args)


async def test_three_processes_run_each_single_mode_fire_exactly_once(database_url, spawn):
    await harness.migrated(database_url)
    await harness.write_spec(database_url, 1, harness.spec_with(
        [harness.python_function("echo", "async_echo")],
        [harness.schedule("every-second", "echo")]))
    processes = [spawn(f"r{i}") for i in range(3)]

    async def enough():
        """eight fires finished"""
        rows = await _rows(database_url, "SELECT 1 FROM fires WHERE status = 'succeeded'")
        return len(rows) >= 8

    await harness.wait_for(enough, within=40)
    for process in processes:
        process.signal(signal.SIGTERM)
    assert [await p.wait() for p in processes] == [0, 0, 0]
    fires = await _rows(database_url, "SELECT * FROM fires ORDER BY fire_time")
    runs = await _rows(database_url, "SELECT * FROM runs")
    times = [f["fire_time"] for f in fires]
    assert all((b - a).total_seconds() == 1 for a, b in itertools.pairwise(times))
    assert {f["status"] for f in fires} <= {"succeeded", "available"}  # last may be unclaimed
    done = [f["id"] for f in fires if f["status"] == "succeeded"]
    # Exactly one run of any status per finished fire (no extra rejected, failed or released
    # run), and the fires were shared: more than one process claimed.
    assert Counter(r["fire_id"] for r in runs) == {i: 1 for i in done}
    assert {r["status"] for r in runs} == {"succeeded"}
    assert len({r["replica"] for r in runs}) > 1


async def test_sigterm_drain_releases_the_lease_and_another_replica_runs_the_fire(
        database_url, spawn):
    await harness.one_fire_due_now(database_url, "slow", slow_seconds=60, lease_seconds=30)
    slow = spawn("slow", grace=1.0)

    async def running():
        """the slow replica holds the fire"""
        rows = await _rows(database_url, "SELECT lease_owner FROM fires WHERE status='running'")
        return [r["lease_owner"] for r in rows] == ["slow"]

    await harness.wait_for(running, within=30)
    slow.signal(signal.SIGTERM)
    assert await slow.wait() == 0
    fire = (await _rows(database_url, "SELECT status, lease_owner FROM fires"))[0]
    assert dict(fire) == {"status": "available", "lease_owner": None}  # released, not running
    spawn("quick")

    async def taken_over():
        """another replica ran the released fire"""
        rows = await _rows(database_url, "SELECT status, lease_owner FROM fires")
        return dict(rows[0]) == {"status": "succeeded", "lease_owner": "quick"}

    await harness.wait_for(taken_over, within=30)
    runs = await _rows(database_url, "SELECT replica, status FROM runs ORDER BY id")
    assert [tuple(r) for r in runs] == [("slow", "released"), ("quick", "succeeded")]
    assert '"runtime stopped"' in slow.log()


async def test_sigkilled_replica_fire_is_run_by_another_after_lease_expiry(database_url, spawn):
    await harness.one_fire_due_now(database_url, "doomed", slow_seconds=60, lease_seconds=5)
    doomed = spawn("doomed")

    async def running():
        """the doomed replica holds the fire"""
        rows = await _rows(database_url, "SELECT lease_owner FROM fires WHERE status='running'")
        return [r["lease_owner"] for r in rows] == ["doomed"]

    await harness.wait_for(running, within=30)
    doomed.signal(signal.SIGKILL)
    await doomed.wait()
    # The dead replica's last renewal: nobody may run the fire before this instant.
    (lease,) = await _rows(database_url, "SELECT lease_expires_at FROM fires")
    spawn("survivor")

    async def taken_over():
        """the survivor ran the fire"""
        rows = await _rows(database_url, "SELECT status, lease_owner, attempt FROM fires")
        return dict(rows[0]) == {"status": "succeeded", "lease_owner": "survivor", "attempt": 2}

    await harness.wait_for(taken_over, within=30)
    (rescue,) = await _rows(database_url, "SELECT started_at FROM runs WHERE replica = 'survivor'")
    assert rescue["started_at"] >= lease["lease_expires_at"]  # it waited for the lease


async def test_schedules_run_while_redis_is_down(database_url, spawn):
    await harness.migrated(database_url)
    await harness.write_spec(database_url, 1, harness.spec_with(
        [harness.python_function("echo", "async_echo")],
        [harness.schedule("every-second", "echo")]))
    dead_redis = f"redis://127.0.0.1:{ports.free_port()}/0"
    process = spawn("r0", redis=dead_redis)

    async def ran():
        """three fires succeeded without Redis"""
        rows = await _rows(database_url, "SELECT 1 FROM fires WHERE status = 'succeeded'")
        return len(rows) >= 3

    await harness.wait_for(ran, within=30)
    process.signal(signal.SIGTERM)
    assert await process.wait() == 0


async def test_http_endpoints_and_redis_registration(database_url, redis_url, spawn):
    await harness.migrated(database_url)
    await harness.write_spec(database_url, 1, harness.spec_with(
        [harness.python_function("echo", "async_echo")], []))
    process = spawn("daring-duck")
    client = aioredis.from_url(redis_url)
    key = redis_keys.replica_key(NAMESPACE, CLUSTER, "daring-duck")
    try:
        async def registered():
            """the replica is registered in Redis and ready"""
            entry = await client.hgetall(key)
            return entry.get(b"ready") == b"1"

        await harness.wait_for(registered, within=30)
        entry = {k.decode(): v.decode() for k, v in (await client.hgetall(key)).items()}
        ttl = await client.ttl(key)
        members = await client.smembers(redis_keys.replicas_set_key(NAMESPACE, CLUSTER))
        async with httpx.AsyncClient(base_url=process.url, headers=harness.AUTH) as http:
            health = await http.get("/healthz")
            ready = await http.get("/readyz")
            run = await http.post("/run/echo", json={"trigger": "webhook", "payload": {"a": 1}})
            unknown = await http.post("/run/nope", json={})
            chat = await http.post("/chat", json={"message": "hi"})
            metrics = await http.get("/metrics")
        process.signal(signal.SIGTERM)
        assert await process.wait() == 0
        gone = await client.exists(key)
    finally:
        await client.aclose()
    assert entry["address"] == process.url and entry["in_flight"] == "0"
    assert entry["started_at"] and 0 < ttl <= redis_keys.REPLICA_TTL_SECONDS
    assert members == {b"daring-duck"}
    assert health.status_code == 200 and ready.status_code == 200
    assert run.status_code == 200
    assert run.json()["output"] == {"result": {"echo": {"a": 1}, "replica": "daring-duck"}}
    assert unknown.status_code == 404
    # No spec.ai here: chat answers 503 naming the replica (tests/integration/runtime/ai/).
    assert chat.status_code == 503 and chat.json()["replica"] == "daring-duck"
    assert "spec.ai is not set" in chat.json()["error"]
    assert 'agentclusters_runs_total{agent_replica="daring-duck",agentcluster="scraper",' \
           'agentcluster_namespace="team-a",outcome="succeeded",trigger="webhook"} 1.0' in metrics.text
    assert gone == 0


async def test_every_log_line_names_namespace_cluster_and_replica(database_url, spawn):
    await harness.migrated(database_url)
    await harness.write_spec(database_url, 1, harness.spec_with([], []))
    process = spawn("swift-falcon")

    async def started():
        """the runtime logged its start"""
        return "runtime started" in process.log()

    await harness.wait_for(started, within=30)
    process.signal(signal.SIGTERM)
    assert await process.wait() == 0
    lines = [json.loads(line) for line in process.log().splitlines() if line.strip()]
    assert lines
    assert all((line["namespace"], line["cluster"], line["replica"]) ==
               (NAMESPACE, CLUSTER, "swift-falcon") for line in lines)


async def test_run_without_waiting_answers_with_its_id_at_once_and_still_records_it(spawn, database_url):
    await harness.migrated(database_url)
    await harness.write_spec(database_url, 1, harness.spec_with(
        [harness.python_function("sleepy", "sleepy")], []))
    process = spawn("daring-duck")
    try:
        await harness.until_serving(process)
        async with httpx.AsyncClient(base_url=process.url, headers=harness.AUTH) as http:
            started = await http.post("/run/sleepy", json={"payload": {"seconds": 1}, "wait": False})
            refused = await http.post("/run/sleepy", json={"wait": "no"})
        run_id = started.json()["run_id"]

        async def finished():
            rows = await harness.fetch(database_url, "SELECT status FROM runs WHERE id = $1", run_id)
            return rows and rows[0]["status"] == "succeeded"

        await harness.wait_for(finished, within=30)
    finally:
        process.signal(signal.SIGTERM)
        await process.wait()
    assert started.status_code == 202
    assert started.json()["status"] == "running" and started.json()["replica"] == "daring-duck"
    assert refused.status_code == 400 and "wait must be" in refused.json()["error"]


async def test_sigterm_records_an_unfinished_webhook_run_as_interrupted(spawn, database_url):
    await harness.migrated(database_url)
    await harness.write_spec(database_url, 1, harness.spec_with(
        [harness.python_function("sleepy", "sleepy")], []))
    process = spawn("daring-duck", grace=1.0)
    await harness.until_serving(process)
    async with httpx.AsyncClient(base_url=process.url, headers=harness.AUTH) as http:
        started = await http.post("/run/sleepy", json={"payload": {"seconds": 60}, "wait": False})

    process.signal(signal.SIGTERM)
    assert await process.wait() == 0

    rows = await harness.fetch(database_url, "SELECT status, error FROM runs WHERE id = $1",
                               started.json()["run_id"])
    assert rows[0]["status"] == "failed"
    assert rows[0]["error"].startswith("interrupted: the replica shut down")
