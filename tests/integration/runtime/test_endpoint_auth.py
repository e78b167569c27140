"""A replica's HTTP endpoints against callers other than the gateway: `/run`, `/chat` and
`/metrics` need the cluster's replica token, health probes do not; manual runs are bounded by
`limits.maxConcurrentRuns` like scheduled ones. Real runtime processes, real PostgreSQL."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.runtime import harness

PROTECTED = [("GET", "/metrics", None), ("POST", "/run/echo", {"payload": {"a": 1}}),
             ("POST", "/chat", {"message": "hi"})]


async def _serving(spawn, database_url: str, **limits: int) -> harness.RuntimeProcess:
    await harness.migrated(database_url)
    await harness.write_spec(database_url, 1, harness.spec_with(
        [harness.python_function("echo", "async_echo"), harness.python_function("sleepy", "sleepy")],
        [], **limits))
    process = spawn("daring-duck", database_url)
    await harness.until_serving(process)
    return process


async def _runs(database_url: str) -> int:
    return len(await harness.fetch(database_url, "SELECT 1 FROM runs"))


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-the-token"},
                                     {"Authorization": f"Basic {harness.REPLICA_TOKEN}"},
                                     {"Authorization": harness.REPLICA_TOKEN}],
                         ids=["none", "wrong", "not-bearer", "no-scheme"])
async def test_protected_endpoints_refuse_a_caller_without_the_token(spawn, database_url, headers):
    process = await _serving(spawn, database_url)
    async with httpx.AsyncClient(base_url=process.url, headers=headers) as http:
        answers = [await http.request(method, path, json=body) for method, path, body in PROTECTED]
    assert [a.status_code for a in answers] == [401, 401, 401], [a.text for a in answers]
    for answer in answers:
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert "Authorization: Bearer" in answer.json()["error"]
        assert "agentclusters_" not in answer.text  # no metrics leak into the refusal
    assert await _runs(database_url) == 0  # nothing ran, nothing was recorded


async def test_protected_endpoints_serve_the_caller_with_the_token(spawn, database_url):
    process = await _serving(spawn, database_url)
    async with httpx.AsyncClient(base_url=process.url, headers=harness.AUTH) as http:
        metrics, run, chat = [await http.request(method, path, json=body) for method, path, body in PROTECTED]
    assert metrics.status_code == 200 and "agentclusters_runs_in_flight" in metrics.text
    assert run.status_code == 200 and run.json()["output"]["result"]["echo"] == {"a": 1}
    # No spec.ai here: the chat got past the credential check and was refused for that reason.
    assert chat.status_code == 503 and "spec.ai is not set" in chat.json()["error"]


async def test_health_probes_need_no_token(spawn, database_url):
    process = await _serving(spawn, database_url)
    async with httpx.AsyncClient(base_url=process.url) as http:
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).status_code == 200


async def test_a_run_beyond_max_concurrent_runs_is_refused_and_not_started(spawn, database_url):
    process = await _serving(spawn, database_url, maxConcurrentRuns=2)
    long_run = {"payload": {"seconds": 30}, "wait": False}
    async with httpx.AsyncClient(base_url=process.url, headers=harness.AUTH, timeout=30) as http:
        first = await http.post("/run/sleepy", json=long_run)
        second = await http.post("/run/sleepy", json={**long_run, "trigger": "webhook"})
        third = await http.post("/run/sleepy", json=long_run)
        waiting = await http.post("/run/echo", json={"payload": {}})
    assert [first.status_code, second.status_code] == [202, 202]
    for refused in (third, waiting):
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["Retry-After"]) > 0
        assert "2 of 2" in refused.json()["error"] and "maxConcurrentRuns" in refused.json()["error"]
    rows = await harness.fetch(database_url, "SELECT id FROM runs ORDER BY id")
    assert [r["id"] for r in rows] == [first.json()["run_id"], second.json()["run_id"]]


async def test_a_slot_freed_by_a_finished_run_takes_the_next_one(spawn, database_url):
    process = await _serving(spawn, database_url, maxConcurrentRuns=1)
    async with httpx.AsyncClient(base_url=process.url, headers=harness.AUTH, timeout=30) as http:
        first = await http.post("/run/sleepy", json={"payload": {"seconds": 1}, "wait": False})
        refused = await http.post("/run/echo", json={"payload": {}})

        async def freed() -> bool:
            """the first run finished and gave its slot back"""
            metrics = await http.get("/metrics")
            return any(line.startswith("agentclusters_runs_in_flight{") and line.endswith(" 0.0")
                       for line in metrics.text.splitlines())

        await harness.wait_for(freed, within=30)
        later = await http.post("/run/echo", json={"payload": {}})
    assert (first.status_code, refused.status_code, later.status_code) == (202, 429, 200)
