"""Operations on the `fires` table: peek, claim, renew, complete, release (all fenced by token).

The SQL and its concurrency reasoning live in agent_api/db/queries/fires.sql; this module
turns rows into typed values. Every call is one statement that commits at once: no
transaction spans a run.

Cost of one fire on the hot path: one `ClaimFires` (shared by a whole batch; it writes the
run rows too), one `CompleteFire` (fire, run and lane in one statement), and a share of the
batched `RenewLeases` when the run outlives a third of its lease. An idle replica runs only
the read-only `PeekWork`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from agent_api.db import queries

Executor = asyncpg.Connection | asyncpg.Pool
# Candidates a claim looks at beyond its batch: fires of busy exclusive lanes are skipped or
# wait, and must not crowd the claimable ones out of a small batch.
CLAIM_SCAN_EXTRA = 16


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
    run_id: int
    owner: str

    @property
    def lane(self) -> str:
        return self.replica

    @property
    def idempotency_key(self) -> str:
        return f"{self.schedule}:{self.fire_time.isoformat()}"


@dataclass(frozen=True)
class Peek:
    now: dt.datetime
    next_due: dt.datetime | None
    next_late: dt.datetime | None
    next_expiry: dt.datetime | None

    @property
    def claimable(self) -> bool:
        return any(t is not None and t <= self.now for t in (self.next_due, self.next_expiry))

    @property
    def late(self) -> bool:
        return self.next_late is not None and self.next_late < self.now

    @property
    def expired(self) -> bool:
        return self.next_expiry is not None and self.next_expiry <= self.now


@dataclass(frozen=True)
class FailurePolicy:
    action: str
    max_consecutive_failures: int
    backoff_seconds: float


@dataclass(frozen=True)
class Completion:
    verdict: str  # 'accepted' | 'already' (a retry of a committed completion) | 'rejected'
    consecutive_failures: int | None
    disabled_at: dt.datetime | None
    backoff_until: dt.datetime | None

    @property
    def rules_out_fires(self) -> bool:
        """The failure policy now disables the lane or backs it off (CancelRuledOutFires)."""
        return self.verdict == "accepted" and (self.disabled_at is not None
                                               or self.backoff_until is not None)

    @property
    def accepted(self) -> bool:
        return self.verdict != "rejected"


async def peek(conn: Executor, namespace: str, cluster: str, replica: str,
               running: Sequence[int], now: dt.datetime | None) -> Peek:
    row = await conn.fetchrow(queries.SQL["PeekWork"], namespace, cluster, replica,
                              list(running), now)
    return Peek(row["now"], row["next_due"], row["next_late"], row["next_expiry"])


async def claim(conn: Executor, namespace: str, cluster: str, replica: str, limit: int,
                running: Sequence[int], lease_seconds: float,
                now: dt.datetime | None) -> list[Claim]:
    """Claim up to `limit` due fires (expired leases first), never one in `running`."""
    try:
        rows = await conn.fetch(queries.SQL["ClaimFires"], namespace, cluster, replica, limit,
                                limit + CLAIM_SCAN_EXTRA, list(running), lease_seconds, now)
    except asyncpg.UniqueViolationError:
        # Another replica started a run of the same exclusive schedule a moment ago; the
        # whole statement rolled back, so nothing was claimed. The next pass sees its run.
        return []
    return [Claim(id=row["id"], schedule=row["schedule"], fire_time=row["fire_time"],
                  replica=row["replica"], mode=row["mode"], function=row["function"],
                  payload=json.loads(row["payload"]), attempt=row["attempt"],
                  lease_token=row["lease_token"], run_id=row["run_id"], owner=replica)
            for row in rows]


async def renew(conn: Executor, leases: Sequence[tuple[int, int]], owner: str,
                lease_seconds: float, now: dt.datetime | None) -> set[int]:
    """Extend the given live (fire id, token) leases; return the ids still held."""
    if not leases:
        return set()
    rows = await conn.fetch(queries.SQL["RenewLeases"], [i for i, _ in leases],
                            [t for _, t in leases], owner, lease_seconds, now)
    return {row["id"] for row in rows}


def complete_args(fire: Claim, status: str, error: str | None, output: str | None,
                  policy: FailurePolicy, now: dt.datetime | None) -> tuple:
    """The arguments of one `CompleteFire` (also batched: agent_runtime.completions)."""
    rejected = (f"completion rejected: lease token {fire.lease_token} is stale; another "
                f"replica took the fire over (this run's outcome was {status})")
    return (fire.id, fire.lease_token, fire.owner, status, error, output, fire.run_id,
            policy.action, policy.max_consecutive_failures, policy.backoff_seconds, rejected,
            now)


def completion_of(row: asyncpg.Record) -> Completion:
    return Completion(row["verdict"], row["consecutive_failures"], row["disabled_at"],
                      row["backoff_until"])


async def complete(conn: Executor, fire: Claim, status: str, error: str | None,
                   output: str | None, policy: FailurePolicy, now: dt.datetime | None,
                   ) -> Completion:
    """Finish the fire, its run and its lane's failure count, fenced by the lease token."""
    row = await conn.fetchrow(queries.SQL["CompleteFire"],
                              *complete_args(fire, status, error, output, policy, now))
    return completion_of(row)


async def cancel_ruled_out(conn: Executor, namespace: str, cluster: str, fire: Claim,
                           done: Completion, now: dt.datetime | None) -> int:
    rows = await conn.fetch(queries.SQL["CancelRuledOutFires"], namespace, cluster,
                            fire.schedule, fire.lane, done.disabled_at is not None,
                            done.backoff_until, now)
    return len(rows)


async def release(conn: Executor, fire: Claim, count_attempt: bool, error: str) -> bool:
    """Hand the fire back and close its run row; False when the token was already stale."""
    row = await conn.fetchrow(queries.SQL["ReleaseFire"], fire.id, fire.lease_token,
                              fire.owner, count_attempt, fire.run_id, error)
    return row["released"] > 0


async def fail_abandoned(conn: Executor, namespace: str, cluster: str,
                         now: dt.datetime | None) -> int:
    rows = await conn.fetch(queries.SQL["FailAbandonedFires"], namespace, cluster, now)
    return len(rows)


async def cancel_stale(conn: Executor, namespace: str, cluster: str,
                       current: Sequence[tuple[str, str]]) -> int:
    """Cancel available fires whose (schedule, definition) is not in `current`."""
    rows = await conn.fetch(queries.SQL["CancelStaleFires"], namespace, cluster,
                            [s for s, _ in current], [h for _, h in current])
    return len(rows)
