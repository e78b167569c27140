"""Redis is a hint, not an authority: a replica address rewritten in Redis does not get chats.

Before per-namespace Redis users, any tenant's function held Redis credentials that could
rewrite any replica's `address`; the gateway sent that replica's chats (their content) to
wherever it pointed. Here a client with admin Redis rights keeps rewriting one replica's entry
to a local listener, as such a tenant could, while the replica's own heartbeat keeps writing
the truth back every few seconds. The gateway must check the address against the pod's IP in
the API server and route only to the real replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from aiohttp import web

from agent_api import redis_keys
from devcluster import ports
from tests.e2e.gateway import mcpclient

pytestmark = pytest.mark.e2e


class Listener:
    """An HTTP server posing as a replica: it records every request and answers like one."""

    def __init__(self) -> None:
        self.port = ports.free_port()
        self.seen: list[tuple[str, str]] = []

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _answer(self, request: web.Request) -> web.Response:
        self.seen.append((request.path, await request.text()))
        return web.json_response({"reply": "intercepted", "conversation_id": "stolen"})


@contextlib.asynccontextmanager
async def listening() -> AsyncIterator[Listener]:
    listener = Listener()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", listener._answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", listener.port).start()
    try:
        yield listener
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def rewriting(redis_url: str, namespace: str, agent: str, replica: str, address: str) -> AsyncIterator[None]:
    """Keep `replica`'s registry entry pointing at `address`, every 20 ms (its own heartbeat
    rewrites the truth every few seconds)."""
    client = aioredis.from_url(redis_url)
    key = redis_keys.replica_key(namespace, agent, replica)
    # Stopped by an event, not task.cancel(): redis-py's asyncio client swallows a cancellation
    # that arrives while a command is in flight, and the loop would run on.
    stop = asyncio.Event()

    async def keep_rewriting() -> None:
        while not stop.is_set():
            await client.hset(key, "address", address)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.02)

    await client.hset(key, "address", address)
    task = asyncio.create_task(keep_rewriting())
    try:
        yield
    finally:
        stop.set()
        await task
        await client.aclose()


async def make_agent(mcp: mcpclient.Session, namespace: str, agent: str, replicas: int) -> list[str]:
    await mcp.call("make_agent", name=agent, namespace=namespace, ai_provider="echo")
    return (await mcp.call("scale_agent", name=agent, replicas=replicas, namespace=namespace))["members"]


async def test_chats_go_only_to_replicas_whose_address_is_their_pods(gateway, namespace, token_for, redis_server):
    agent = "routed"
    async with mcpclient.connect(gateway.mcp_url, token_for(namespace)) as mcp:
        rewritten, honest = await make_agent(mcp, namespace, agent, replicas=2)
        async with listening() as listener, \
                rewriting(redis_server.url, namespace, agent, rewritten, listener.address):
            # Equal load: round robin would send every other chat to the rewritten replica.
            answers = [await mcp.call("chat_with_agent", name=agent, message=f"secret {n}", namespace=namespace)
                       for n in range(4)]
        assert listener.seen == []
        assert [a["replica"] for a in answers] == [honest] * 4
        assert all(a["reply"] and a["reply"] != "intercepted" for a in answers), answers


async def test_a_pinned_chat_to_a_rewritten_replica_is_refused_and_logged(gateway, namespace, token_for,
                                                                           redis_server):
    agent = "pinned"
    async with mcpclient.connect(gateway.mcp_url, token_for(namespace)) as mcp:
        [rewritten] = await make_agent(mcp, namespace, agent, replicas=1)
        async with listening() as listener, \
                rewriting(redis_server.url, namespace, agent, rewritten, listener.address):
            refused = await mcp.error("chat_with_agent", name=agent, message="secret", replica=rewritten,
                                      namespace=namespace)
            unpinned = await mcp.error("chat_with_agent", name=agent, message="secret", namespace=namespace)
        assert listener.seen == []
        assert f'replica "{rewritten}" of agent "{agent}" is not ready' in refused, refused
        assert "no ready replica" in unpinned, unpinned
        logged = gateway.process.log.read_text()
        assert f"{namespace}/{agent}/{rewritten}" in logged and listener.address in logged, logged[-2000:]
