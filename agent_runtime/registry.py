"""Registering this replica in Redis with a TTL heartbeat, for the gateway's routing.

Redis is a directory, not a coordinator: nothing in scheduling reads it. When Redis is down
the heartbeat logs and retries; schedules keep running, and the entry reappears once Redis
is back. Key layout: agent_api/redis_keys.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from agent_api import redis_keys
from agent_runtime import config

log = logging.getLogger(__name__)


class Registry:
    def __init__(self, identity: config.Identity, address: str,
                 status: Callable[[], tuple[bool, int]],
                 heartbeat_seconds: float = redis_keys.HEARTBEAT_SECONDS,
                 ttl_seconds: int = redis_keys.REPLICA_TTL_SECONDS) -> None:
        self._identity = identity
        self._address = address
        self._status = status  # () -> (ready, in_flight)
        self._heartbeat_seconds = heartbeat_seconds
        self._ttl_seconds = ttl_seconds
        self._started_at = dt.datetime.now(dt.UTC).isoformat()
        self._client = aioredis.from_url(identity.redis_url, socket_timeout=2,
                                         socket_connect_timeout=2)
        self._key = redis_keys.replica_key(identity.namespace, identity.cluster, identity.replica)
        self._set_key = redis_keys.replicas_set_key(identity.namespace, identity.cluster)
        self.healthy = False

    async def heartbeat(self) -> None:
        ready, in_flight = self._status()
        fields = {
            "address": self._address,
            "ready": "1" if ready else "0",
            "in_flight": str(in_flight),
            "started_at": self._started_at,
            "ordinal": str(self._identity.ordinal),
            "heartbeat_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hset(self._key, mapping=fields)
            pipe.expire(self._key, self._ttl_seconds)
            pipe.sadd(self._set_key, self._identity.replica)
            await pipe.execute()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.heartbeat()
                if not self.healthy:
                    log.info("registered in Redis", extra={"redis_key": self._key})
                self.healthy = True
            except (RedisError, OSError) as error:
                if self.healthy:
                    log.warning("Redis heartbeat failed; scheduling is unaffected: %s", error)
                self.healthy = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._heartbeat_seconds)

    async def deregister(self) -> None:
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.delete(self._key)
                pipe.srem(self._set_key, self._identity.replica)
                await pipe.execute()
        except (RedisError, OSError) as error:
            log.warning("could not deregister from Redis (the entry expires on its own): %s",
                        error)
        finally:
            await self._client.aclose()
