"""Operations on the `fires` table: claim, renew, complete, release (all fenced by token).

The SQL and its concurrency reasoning live in agent_api/db/queries/fires.sql; this module
turns rows into typed claims. Every call commits at once: no transaction spans a run.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import asyncpg

from agent_api.db import queries


@dataclass(frozen=True)
class Claim:
    id: int
    schedule: str
    fire_time: dt.datetime
    replica: str  # '' for single mode, the owning replica for cluster mode
    mode: str
    function: str
    payload: dict[str, Any]
    attempt: int
    lease_token: int

    @property
    def lane(self) -> str:
        return self.replica

    @property
    def idempotency_key(self) -> str:
        return f"{self.schedule}:{self.fire_time.isoformat()}"


async def claim(conn: asyncpg.Connection | asyncpg.Pool, namespace: str, cluster: str,
                replica: str, lease_seconds: float, now: dt.datetime | None) -> Claim | None:
    """Claim one due fire (expired leases first) or return None."""
    try:
        row = await conn.fetchrow(queries.SQL["ClaimFire"], namespace, cluster, replica,
                                  lease_seconds, now)
    except asyncpg.UniqueViolationError:
        # Another replica started a run of the same exclusive schedule a moment ago.
        return None
    if row is None:
        return None
    return Claim(
        id=row["id"], schedule=row["schedule"], fire_time=row["fire_time"],
        replica=row["replica"], mode=row["mode"], function=row["function"],
        payload=json.loads(row["payload"]), attempt=row["attempt"],
        lease_token=row["lease_token"],
    )


async def renew(conn: asyncpg.Connection, leases: list[tuple[int, int]], lease_seconds: float,
                now: dt.datetime | None) -> set[int]:
    """Extend the given (fire id, token) leases; return the ids still held."""
    if not leases:
        return set()
    rows = await conn.fetch(queries.SQL["RenewLeases"], [i for i, _ in leases],
                            [t for _, t in leases], lease_seconds, now)
    return {row["id"] for row in rows}


async def complete(conn: asyncpg.Connection, fire: Claim, status: str, error: str | None,
                   now: dt.datetime | None) -> bool:
    """Finish the fire; False when the token is stale (another replica took it over)."""
    row = await conn.fetchrow(queries.SQL["CompleteFire"], fire.id, fire.lease_token, status,
                              error, now)
    return row is not None


async def release(conn: asyncpg.Connection | asyncpg.Pool, fire: Claim) -> bool:
    row = await conn.fetchrow(queries.SQL["ReleaseFire"], fire.id, fire.lease_token)
    return row is not None


async def skip_overlapping(conn: asyncpg.Connection | asyncpg.Pool, namespace: str,
                           cluster: str, replica: str, now: dt.datetime | None) -> int:
    rows = await conn.fetch(queries.SQL["SkipOverlappingFires"], namespace, cluster, replica, now)
    return len(rows)


async def fail_abandoned(conn: asyncpg.Connection | asyncpg.Pool, namespace: str, cluster: str,
                         now: dt.datetime | None) -> int:
    rows = await conn.fetch(queries.SQL["FailAbandonedFires"], namespace, cluster, now)
    return len(rows)
