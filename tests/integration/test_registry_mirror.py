"""The gateway's in-memory mirror of the replica registry (agent_gateway.routing.Registry) against
a real Redis: a warm route reads no Redis, a replica that stops heartbeating drops out at its
key's TTL even while Redis answers nothing, and one that deregisters is gone within the refresh
interval. "Redis answers nothing" is Redis' own `CLIENT PAUSE ... ALL`: every client's commands
wait, as they would behind a partition."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis
from kubernetes import client

from agent_api import redis_keys
from agent_gateway import kube, routing

NS, CLUSTER = "team", "bot"


async def register(redis: aioredis.Redis, replica: str, ttl_seconds: int) -> None:
    """As agent_runtime/registry.py heartbeats (not ready, so no pod check is involved)."""
    key = redis_keys.replica_key(NS, CLUSTER, replica)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(key, mapping={"address": f"http://10.0.0.1:8080/{replica}", "ready": "0", "in_flight": "0",
                                "ordinal": "0"})
        pipe.expire(key, ttl_seconds)
        pipe.sadd(redis_keys.replicas_set_key(NS, CLUSTER), replica)
        await pipe.execute()


def registry_on(url: str, refresh_seconds: float = 1.0) -> tuple[routing.Registry, aioredis.Redis]:
    redis = aioredis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    # Never consulted: only ready replicas have their pod checked.
    authority = routing.PodAuthority(kube.Kube(client.ApiClient()))
    return routing.Registry(redis, authority, refresh_seconds=refresh_seconds), redis


@pytest.fixture
async def redis(redis_url):
    connection = aioredis.from_url(redis_url)
    yield connection
    await connection.aclose()


async def pause(redis: aioredis.Redis, seconds: float) -> None:
    await redis.execute_command("CLIENT", "PAUSE", int(seconds * 1000), "ALL")


async def test_a_warm_route_reads_no_redis(redis, redis_url):
    registry, own = registry_on(redis_url)
    try:
        await register(redis, "ann", ttl_seconds=15)
        assert [r.name for r in await registry.live(NS, CLUSTER)] == ["ann"]
        await pause(redis, 3)  # any round trip now would wait 3 s
        live = await asyncio.wait_for(registry.live(NS, CLUSTER), 0.5)
        assert [r.name for r in live] == ["ann"]
    finally:
        await registry.close()
        await own.aclose()


async def test_a_replica_that_stops_heartbeating_drops_out_at_its_ttl_even_while_redis_is_silent(redis, redis_url):
    registry, own = registry_on(redis_url)
    try:
        await register(redis, "ann", ttl_seconds=2)
        await register(redis, "bob", ttl_seconds=15)
        assert [r.name for r in await registry.live(NS, CLUSTER)] == ["ann", "bob"]
        # No refresh and no notification can arrive: only the TTL read with the entry is left.
        await pause(redis, 4)
        await asyncio.sleep(2.2)
        live = await asyncio.wait_for(registry.live(NS, CLUSTER), 0.5)
        assert [r.name for r in live] == ["bob"]
    finally:
        await registry.close()
        await own.aclose()


async def test_a_deregistered_replica_is_gone_within_the_refresh_interval(redis, redis_url):
    registry, own = registry_on(redis_url, refresh_seconds=0.2)
    try:
        await register(redis, "ann", ttl_seconds=15)
        await register(redis, "bob", ttl_seconds=15)
        assert [r.name for r in await registry.live(NS, CLUSTER)] == ["ann", "bob"]
        async with redis.pipeline(transaction=True) as pipe:  # as the runtime deregisters
            pipe.delete(redis_keys.replica_key(NS, CLUSTER, "ann"))
            pipe.srem(redis_keys.replicas_set_key(NS, CLUSTER), "ann")
            await pipe.execute()
        deregistered = time.monotonic()
        while [r.name for r in await registry.live(NS, CLUSTER)] != ["bob"]:
            assert time.monotonic() - deregistered < 1.0, "still routed to a deregistered replica after 1 s"
            await asyncio.sleep(0.02)
    finally:
        await registry.close()
        await own.aclose()
