"""What the gateway reads and writes in PostgreSQL: agents' key-value state and run history.

The same rules as the runtime's state store: a value and a scope have size limits (from the
agent's spec.limits), writes to one scope are serialised, and an archived replica's state is
readable but never written (the `MemberArchived` row lock makes a write and the archiving
exclusive).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import asyncpg

from agent_api.db import cluster_store, queries
from agent_gateway import errors

SHARED = ""  # the cluster-shared scope


class Store:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def connect(cls, database_url: str) -> Store:
        return cls(await asyncpg.create_pool(database_url, min_size=1, max_size=8))

    async def close(self) -> None:
        await self._pool.close()

    async def members(self, namespace: str, cluster: str) -> list[asyncpg.Record]:
        return await self._pool.fetch(queries.SQL["ClusterMembers"], namespace, cluster)

    async def archived_page(self, namespace: str, cluster: str, limit: int,
                            after: tuple[int, str] | None) -> tuple[list[cluster_store.ArchivedMember], int]:
        """One page of the cluster's archived members, newest first, and how many there are."""
        page = await cluster_store.archived_page(self._pool, namespace, cluster, limit, after)
        return page, await cluster_store.archived_count(self._pool, namespace, cluster)

    async def get(self, namespace: str, cluster: str, scope: str, key: str) -> tuple[bool, Any]:
        raw = await self._pool.fetchval(queries.SQL["GetState"], namespace, cluster, scope, key)
        return (False, None) if raw is None else (True, json.loads(raw))

    async def keys(self, namespace: str, cluster: str, scope: str) -> list[asyncpg.Record]:
        return await self._pool.fetch(queries.SQL["ListStateKeys"], namespace, cluster, scope)

    async def put(self, namespace: str, cluster: str, scope: str, key: str, value: Any,
                  max_value_bytes: int, max_total_bytes: int) -> int:
        encoded = json.dumps(value, separators=(",", ":"))
        size = len(encoded.encode())
        where = "the cluster-shared state" if scope == SHARED else f'the state of replica "{scope}"'
        if size > max_value_bytes:
            raise errors.GatewayError(
                f"value for key {key!r} in {where} is {size} bytes; the limit is {max_value_bytes} bytes "
                "per value (spec.limits.stateMaxValueBytes)", code="invalid")
        async with self._pool.acquire() as conn, conn.transaction():
            await self._check_writable(conn, namespace, cluster, scope)
            await conn.execute(queries.SQL["LockStateScope"], namespace, cluster, scope)
            others = await conn.fetchval(queries.SQL["StateScopeBytes"], namespace, cluster, scope, key)
            if others + size > max_total_bytes:
                raise errors.GatewayError(
                    f"writing key {key!r} would make {where} {others + size} bytes; the limit is "
                    f"{max_total_bytes} bytes (spec.limits.stateMaxTotalBytes)", code="invalid")
            await conn.execute(queries.SQL["PutState"], namespace, cluster, scope, key, encoded, size)
        return size

    async def delete(self, namespace: str, cluster: str, scope: str, key: str) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            await self._check_writable(conn, namespace, cluster, scope)
            result = await conn.execute(queries.SQL["DeleteState"], namespace, cluster, scope, key)
        return result.endswith(" 1")

    async def runs(self, namespace: str, cluster: str, replica: str | None, limit: int) -> list[asyncpg.Record]:
        return await self._pool.fetch(queries.SQL["ListRuns"], namespace, cluster, replica, limit)

    async def run(self, namespace: str, cluster: str, run_id: int) -> asyncpg.Record | None:
        """One run of this agent, or None (no such run, or another agent's)."""
        return await self._pool.fetchrow(queries.SQL["GetRun"], namespace, cluster, run_id)

    @staticmethod
    async def _check_writable(conn: asyncpg.Connection, namespace: str, cluster: str, scope: str) -> None:
        if scope == SHARED:
            return
        archived = await conn.fetchval(queries.SQL["MemberArchived"], namespace, cluster, scope)
        if archived:
            raise errors.GatewayError(
                f'replica "{scope}" of agent "{cluster}" is archived: its state is kept and readable, '
                "but read-only", code="conflict")


def iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()
