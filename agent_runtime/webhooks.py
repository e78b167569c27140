"""Webhook deliveries, verified by the replica that runs them: `POST /hooks/{webhook-name}`.

The gateway forwards the raw body and the signature headers; it holds no webhook secret. The
replica has the webhook's secret in its environment (`agent_api.secret_env.webhook_secret`)
and checks, in this order (each refusal says what was wrong):

1. the webhook exists in the spec (404) and its secret is in this pod's environment (503: the
   pod predates the webhook and is replaced by the operator's rollout);
2. the signature headers are well formed, the timestamp is within the tolerance window and
   the signature over timestamp, delivery id, canonical path and body matches (401;
   `agent_api.webhook_signatures`);
3. there is room for one more run (429, before the delivery id is recorded, so the sender may
   retry the same delivery);
4. the delivery id is new: `SET NX EX` on `agent_api.redis_keys.delivery_key` for twice the
   window (409 for a replay). Redis unreachable: 503, never "accept and hope": a delivery that
   cannot be checked for a replay is not run.

An id is recorded only after its signature checked out, so a forger cannot use up the id of a
real delivery; and it is forgotten again if the run then fails to start.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from agent_api import redis_keys, secret_env, webhook_signatures
from agent_runtime import config

REDIS_TIMEOUT_SECONDS = 2.0


class Unavailable(Exception):
    """Redis could not be asked whether a delivery id was seen: refuse, do not guess."""


def payload_of(body: bytes) -> dict[str, Any]:
    """The run's payload: a JSON object as is; anything else under `body`."""
    try:
        value = json.loads(body) if body else {}
    except (ValueError, UnicodeDecodeError):
        return {"body": body.decode("utf-8", errors="replace")}
    return value if isinstance(value, dict) else {"body": value}


class Deliveries:
    """Secrets from the environment and the delivery ids seen, in Redis."""

    def __init__(self, identity: config.Identity, env: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.time,
                 tolerance_seconds: int = webhook_signatures.DEFAULT_TOLERANCE_SECONDS) -> None:
        self._identity = identity
        self._env = os.environ if env is None else env
        self.clock = clock
        self.tolerance_seconds = tolerance_seconds
        self._redis = aioredis.from_url(identity.redis_url, socket_timeout=REDIS_TIMEOUT_SECONDS,
                                        socket_connect_timeout=REDIS_TIMEOUT_SECONDS)

    async def close(self) -> None:
        await self._redis.aclose()

    def secret(self, webhook: str) -> bytes | None:
        value = self._env.get(secret_env.webhook_secret(webhook))
        return value.encode() if value else None

    def path(self, webhook_path: str) -> str:
        """The canonical path a delivery to this webhook is signed for."""
        return webhook_signatures.hook_path(self._identity.namespace, self._identity.cluster, webhook_path)

    def _key(self, delivery: str) -> str:
        return redis_keys.delivery_key(self._identity.namespace, self._identity.cluster, delivery)

    async def record(self, delivery: str) -> str | None:
        """Record a delivery id; None when it is new, else what was recorded when it was first
        received. Kept for twice the window: a delivery signed at t is accepted until
        t + window, and it cannot have been received before t - window."""
        seen = json.dumps({"received_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                           "replica": self._identity.replica})
        key = self._key(delivery)
        try:
            if await self._redis.set(key, seen, nx=True, ex=2 * self.tolerance_seconds):
                return None
            first = await self._redis.get(key)
        except (RedisError, OSError) as error:
            raise Unavailable(
                f"cannot check the delivery id for a replay: Redis is unreachable ({type(error).__name__}: "
                f"{error}); send the delivery again later") from None
        return first.decode() if isinstance(first, bytes) else (first or "{}")

    async def forget(self, delivery: str) -> None:
        """The delivery did not run (no room, the run could not be recorded): let the sender
        retry it. Best effort: if Redis fails here, a retry is refused as a replay."""
        with contextlib.suppress(RedisError, OSError):
            await self._redis.delete(self._key(delivery))


def replay_message(delivery: str, first_seen: str) -> str:
    try:
        seen = json.loads(first_seen)
    except ValueError:
        seen = {}
    where = f" at {seen['received_at']} by replica {seen.get('replica', '?')}" if seen.get("received_at") else ""
    return (f"delivery {delivery!r} was already received{where}; a delivery is accepted once "
            f"({webhook_signatures.DELIVERY_HEADER} must be new for every event you send)")
