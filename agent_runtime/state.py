"""Key-value state (JSONB) per replica, plus a scope shared by the whole cluster.

Size limits come from the spec's limits (per tier); going past them raises `StateTooLarge`
with the numbers in the message. An archived replica's state is kept but read-only.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from agent_api.db import queries

SHARED = ""  # the scope name of cluster-shared state


class StateError(Exception):
    """A state write the runtime refuses, with a message meant for the user."""


class StateTooLarge(StateError):
    pass


class StateReadOnly(StateError):
    pass


class StaleLease(StateError):
    """A scheduled run's write after its lease was taken over (or expired and rescued)."""


class StateStore:
    def __init__(self, pool: asyncpg.Pool, namespace: str, cluster: str, replica: str,
                 max_value_bytes: int, max_total_bytes: int,
                 fence: tuple[int, int] | None = None) -> None:
        self._pool = pool
        self._namespace = namespace
        self._cluster = cluster
        self.replica = replica
        self.max_value_bytes = max_value_bytes
        self.max_total_bytes = max_total_bytes
        self.fence = fence  # (fire id, lease token) of the scheduled run writing, if any

    def _scope(self, shared: bool) -> str:
        return SHARED if shared else self.replica

    async def get(self, key: str, shared: bool = False) -> Any:
        raw = await self._pool.fetchval(queries.SQL["GetState"], self._namespace, self._cluster,
                                        self._scope(shared), key)
        return None if raw is None else json.loads(raw)

    async def items(self, shared: bool = False) -> dict[str, Any]:
        rows = await self._pool.fetch(queries.SQL["ListState"], self._namespace, self._cluster,
                                      self._scope(shared))
        return {row["key"]: json.loads(row["value"]) for row in rows}

    async def put(self, key: str, value: Any, shared: bool = False) -> None:
        encoded = json.dumps(value, separators=(",", ":"))
        size = len(encoded.encode())
        scope = self._scope(shared)
        where = "cluster-shared state" if shared else f"state of replica {self.replica!r}"
        if size > self.max_value_bytes:
            raise StateTooLarge(
                f"value for key {key!r} in the {where} is {size} bytes; the limit is "
                f"{self.max_value_bytes} bytes per value (spec.limits.stateMaxValueBytes)"
            )
        async with self._pool.acquire() as conn, conn.transaction():
            await self._check_writable(conn)
            await conn.execute(queries.SQL["LockStateScope"], self._namespace, self._cluster, scope)
            others = await conn.fetchval(queries.SQL["StateScopeBytes"], self._namespace,
                                         self._cluster, scope, key)
            if others + size > self.max_total_bytes:
                raise StateTooLarge(
                    f"writing key {key!r} would make the {where} {others + size} bytes; the "
                    f"limit is {self.max_total_bytes} bytes (spec.limits.stateMaxTotalBytes)"
                )
            await conn.execute(queries.SQL["PutState"], self._namespace, self._cluster, scope,
                               key, encoded, size)

    async def delete(self, key: str, shared: bool = False) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await self._check_writable(conn)
            await conn.execute(queries.SQL["DeleteState"], self._namespace, self._cluster,
                               self._scope(shared), key)

    async def _check_writable(self, conn: asyncpg.Connection) -> None:
        if self.fence is not None:
            held = await conn.fetchval(queries.SQL["HoldLeaseForWrite"], *self.fence)
            if not held:
                raise StaleLease(
                    f"state write refused: this run's lease (fire {self.fence[0]}, token "
                    f"{self.fence[1]}) is no longer valid; another replica owns the fire"
                )
        archived = await conn.fetchval(queries.SQL["MemberArchived"], self._namespace,
                                       self._cluster, self.replica)
        if archived:
            raise StateReadOnly(
                f"replica {self.replica!r} is archived: its state is kept but read-only"
            )
