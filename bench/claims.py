"""How fast replicas drain due fires through the real claim query, and what SKIP LOCKED buys.

Each claimer is one replica's loop on its own connection: `ClaimFires` for one fire (commit),
then `CompleteFire` (commit), until no fire is left. We pre-insert the fires, then drain them with
1, 2, 4 and 8 concurrent claimers, once with the shipped query (`FOR UPDATE SKIP LOCKED`)
and once with the same query using a plain `FOR UPDATE`, side by side in one run on the
benchmarks' durable PostgreSQL; rates are medians of the rounds. Every run also checks the
promise: each fire claimed exactly once.

This calls the runtime's claim and completion queries directly, without the scheduler around
them (`drain` measures the whole path). Run: `make bench` (or `python -m bench --only claims`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg

from agent_api.db import queries
from bench import drain, environment
from bench.environment import SQL

NAMESPACE, CLUSTER = drain.NAMESPACE, drain.CLUSTER  # the fires `drain.seed_due_fires` makes
CLAIM_SKIP_LOCKED = queries.SQL["ClaimFires"]
CLAIM_BLOCKING = CLAIM_SKIP_LOCKED.replace("FOR UPDATE SKIP LOCKED", "FOR UPDATE")
assert CLAIM_BLOCKING != CLAIM_SKIP_LOCKED
BATCH = 1  # one fire per claim: the round trip per fire is what the lock clause changes
LEASE_SECONDS = 30.0


async def claimer(pool: asyncpg.Pool, claim_sql: str, name: str, claimed: list[int]) -> None:
    empty_in_a_row = 0
    async with pool.acquire() as conn:
        while empty_in_a_row < 3:
            rows = await conn.fetch(claim_sql, NAMESPACE, CLUSTER, name, BATCH, BATCH + 1, [],
                                    LEASE_SECONDS, None)
            if not rows:
                # With a plain FOR UPDATE a claimer can come back empty-handed while fires
                # remain (it waited on a row another claimer took); look again.
                remaining = await conn.fetchval(SQL["AvailableFires"], NAMESPACE, CLUSTER)
                empty_in_a_row = empty_in_a_row + 1 if remaining == 0 else 0
                continue
            for row in rows:
                claimed.append(row["id"])
                await conn.fetchrow(queries.SQL["CompleteFire"], row["id"], row["lease_token"],
                                    name, "succeeded", None, None, row["run_id"], "continue",
                                    3, 30.0, "rejected", None)


async def drain_with(pool: asyncpg.Pool, claim_sql: str, concurrency: int,
                     fires: int, setup: asyncpg.Pool | None = None) -> tuple[float, bool]:
    """(fires per second, whether every fire was claimed exactly once); the fires are
    seeded through `setup` (default: `pool`), the claimers use `pool`."""
    async with (setup or pool).acquire() as conn:
        await conn.execute(SQL["ClearSchedulingTables"])
        await drain.seed_due_fires(conn, fires)
    claimed: list[int] = []
    began = time.perf_counter()
    await asyncio.gather(*(claimer(pool, claim_sql, f"r{i}", claimed) for i in range(concurrency)))
    elapsed = time.perf_counter() - began
    return fires / elapsed, len(claimed) == fires == len(set(claimed))


async def run(bench: environment.Bench) -> dict[str, Any]:
    fires = 500 if bench.quick else 2000
    levels = [1, 4] if bench.quick else [1, 2, 4, 8]
    rounds = 1 if bench.quick else 3
    url = await bench.fresh_database("bench_claims")
    pool = await asyncpg.create_pool(url, min_size=max(levels), max_size=max(levels))
    try:
        rows = []
        for level in levels:
            skip: list[float] = []
            block: list[float] = []
            exactly_once = True
            # Interleave the variants so machine noise hits both alike.
            for _ in range(rounds):
                for claim_sql, rates in ((CLAIM_SKIP_LOCKED, skip), (CLAIM_BLOCKING, block)):
                    rate, once = await drain_with(pool, claim_sql, level, fires)
                    rates.append(rate)
                    exactly_once = exactly_once and once
            rows.append({"claimers": level, "skip_locked_per_second": skip,
                         "for_update_per_second": block,
                         "skip_locked_median": environment.median(skip),
                         "for_update_median": environment.median(block),
                         "ratio_median": environment.median(
                             [a / b for a, b in zip(skip, block, strict=True)]),
                         "exactly_once": exactly_once})
            print(f"  claims {level} claimers: SKIP LOCKED {rows[-1]['skip_locked_median']:,.0f}/s, "
                  f"FOR UPDATE {rows[-1]['for_update_median']:,.0f}/s", flush=True)
    finally:
        await pool.close()
    return {"benchmark": "claims", "command": bench.command("claims"),
            "parameters": {"fires": fires, "claimers": levels, "rounds": rounds,
                           "claim_batch": BATCH},
            "rows": rows}
