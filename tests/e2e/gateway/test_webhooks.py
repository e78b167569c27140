"""Signed webhooks through the real gateway: spread across replicas, bad signatures 401,
unknown hooks 404, oversized bodies 413, synchronous delivery answers with the result."""

from __future__ import annotations

import asyncio
import base64
import collections
import json

import asyncpg
import httpx2
import pytest
from kubernetes import client

from agent_gateway import signatures
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


async def test_webhooks(gateway, namespace, token_for, k8s_api, operator, grant_secret_read):
    client.CoreV1Api(k8s_api).create_namespaced_secret(namespace, {
        "metadata": {"name": "hooks"}, "data": {"secret": base64.b64encode(SECRET).decode()}})
    agent = "hooked"
    token = token_for(namespace)
    grant_secret_read(namespace, "hooks")  # referencing a Secret takes the caller's own get on it
    async with mcpclient.connect(gateway.mcp_url, token) as mcp:
        await mcp.call("make_agent", name=agent, namespace=namespace)
        await mcp.call("add_function", agent_name=agent, function_name="ingest",
                       python_entrypoint="agent_runtime.builtins:echo", namespace=namespace)
        unreadable = await mcp.error("add_webhook", agent_name=agent, webhook_name="gh", path="/github",
                                     function_name="ingest", secret_name="nope", namespace=namespace)
        assert 'may not get Secret "nope"' in unreadable
        await mcp.call("add_webhook", agent_name=agent, webhook_name="gh", path="/github", function_name="ingest",
                       secret_name="hooks", namespace=namespace)
        await mcp.call("add_webhook", agent_name=agent, webhook_name="sync", path="/sync", function_name="ingest",
                       secret_name="hooks", synchronous=True, namespace=namespace)
        members = (await mcp.call("scale_agent", name=agent, replicas=3, namespace=namespace))["members"]

    base = f"{gateway.url}/hooks/{namespace}/{agent}"
    async with httpx2.AsyncClient(timeout=60) as http:
        async def deliver(path: str, body: bytes, signature: str | None = None) -> httpx2.Response:
            headers = {signatures.HEADER: signature or signatures.sign(SECRET, body),
                       "Content-Type": "application/json"}
            return await http.post(f"{base}{path}", content=body, headers=headers)

        counts: collections.Counter[str] = collections.Counter()
        run_ids = []
        for n in range(30):
            answer = await deliver("/github", json.dumps({"n": n}).encode())
            # Asynchronous delivery: answered as soon as the run has started.
            assert answer.status_code == 202, answer.text
            assert answer.json()["status"] == "running"
            run_ids.append(answer.json()["run_id"])
            counts[answer.json()["replica"]] += 1
        assert set(counts) == set(members), counts  # every replica took some
        assert max(counts.values()) - min(counts.values()) <= 4, counts
        await succeeded(operator.database_url, run_ids)

        sync = await deliver("/sync", b'{"hello": "world"}')
        assert sync.status_code == 200 and sync.json()["output"]["result"]["echo"] == {"hello": "world"}
        assert sync.json()["output"]["result"]["trigger"] == "webhook"

        body = b'{"n": 1}'
        assert (await deliver("/github", body, signatures.sign(b"wrong", body))).status_code == 401
        assert (await deliver("/github", body, "sha256=")).status_code == 401
        assert (await http.post(f"{base}/github", content=body)).status_code == 401
        assert (await deliver("/nowhere", body)).status_code == 404
        other = f"{gateway.url}/hooks/{namespace}/no-such-agent/github"
        assert (await http.post(other, content=body, headers={signatures.HEADER: signatures.sign(SECRET, body)})
                ).status_code == 404
        huge = b"x" * (1024 * 1024 + 1)
        too_big = await deliver("/github", huge)
        assert too_big.status_code == 413 and "larger than" in too_big.json()["error"]
