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
import functools
import time
from collections.abc import Awaitable, Callable, Sequence
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


async def interleaved(drains: Sequence[Callable[[], Awaitable[tuple[float, bool]]]],
                      rounds: int) -> tuple[list[list[float]], bool]:
    """Each drain `rounds` times, interleaved round by round so machine noise hits all alike:
    (the rates of each drain, whether every fire was claimed exactly once every time)."""
    rates: list[list[float]] = [[] for _ in drains]
    exactly_once = True
    for _ in range(rounds):
        for drain_once, measured in zip(drains, rates, strict=True):
            rate, once = await drain_once()
            measured.append(rate)
            exactly_once = exactly_once and once
    return rates, exactly_once


def compared(claimers: int, first: tuple[str, list[float]], second: tuple[str, list[float]],
             exactly_once: bool) -> dict[str, Any]:
    """One result row: both variants' rates and medians, and the median of first ÷ second."""
    (a_name, a), (b_name, b) = first, second
    return {"claimers": claimers, f"{a_name}_per_second": a, f"{b_name}_per_second": b,
            f"{a_name}_median": environment.median(a), f"{b_name}_median": environment.median(b),
            "ratio_median": environment.median([x / y for x, y in zip(a, b, strict=True)]),
            "exactly_once": exactly_once}


async def run(bench: environment.Bench) -> dict[str, Any]:
    fires = 500 if bench.quick else 2000
    levels = [1, 4] if bench.quick else [1, 2, 4, 8]
    rounds = 1 if bench.quick else 3
    url = await bench.fresh_database("bench_claims")
    pool = await asyncpg.create_pool(url, min_size=max(levels), max_size=max(levels))
    try:
        rows = []
        for level in levels:
            (skip, block), exactly_once = await interleaved(
                [functools.partial(drain_with, pool, sql, level, fires)
                 for sql in (CLAIM_SKIP_LOCKED, CLAIM_BLOCKING)], rounds)
            rows.append(compared(level, ("skip_locked", skip), ("for_update", block), exactly_once))
            print(f"  claims {level} claimers: SKIP LOCKED {rows[-1]['skip_locked_median']:,.0f}/s, "
                  f"FOR UPDATE {rows[-1]['for_update_median']:,.0f}/s", flush=True)
    finally:
        await pool.close()
    return {"benchmark": "claims", "command": bench.command("claims"),
            "parameters": {"fires": fires, "claimers": levels, "rounds": rounds,
                           "claim_batch": BATCH},
            "rows": rows}
