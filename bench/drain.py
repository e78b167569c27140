"""drain: how fast real replicas empty a backlog of due fires, next to pgqueuer doing the same.

Our side is the whole runtime path: 1, 2 and 5 `Scheduler`s (each its own pool, its loops
running) drain N due single-mode fires of a no-op python function (`bench.noop:noop`): claim,
run row, function, fenced completion, lane bookkeeping, run finished. pgqueuer's side is N
no-op jobs drained by as many `QueueManager`s, each on its own asyncpg connection through
pgqueuer's `AsyncpgDriver`, at pgqueuer's defaults (batch size 10, no concurrency cap,
`mode=drain`). Both run on one durable PostgreSQL (separate databases), alternating which
goes first, repeated; a rate is N over the time from starting the workers (connections
included) to the last completion written, both read on the database clock. Every round
checks that each fire ran exactly once (runs table) and each job completed once (pgqueuer_log).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import asyncpg
from pgqueuer import AsyncpgDriver, Queries, QueueManager
from pgqueuer.domain.types import QueueExecutionMode

from agent_api.db import cluster_store, queries
from agent_runtime import planner, spec
from bench import environment, replicas
from bench.environment import SQL

NAMESPACE, CLUSTER, SCHEDULE, FUNCTION = "bench", "drain", "drain", "noop"
# The API's ceiling (agent_api.models.Limits.max_concurrent_runs), so the cap never throttles.
MAX_CONCURRENT_RUNS = 256
PGQUEUER_BATCH = 10  # pgqueuer's default `QueueManager.run(batch_size=...)`
ENQUEUE_CHUNK = 5000
STALL_SECONDS = 120.0  # a drain with no progress for this long is recorded as stalled
POLL_SECONDS = 0.2


def runtime_spec() -> dict[str, Any]:
    """One schedule that never falls due by itself (yearly); its fires are inserted by hand.
    Overlap allowed so every fire is claimable at once; a day of grace so none counts as missed."""
    return {
        "replicas": 1,
        "functions": [{"name": FUNCTION, "python": {"entrypoint": "bench.noop:noop"}}],
        "schedules": [{"name": SCHEDULE, "function": FUNCTION, "cron": "0 0 1 1 *",
                       "timezone": "UTC", "mode": "single", "allowOverlap": True,
                       "missedFireGraceSeconds": 86400}],
        "limits": {"maxConcurrentRuns": MAX_CONCURRENT_RUNS},
    }


async def seed_due_fires(conn: asyncpg.Connection, count: int) -> None:
    """Make `count` single-mode fires of the drain schedule due now, as the planner would have
    inserted them: the one place to adapt when the fires table changes. Fire times are one
    microsecond apart, ending a second ago."""
    schedule = spec.parse(1, runtime_spec()).schedules[0]
    now = await conn.fetchval(SQL["ClockNow"])
    first = now - dt.timedelta(seconds=1, microseconds=count)
    times = [first + dt.timedelta(microseconds=i) for i in range(count)]
    grace = dt.timedelta(seconds=schedule.missed_fire_grace_seconds)
    await conn.execute(
        queries.SQL["InsertFires"], NAMESPACE, CLUSTER, [SCHEDULE] * count, [""] * count,
        ["single"] * count, [FUNCTION] * count, [not schedule.allow_overlap] * count,
        ["{}"] * count, [3] * count, times, [t + grace for t in times],
        [planner.keep_late(schedule)] * count, [schedule.definition_hash()] * count)
    await conn.execute(SQL["VacuumFires"])


async def drain_runtime(url: str, workers: int, fires: int) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(SQL["ClearSchedulingTables"])
        await seed_due_fires(conn, fires)
        began = await conn.fetchval(SQL["ClockNow"])
        started = await replicas.start_replicas(
            url, [f"r{i}" for i in range(workers)], namespace=NAMESPACE, cluster=CLUSTER)
        try:
            finished = await _wait_until(conn, SQL["FinishedRuns"], fires, NAMESPACE, CLUSTER)
        finally:
            await replicas.stop_replicas(started)
        outcome = await conn.fetchrow(SQL["DrainOutcome"], NAMESPACE, CLUSTER)
    finally:
        await conn.close()
    exactly_once = (outcome["fires"] == outcome["fires_succeeded"] == outcome["runs"]
                    == outcome["fires_with_a_succeeded_run"] == fires)
    seconds = _elapsed(began, outcome["last_finished"])
    return {"per_second": fires / seconds if finished else None, "seconds": seconds,
            "completed": finished, "exactly_once": exactly_once, **dict(outcome)}


async def drain_pgqueuer(url: str, workers: int, jobs: int, batch_size: int) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(SQL["PgqueuerReset"])
        enqueuer = Queries(AsyncpgDriver(conn))
        for start in range(0, jobs, ENQUEUE_CHUNK):
            size = min(ENQUEUE_CHUNK, jobs - start)
            await enqueuer.enqueue([FUNCTION] * size, [None] * size, [0] * size)
        await conn.execute(SQL["PgqueuerVacuum"])
        began = await conn.fetchval(SQL["ClockNow"])
        managers: list[QueueManager] = []
        connections: list[asyncpg.Connection] = []
        tasks: list[asyncio.Task[None]] = []
        try:
            for _ in range(workers):
                worker_conn = await asyncpg.connect(url)
                connections.append(worker_conn)
                manager = QueueManager(Queries(AsyncpgDriver(worker_conn)))
                manager.entrypoint(FUNCTION)(_pgqueuer_noop)
                managers.append(manager)
                tasks.append(asyncio.create_task(manager.run(
                    batch_size=batch_size, mode=QueueExecutionMode.drain)))
            finished = await _wait_until(conn, SQL["PgqueuerSucceeded"], jobs)
        finally:
            for manager in managers:
                manager.shutdown.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            for worker_conn in connections:
                await worker_conn.close()
        outcome = await conn.fetchrow(SQL["PgqueuerOutcome"])
    finally:
        await conn.close()
    exactly_once = (outcome["successful"] == outcome["distinct_jobs"] == jobs
                    and outcome["failed"] == outcome["left_in_queue"] == 0)
    seconds = _elapsed(began, outcome["last_finished"])
    return {"per_second": jobs / seconds if finished else None, "seconds": seconds,
            "completed": finished, "exactly_once": exactly_once, **dict(outcome)}


def _elapsed(began: dt.datetime, last_finished: dt.datetime | None) -> float | None:
    return None if last_finished is None else (last_finished - began).total_seconds()


async def _pgqueuer_noop(job: object) -> None:
    return None


async def _wait_until(conn: asyncpg.Connection, count_sql: str, target: int, *args: Any) -> bool:
    """Poll a count until it reaches `target`; False if it stops moving for STALL_SECONDS."""
    last, last_change = -1, time.monotonic()
    while True:
        done = await conn.fetchval(count_sql, *args)
        if done >= target:
            return True
        if done != last:
            last, last_change = done, time.monotonic()
        elif time.monotonic() - last_change > STALL_SECONDS:
            return False
        await asyncio.sleep(POLL_SECONDS)


async def run(bench: environment.Bench) -> dict[str, Any]:
    fires = 1000 if bench.quick else 20_000
    levels = [1, 5] if bench.quick else [1, 2, 5]
    repeats = 1 if bench.quick else 3
    runtime_url = await bench.fresh_database("bench_drain_runtime")
    pgqueuer_url = await bench.fresh_database("bench_drain_pgqueuer", migrated=False)
    conn = await asyncpg.connect(runtime_url)
    try:
        await cluster_store.write_config(conn, NAMESPACE, CLUSTER, 1, runtime_spec())
    finally:
        await conn.close()
    conn = await asyncpg.connect(pgqueuer_url)
    try:
        await Queries(AsyncpgDriver(conn)).install()
    finally:
        await conn.close()

    rows = []
    for workers in levels:
        rounds: list[dict[str, Any]] = []
        for repeat in range(repeats):
            # Alternate who goes first, so a drift in the machine's speed hits both alike.
            order = ["runtime", "pgqueuer"] if repeat % 2 == 0 else ["pgqueuer", "runtime"]
            measured = {}
            for contender in order:
                if contender == "runtime":
                    measured[contender] = await drain_runtime(runtime_url, workers, fires)
                else:
                    measured[contender] = await drain_pgqueuer(pgqueuer_url, workers, fires,
                                                               PGQUEUER_BATCH)
                print(f"  drain workers={workers} round={repeat + 1} {contender}: "
                      f"{_rate(measured[contender])}", flush=True)
            rounds.append(measured)
        rows.append(_summary(workers, rounds))
    return {
        "benchmark": "drain",
        "command": bench.command("drain"),
        "parameters": {"fires": fires, "workers": levels, "repeats": repeats,
                       "runtime_max_concurrent_runs": MAX_CONCURRENT_RUNS,
                       "pgqueuer_batch_size": PGQUEUER_BATCH,
                       "pgqueuer_max_concurrent_tasks": None,
                       "function": "bench.noop:noop (async, returns None)"},
        "rows": rows,
    }


def _rate(measured: dict[str, Any]) -> str:
    rate = measured["per_second"]
    check = "exactly once" if measured["exactly_once"] else "NOT EXACTLY ONCE"
    return f"{rate:,.0f}/s ({check})" if rate else f"incomplete ({check})"


def _summary(workers: int, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    ours = [r["runtime"]["per_second"] for r in rounds]
    theirs = [r["pgqueuer"]["per_second"] for r in rounds]
    complete = all(ours) and all(theirs)
    return {
        "workers": workers,
        "runtime_per_second": ours,
        "pgqueuer_per_second": theirs,
        "runtime_median": environment.median(ours) if all(ours) else None,
        "pgqueuer_median": environment.median(theirs) if all(theirs) else None,
        # Each round's pair ran back to back; the median of the paired ratios is the figure.
        "ratio_median": environment.median([a / b for a, b in zip(ours, theirs, strict=True)])
        if complete else None,
        "exactly_once": all(r[c]["exactly_once"] for r in rounds for c in r),
        "rounds": rounds,
    }
