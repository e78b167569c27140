"""idle: what replicas cost PostgreSQL when nothing is due.

N replicas of one cluster whose 20 schedules are yearly (due ~6 months away), after a
warm-up, over a measuring window: transactions/s (xact_commit + xact_rollback), rows
written/s (tup_inserted + tup_updated + tup_deleted) from `pg_stat_database`, WAL bytes/s,
the database's connections (`pg_stat_activity`) and how busy the machine's CPUs were. The
target for an idle replica is zero writes. Two sizes in one run: 5 replicas (the figure the
scheduler issue quotes) and 50.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import time
from typing import Any

import asyncpg

from agent_api.db import cluster_store
from bench import environment, replicas
from bench.environment import SQL

NAMESPACE, CLUSTER = "bench", "idle"
SAMPLE_SECONDS = 10.0


def idle_spec(schedules: int) -> dict[str, Any]:
    """`schedules` single-mode schedules that do not fall due for months."""
    month = (dt.datetime.now(dt.UTC).month + 5) % 12 + 1
    return {
        "replicas": 1,
        "functions": [{"name": "noop", "python": {"entrypoint": "bench.noop:noop"}}],
        "schedules": [{"name": f"s{i:02d}", "function": "noop", "cron": f"0 0 1 {month} *",
                       "timezone": "UTC", "mode": "single"} for i in range(schedules)],
    }


async def measure(admin_url: str, database_url: str, database: str,
                  window: float) -> dict[str, Any]:
    """Rates of one database's counters over `window` seconds, sampled every SAMPLE_SECONDS,
    and which tables the rows were written to. The per-table reads are the only transactions
    the measurement adds to the database (two per window)."""
    conn = await asyncpg.connect(admin_url)
    tables = await asyncpg.connect(database_url)
    try:
        tables_before = await _table_writes(tables)
        samples = [await conn.fetchrow(SQL["DatabaseActivity"], database)]
        cpu = [environment.cpu_jiffies()]
        deadline = time.monotonic() + window
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(SAMPLE_SECONDS, left))
            samples.append(await conn.fetchrow(SQL["DatabaseActivity"], database))
            cpu.append(environment.cpu_jiffies())
        tables_after = await _table_writes(tables)
    finally:
        await tables.close()
        await conn.close()
    first, last = samples[0], samples[-1]
    seconds = (last["at"] - first["at"]).total_seconds()
    pieces = [_rates(a, b) for a, b in itertools.pairwise(samples)]
    return {
        "seconds": seconds,
        **_rates(first, last),
        "connections_max": max(s["connections"] for s in samples),
        "connections_median": environment.median([s["connections"] for s in samples]),
        "cpu_busy": environment.busy_fraction(cpu[0], cpu[-1]),
        # Each backend flushes its counters at most once a second and up to 10 s late when
        # idle, so the pieces scatter more than the whole window does.
        "sample_transactions_per_second": [p["transactions_per_second"] for p in pieces],
        "sample_rows_per_second": [p["rows_written_per_second"] for p in pieces],
        "rows_written_by_table": {name: rows - tables_before.get(name, 0)
                                  for name, rows in tables_after.items()
                                  if rows != tables_before.get(name, 0)},
    }


async def _table_writes(conn: asyncpg.Connection) -> dict[str, int]:
    return {row["table_name"]: row["rows_written"] for row in await conn.fetch(SQL["TableWrites"])}


def _rates(a: asyncpg.Record, b: asyncpg.Record) -> dict[str, float]:
    seconds = (b["at"] - a["at"]).total_seconds()
    return {
        "transactions_per_second": (b["transactions"] - a["transactions"]) / seconds,
        "rows_written_per_second": (b["rows_written"] - a["rows_written"]) / seconds,
        "wal_bytes_per_second": (b["wal_bytes"] - a["wal_bytes"]) / seconds,
    }


async def idle_load(bench: environment.Bench, replica_count: int, schedules: int,
                    warmup: float, window: float) -> dict[str, Any]:
    database = f"bench_idle_{replica_count}"
    url = await bench.fresh_database(database)
    conn = await asyncpg.connect(url)
    try:
        await cluster_store.write_config(conn, NAMESPACE, CLUSTER, 1, idle_spec(schedules))
    finally:
        await conn.close()
    started = await replicas.start_replicas(
        url, [f"r{i:03d}" for i in range(replica_count)], namespace=NAMESPACE, cluster=CLUSTER)
    try:
        await asyncio.sleep(warmup)
        measured = await measure(bench.admin_url, url, database, window)
    finally:
        await replicas.stop_replicas(started)
    per_replica = {f"{key}_per_replica": measured[key] / replica_count
                   for key in ("transactions_per_second", "rows_written_per_second",
                               "wal_bytes_per_second")}
    return {"replicas": replica_count, "schedules": schedules, **measured, **per_replica}


async def run(bench: environment.Bench) -> dict[str, Any]:
    sizes = [2, 5] if bench.quick else [5, 50]
    schedules = 5 if bench.quick else 20
    warmup, window = (5.0, 10.0) if bench.quick else (20.0, 60.0)
    rows = []
    for count in sizes:
        row = await idle_load(bench, count, schedules, warmup, window)
        print(f"  idle {count} replicas: {row['transactions_per_second']:,.0f} tx/s, "
              f"{row['rows_written_per_second']:,.0f} rows/s, "
              f"{row['connections_max']} connections", flush=True)
        rows.append(row)
    return {
        "benchmark": "idle",
        "command": bench.command("idle"),
        "parameters": {"replicas": sizes, "schedules_per_cluster": schedules,
                       "warmup_seconds": warmup, "window_seconds": window,
                       "sample_seconds": SAMPLE_SECONDS},
        "rows": rows,
    }
