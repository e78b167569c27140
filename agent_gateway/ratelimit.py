"""Per-caller rate limits in Redis, shared by every gateway instance.

A fixed one-minute window per caller: `INCR` a key named after the caller and the minute, with
an expiry. Simple, and exact enough for a guard against runaway clients; the error says how
long to wait.
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from agent_api import redis_keys
from agent_gateway import errors

WINDOW_SECONDS = 60


def key(caller_key: str, window: int) -> str:
    return f"{redis_keys.PREFIX}:gateway:ratelimit:{caller_key}:{window}"


class RateLimiter:
    def __init__(self, redis: aioredis.Redis, per_minute: int) -> None:
        self._redis = redis
        self.per_minute = per_minute

    async def hit(self, subject_key: str, now: float | None = None) -> tuple[int, int]:
        """Count one request of `subject_key` in the current window: (requests so far this
        window, seconds until the next one starts)."""
        now = time.time() if now is None else now
        window = int(now // WINDOW_SECONDS)
        name = key(subject_key, window)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, WINDOW_SECONDS * 2)
            count, _ = await pipe.execute()
        return count, int((window + 1) * WINDOW_SECONDS - now) + 1

    async def check(self, caller_key: str, caller_name: str, now: float | None = None) -> None:
        if self.per_minute <= 0:
            return
        count, wait = await self.hit(caller_key, now)
        if count > self.per_minute:
            raise errors.GatewayError(
                f"rate limit exceeded: {caller_name} made {count} tool calls this minute; the limit is "
                f"{self.per_minute} per minute per caller; retry in {wait}s", code="rate_limited",
                retry_after_seconds=wait)
