"""Which replica gets a chat message or a webhook delivery.

Without a pinned replica: a live, ready replica from the Redis registry, least in flight first
(the replica's own heartbeat count plus what this gateway has sent it and not heard back
from), ties broken round-robin with a counter in Redis so several gateways share the turn.
With a pinned replica: exactly that one, or an error that says why not (archived, unknown,
not ready) and lists the live ones. The registry is a hint; the AgentCluster's status is the
truth about who is a member.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import redis.asyncio as aioredis

from agent_api import redis_keys
from agent_gateway import errors


@dataclass(frozen=True)
class Live:
    """A replica as the registry shows it."""

    name: str
    address: str
    ready: bool
    in_flight: int
    ordinal: int


def choose(candidates: list[Live], turn: int) -> Live | None:
    """The ready replica with the fewest runs in flight; among equals, the `turn`-th by name."""
    ready = [c for c in candidates if c.ready]
    if not ready:
        return None
    least = min(c.in_flight for c in ready)
    ties = sorted((c for c in ready if c.in_flight == least), key=lambda c: c.name)
    return ties[turn % len(ties)]


def pinned(agent: dict, replica: str, live: list[Live]) -> Live:
    """The pinned replica if it is a live, ready member; otherwise a GatewayError saying why."""
    name = agent["metadata"]["name"]
    status = agent.get("status") or {}
    members = {m["name"]: m for m in status.get("members") or []}
    archived = {a["name"]: a for a in status.get("archived") or []}
    listing = ", ".join(sorted(members)) or "none"
    if replica in archived:
        raise errors.GatewayError(
            f'replica "{replica}" of agent "{name}" is archived (removed by scale-down at '
            f'{archived[replica].get("archivedAt")}): its state and history stay readable, but it no '
            f"longer runs or chats. Live replicas: {listing}"
        )
    if replica not in members:
        raise errors.GatewayError(f'agent "{name}" has no replica named "{replica}". Live replicas: {listing}')
    found = next((c for c in live if c.name == replica), None)
    if found is None or not found.ready:
        phase = members[replica].get("phase") or "unknown"
        raise errors.GatewayError(
            f'replica "{replica}" of agent "{name}" is not ready yet (pod phase {phase}); try again in a '
            "few seconds, or leave replica out to use any ready one"
        )
    return found


def no_ready_replica(agent: dict) -> errors.GatewayError:
    name = agent["metadata"]["name"]
    status = agent.get("status") or {}
    wanted = (agent.get("spec") or {}).get("replicas", 1)
    if wanted == 0:
        return errors.GatewayError(f'agent "{name}" has 0 replicas; scale_agent it to at least 1 first')
    return errors.GatewayError(
        f'agent "{name}" has no ready replica yet ({status.get("readyReplicas", 0)} of {wanted} ready); '
        "try again in a few seconds"
    )


class Registry:
    """Reads the replica registry the runtimes write (agent_api.redis_keys)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._outstanding: collections.Counter[tuple[str, str, str]] = collections.Counter()

    async def live(self, namespace: str, cluster: str) -> list[Live]:
        names = sorted(n.decode() if isinstance(n, bytes) else n
                       for n in await self._redis.smembers(redis_keys.replicas_set_key(namespace, cluster)))
        if not names:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(redis_keys.replica_key(namespace, cluster, name))
            hashes = await pipe.execute()
        found = []
        for name, fields in zip(names, hashes, strict=True):
            if not fields:
                continue  # expired: the replica stopped heartbeating
            value = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                     for k, v in fields.items()}
            found.append(Live(
                name=name, address=value.get("address", ""), ready=value.get("ready") == "1",
                in_flight=int(value.get("in_flight") or 0) + self._outstanding[(namespace, cluster, name)],
                ordinal=int(value.get("ordinal") or 0),
            ))
        return found

    async def pick(self, namespace: str, cluster: str, members: set[str]) -> Live | None:
        """A ready member by load and round-robin (registry entries of non-members are ignored:
        a replica being archived may still heartbeat for a moment)."""
        candidates = [c for c in await self.live(namespace, cluster) if c.name in members]
        if not any(c.ready for c in candidates):
            return None
        turn = await self._redis.incr(f"{redis_keys.PREFIX}:gateway:turn:{namespace}:{cluster}")
        return choose(candidates, int(turn))

    @contextlib.asynccontextmanager
    async def dispatching(self, namespace: str, cluster: str, replica: str) -> AsyncIterator[None]:
        """Counts a request this gateway has in flight to a replica, for the next choice."""
        key = (namespace, cluster, replica)
        self._outstanding[key] += 1
        try:
            yield
        finally:
            self._outstanding[key] -= 1
            if self._outstanding[key] <= 0:
                del self._outstanding[key]
