"""Signed webhooks through the real gateway: spread across replicas, verified by the replica
that runs them (scheme v1: timestamp, delivery id, path and body signed), each delivery run
once; bad, stale, misdirected and body-only signatures 401, replays 409, unknown hooks 404,
oversized bodies 413, synchronous delivery answers with the result."""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable

import asyncpg
import httpx2
import pytest
from kubernetes import client

from agent_api import webhook_signatures
from tests.e2e.gateway import mcpclient

pytestmark = pytest.mark.e2e
SECRET = b"hook-secret"


async def succeeded(database_url: str, run_ids: list[int], within: float = 60) -> None:
    """Every run in `run_ids` ends up succeeded (asynchronous webhook runs finish after the 202)."""
    conn = await asyncpg.connect(database_url)
    try:
        deadline = asyncio.get_running_loop().time() + within
        while True:
            done = await conn.fetchval("SELECT count(*) FROM runs WHERE id = ANY($1::bigint[]) "
                                       "AND status = 'succeeded'", run_ids)
            if done == len(run_ids):
                return
            assert asyncio.get_running_loop().time() < deadline, f"{done}/{len(run_ids)} runs succeeded"
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


async def webhook_runs(database_url: str, namespace: str, agent: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval("SELECT count(*) FROM runs WHERE namespace = $1 AND cluster = $2 "
                                   "AND trigger = 'webhook'", namespace, agent)
    finally:
        await conn.close()


@pytest.fixture
def hooked_agent(gateway, namespace, token_for, k8s_api, grant_secret_read
                 ) -> Callable[..., Awaitable[list[str]]]:
    """Makes agents with an echo function behind an asynchronous webhook /github and a
    synchronous /sync, both signed with SECRET (the Secret `hooks`, readable by the caller);
    answers with an agent's members once all are ready."""
    client.CoreV1Api(k8s_api).create_namespaced_secret(namespace, {
        "metadata": {"name": "hooks"}, "data": {"secret": base64.b64encode(SECRET).decode()}})
    token = token_for(namespace)
    grant_secret_read(namespace, "hooks")  # referencing a Secret takes the caller's own get on it

    async def make(agent: str = "hooked", replicas: int = 1) -> list[str]:
        async with mcpclient.connect(gateway.mcp_url, token) as mcp:
            return await _make(mcp, namespace, agent, replicas)

    return make


async def _make(mcp: mcpclient.Session, namespace: str, agent: str, replicas: int) -> list[str]:
    await mcp.call("make_agent", name=agent, namespace=namespace)
    await mcp.call("add_function", agent_name=agent, function_name="ingest",
                   python_entrypoint="agent_runtime.builtins:echo", namespace=namespace)
    await mcp.call("add_webhook", agent_name=agent, webhook_name="gh", path="/github", function_name="ingest",
                   secret_name="hooks", namespace=namespace)
    await mcp.call("add_webhook", agent_name=agent, webhook_name="sync", path="/sync", function_name="ingest",
                   secret_name="hooks", synchronous=True, namespace=namespace)
    # Scaling after the webhooks exist: every pod starts with their secrets.
    return (await mcp.call("scale_agent", name=agent, replicas=replicas, namespace=namespace))["members"]


async def deliver(http: httpx2.AsyncClient, gateway, namespace: str, agent: str, path: str, body: bytes,
                  headers: dict[str, str] | None = None) -> httpx2.Response:
    """POST a delivery, signed for its own path unless `headers` are given."""
    if headers is None:
        headers = webhook_signatures.headers(SECRET, webhook_signatures.hook_path(namespace, agent, path), body)
    return await http.post(f"{gateway.url}/hooks/{namespace}/{agent}{path}", content=body,
                           headers={**headers, "Content-Type": "application/json"})


async def synced(http, gateway, namespace: str, agent: str) -> None:
    """Wait until a synchronous delivery succeeds: every replica has its webhook secret."""
    deadline = time.monotonic() + 120
    while True:
        answer = await deliver(http, gateway, namespace, agent, "/sync", b"{}")
        if answer.status_code == 200:
            return
        assert time.monotonic() < deadline, answer.text
        await asyncio.sleep(1)


async def every_replica_answers(http, gateway, namespace: str, agent: str, members: set[str]) -> None:
    deadline = time.monotonic() + 120
    seen: set[str] = set()
    while seen != members:
        answer = await deliver(http, gateway, namespace, agent, "/sync", b"{}")
        if answer.status_code == 200:
            seen.add(answer.json()["replica"])
        assert time.monotonic() < deadline, f"only {sorted(seen)} of {sorted(members)} answered: {answer.text}"
        await asyncio.sleep(0.2)


async def test_webhooks(gateway, namespace, token_for, operator, hooked_agent):
    agent = "hooked"
    members = await hooked_agent(agent, replicas=3)
    async with mcpclient.connect(gateway.mcp_url, token_for(namespace)) as mcp:
        unreadable = await mcp.error("add_webhook", agent_name=agent, webhook_name="other", path="/other",
                                     function_name="ingest", secret_name="nope", namespace=namespace)
    assert 'may not get Secret "nope"' in unreadable

    async with httpx2.AsyncClient(timeout=60) as http:
        # A replica is routed to once the gateway has confirmed its address against its pod
        # (cached for a few seconds): wait until each has answered once, then judge the spread.
        await every_replica_answers(http, gateway, namespace, agent, set(members))
        counts: collections.Counter[str] = collections.Counter()
        run_ids = []
        for n in range(30):
            answer = await deliver(http, gateway, namespace, agent, "/github", json.dumps({"n": n}).encode())
            # Asynchronous delivery: answered as soon as the run has started.
            assert answer.status_code == 202, answer.text
            assert answer.json()["status"] == "running"
            run_ids.append(answer.json()["run_id"])
            counts[answer.json()["replica"]] += 1
        assert set(counts) == set(members), counts  # every replica took some
        assert max(counts.values()) - min(counts.values()) <= 4, counts
        await succeeded(operator.database_url, run_ids)

        sync = await deliver(http, gateway, namespace, agent, "/sync", b'{"hello": "world"}')
        assert sync.status_code == 200 and sync.json()["output"]["result"]["echo"] == {"hello": "world"}
        assert sync.json()["output"]["result"]["trigger"] == "webhook"

        body = b'{"n": 1}'
        path = webhook_signatures.hook_path(namespace, agent, "/github")
        wrong = webhook_signatures.headers(b"wrong", path, body)
        assert (await deliver(http, gateway, namespace, agent, "/github", body, wrong)).status_code == 401
        unsigned = await http.post(f"{gateway.url}/hooks/{namespace}/{agent}/github", content=body)
        assert unsigned.status_code == 401 and "missing X-Agent-Timestamp" in unsigned.json()["error"]
        assert (await deliver(http, gateway, namespace, agent, "/nowhere", body)).status_code == 404
        assert (await deliver(http, gateway, namespace, "no-such-agent", "/github", body)).status_code == 404
        too_big = await deliver(http, gateway, namespace, agent, "/github", b"x" * (1024 * 1024 + 1))
        assert too_big.status_code == 413 and "larger than" in too_big.json()["error"]


async def test_a_replayed_delivery_is_refused_and_runs_once(gateway, namespace, operator, hooked_agent):
    await hooked_agent(replicas=2)
    body = b'{"transfer": 100}'
    async with httpx2.AsyncClient(timeout=60) as http:
        await synced(http, gateway, namespace, "hooked")
        before = await webhook_runs(operator.database_url, namespace, "hooked")
        headers = webhook_signatures.headers(SECRET, webhook_signatures.hook_path(namespace, "hooked", "/sync"), body)
        first = await deliver(http, gateway, namespace, "hooked", "/sync", body, headers)
        # Replayed to every replica in turn: the delivery id is shared through Redis.
        replays = [await deliver(http, gateway, namespace, "hooked", "/sync", body, headers) for _ in range(4)]
    assert first.status_code == 200, first.text
    assert [r.status_code for r in replays] == [409] * 4, [r.text for r in replays]
    assert "was already received" in replays[0].json()["error"]
    assert await webhook_runs(operator.database_url, namespace, "hooked") == before + 1


async def test_a_stale_delivery_is_refused_with_the_server_time(gateway, namespace, operator, hooked_agent):
    await hooked_agent()
    body = b'{"n": 2}'
    sent = int(time.time()) - 3600
    async with httpx2.AsyncClient(timeout=60) as http:
        await synced(http, gateway, namespace, "hooked")
        before = await webhook_runs(operator.database_url, namespace, "hooked")
        stale = webhook_signatures.headers(SECRET, webhook_signatures.hook_path(namespace, "hooked", "/sync"), body,
                                           timestamp=sent)
        answer = await deliver(http, gateway, namespace, "hooked", "/sync", body, stale)
    assert answer.status_code == 401, answer.text
    assert str(sent) in answer.json()["error"] and "server time" in answer.json()["error"]
    assert await webhook_runs(operator.database_url, namespace, "hooked") == before


async def test_a_delivery_signed_for_another_agent_is_refused(gateway, namespace, operator, hooked_agent):
    await hooked_agent("first")
    await hooked_agent("second")  # the same secret
    body = b'{"n": 3}'
    async with httpx2.AsyncClient(timeout=60) as http:
        await synced(http, gateway, namespace, "second")
        before = await webhook_runs(operator.database_url, namespace, "second")
        for_first = webhook_signatures.headers(SECRET, webhook_signatures.hook_path(namespace, "first", "/sync"), body)
        answer = await deliver(http, gateway, namespace, "second", "/sync", body, for_first)
    assert answer.status_code == 401, answer.text
    assert webhook_signatures.hook_path(namespace, "second", "/sync") in answer.json()["error"]
    assert await webhook_runs(operator.database_url, namespace, "second") == before


async def test_the_retired_body_only_signature_is_refused(gateway, namespace, operator, hooked_agent):
    await hooked_agent()
    body = b'{"n": 4}'
    old = {webhook_signatures.SIGNATURE_HEADER: "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()}
    async with httpx2.AsyncClient(timeout=60) as http:
        answer = await deliver(http, gateway, namespace, "hooked", "/sync", body, old)
    assert answer.status_code == 401, answer.text
    assert "retired body-only scheme" in answer.json()["error"]
    assert await webhook_runs(operator.database_url, namespace, "hooked") == 0


async def test_the_gateway_needs_no_webhook_secret(gateway, namespace, k8s_api, hooked_agent):
    """The replica verifies with the secret it was started with; the gateway reads none (its
    cluster-wide Secret read is gone), so a delivery works with the Secret out of its reach."""
    await hooked_agent()
    async with httpx2.AsyncClient(timeout=60) as http:
        await synced(http, gateway, namespace, "hooked")
        client.CoreV1Api(k8s_api).delete_namespaced_secret("hooks", namespace)
        answer = await deliver(http, gateway, namespace, "hooked", "/sync", b'{"n": 5}')
    assert answer.status_code == 200, answer.text
