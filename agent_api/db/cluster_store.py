"""The operator's window into the runtime's database: config, membership, archiving, deletion.

The operator calls these with an asyncpg connection or pool; each call is idempotent, so a
reconcile that is retried after a crash converges to the same rows.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from agent_api.db import queries

Executor = asyncpg.Connection | asyncpg.Pool


async def write_config(
    conn: Executor, namespace: str, cluster: str, generation: int, spec: dict[str, Any]
) -> bool:
    """Store the AgentCluster spec if `generation` is newer; wake the runtimes if it wrote."""
    async with _connection(conn) as c, c.transaction():
        written = await c.fetchval(
            queries.SQL["UpsertConfig"], namespace, cluster, generation, json.dumps(spec)
        )
        if written is None:
            return False
        await c.execute(queries.SQL["NotifyConfig"], f"{namespace}/{cluster}")
        return True


async def register_member(
    conn: Executor, namespace: str, cluster: str, replica: str, ordinal: int
) -> None:
    await conn.execute(queries.SQL["RegisterMember"], namespace, cluster, replica, ordinal)


async def names_taken(conn: Executor, namespace: str, cluster: str) -> set[str]:
    """Names `cluster` may not take: every name of every other cluster in the namespace, and
    its own archived ones. Its own unarchived names are left out on purpose: those not yet in
    its status are an allocation whose status write did not land, and allocating again (a pure
    function of the taken names) yields exactly them."""
    rows = await conn.fetch(queries.SQL["NamespaceReplicaNames"], namespace)
    return {row["replica"] for row in rows if row["cluster"] != cluster or row["archived"]}


async def clusters_with_live_members(conn: Executor) -> set[tuple[str, str]]:
    return {(row["namespace"], row["cluster"]) for row in await conn.fetch(queries.SQL["ClustersWithLiveMembers"])}


async def archive_cluster(conn: Executor, namespace: str, cluster: str) -> list[str]:
    """Archive every member still live (the AgentCluster is gone); returns their names."""
    names = [row["replica"] for row in await conn.fetch(queries.SQL["LiveMemberNames"], namespace, cluster)]
    for name in names:
        await archive_member(conn, namespace, cluster, name)
    return names


async def archive_member(conn: Executor, namespace: str, cluster: str, replica: str) -> None:
    """Mark the replica archived (state and history kept, read-only) and free its leases."""
    async with _connection(conn) as c, c.transaction():
        await c.execute(queries.SQL["ArchiveMember"], namespace, cluster, replica)
        await c.execute(queries.SQL["ReleaseMemberLeases"], namespace, cluster, replica)
        await c.execute(queries.SQL["CancelMemberFires"], namespace, cluster, replica)
        await c.execute(queries.SQL["CloseMemberRuns"], namespace, cluster, replica)


async def delete_cluster_data(conn: Executor, namespace: str, cluster: str) -> None:
    """Remove everything stored for the cluster (statePolicy.whenDeleted=Delete)."""
    async with _connection(conn) as c, c.transaction():
        for name in ("DeleteClusterRuns", "DeleteClusterFires", "DeleteClusterLanes",
                     "DeleteClusterState", "DeleteClusterMembers", "DeleteClusterConfig"):
            await c.execute(queries.SQL[name], namespace, cluster)


class _connection:
    """A connection from either a pool (acquired for the block) or a bare connection."""

    def __init__(self, conn: Executor) -> None:
        self._conn = conn
        self._acquired: Any = None

    async def __aenter__(self) -> asyncpg.Connection:
        if isinstance(self._conn, asyncpg.Pool):
            self._acquired = self._conn.acquire()
            return await self._acquired.__aenter__()
        return self._conn

    async def __aexit__(self, *exc: object) -> None:
        if self._acquired is not None:
            await self._acquired.__aexit__(*exc)
