"""The operator's window into the runtime's database: config, membership, archiving, deletion.

The operator calls these with an asyncpg connection or pool; each call is idempotent, so a
reconcile that is retried after a crash converges to the same rows.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
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


class NamesTaken(Exception):
    """A scale-up's names were registered meanwhile by another allocation (another cluster of
    the namespace, or a second operator): nothing of the batch was registered."""


async def register_member(
    conn: Executor, namespace: str, cluster: str, replica: str, ordinal: int
) -> None:
    """A replica's own registration at start-up (idempotent; the operator registered it first)."""
    await conn.execute(queries.SQL["RegisterMember"], namespace, cluster, replica, ordinal)


async def register_members(
    conn: Executor, namespace: str, cluster: str, members: list[tuple[str, int]]
) -> None:
    """Register a scale-up's new (name, ordinal) pairs in one statement, all or none: raises
    NamesTaken, registering nothing, if any name is already taken in the namespace. Concurrent
    calls for one namespace are serialised (LockReplicaNames), so no name is registered by two.
    Idempotent for this cluster's own unarchived names (a redone allocation)."""
    if not members:
        return
    replicas, ordinals = [m[0] for m in members], [m[1] for m in members]
    async with _connection(conn) as c, c.transaction():
        await c.execute(queries.SQL["LockReplicaNames"])
        taken = await c.fetch(queries.SQL["RegisterMembers"], namespace, cluster, replicas, ordinals)
    if taken:
        raise NamesTaken(
            f"replica names {', '.join(r['replica'] for r in taken)} of AgentCluster {namespace}/{cluster} "
            "were taken meanwhile in the namespace (another cluster or a second operator allocated "
            "them); nothing was registered, the next reconcile allocates other names")


async def names_taken(conn: Executor, namespace: str, cluster: str) -> set[str]:
    """Names `cluster` may not take: every name the namespace ever had (PostgreSQL is the
    complete record; statuses keep only the newest archived members) except its own live ones.
    Its own unarchived names are left out on purpose: those not yet in its status are an
    allocation whose status write did not land, and allocating again (a pure function of the
    taken names) yields exactly them. Its live members in status are taken by the caller."""
    rows = await conn.fetch(queries.SQL["NamespaceReplicaNames"], namespace)
    return {row["replica"] for row in rows if row["cluster"] != cluster or row["archived"]}


async def next_ordinal(conn: Executor, namespace: str, cluster: str, recorded: int) -> int:
    """The ordinal the cluster's next new member gets: after `recorded` (status.nextOrdinal) and
    after every member a cluster of this name ever archived or retired here, so ordinals keep
    increasing when a cluster is recreated under the same name."""
    last = await conn.fetchval(queries.SQL["ClusterLastOrdinal"], namespace, cluster)
    return max(recorded, last + 1)


@dataclass(frozen=True)
class ArchivedMember:
    replica: str
    ordinal: int
    registered_at: dt.datetime | None
    archived_at: dt.datetime


async def newest_archived(
    conn: Executor, namespace: str, cluster: str, limit: int
) -> tuple[list[ArchivedMember], int]:
    """The newest `limit` archived members (oldest of them first) and the total archived."""
    rows = await conn.fetch(queries.SQL["NewestArchivedMembers"], namespace, cluster, limit)
    if not rows:
        return [], 0
    newest = [ArchivedMember(r["replica"], r["ordinal"], None, r["archived_at"]) for r in reversed(rows)]
    return newest, rows[0]["total"]


async def archived_page(
    conn: Executor, namespace: str, cluster: str, limit: int, after: tuple[int, str] | None
) -> list[ArchivedMember]:
    """Archived members, newest first, `limit` at most, after the keyset `after` (ordinal,
    replica) of the previous page's last row (None: from the newest)."""
    ordinal, replica = after if after is not None else (None, None)
    rows = await conn.fetch(queries.SQL["ArchivedMembersPage"], namespace, cluster, ordinal, replica, limit)
    return [ArchivedMember(r["replica"], r["ordinal"], r["registered_at"], r["archived_at"]) for r in rows]


async def archived_count(conn: Executor, namespace: str, cluster: str) -> int:
    return await conn.fetchval(queries.SQL["ArchivedMembersCount"], namespace, cluster)


async def clusters_with_live_members(conn: Executor) -> set[tuple[str, str]]:
    return {(row["namespace"], row["cluster"]) for row in await conn.fetch(queries.SQL["ClustersWithLiveMembers"])}


async def archive_cluster(conn: Executor, namespace: str, cluster: str) -> list[str]:
    """Archive every member still live (the AgentCluster is gone); returns their names."""
    names = [row["replica"] for row in await conn.fetch(queries.SQL["LiveMemberNames"], namespace, cluster)]
    await archive_members(conn, namespace, cluster, names)
    return names


async def archive_members(conn: Executor, namespace: str, cluster: str, replicas: list[str]) -> None:
    """Mark these replicas archived (state and history kept, read-only) and free what they
    held: one transaction of four statements whatever their number (a scale-down of 50 is not
    50 transactions), all or none."""
    if not replicas:
        return
    async with _connection(conn) as c, c.transaction():
        for name in ("ArchiveMembers", "ReleaseMemberLeases", "CancelMemberFires", "CloseMemberRuns"):
            await c.execute(queries.SQL[name], namespace, cluster, replicas)


async def delete_cluster_data(conn: Executor, namespace: str, cluster: str) -> None:
    """Remove everything stored for the cluster (statePolicy.whenDeleted=Delete); its replica
    names (and ordinals) stay taken in `retired_replica_names`."""
    async with _connection(conn) as c, c.transaction():
        for name in ("DeleteClusterRuns", "DeleteClusterFires", "DeleteClusterLanes",
                     "DeleteClusterState", "RetireClusterMembers", "DeleteClusterConfig"):
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
