"""lateness: 10,000 schedules falling due in the same second, 5 replicas; how late do they run?

All schedules are identical six-field crons (`S M H * * *`) for one second `--lead` seconds
after the spec is written, with different names, in single mode, at the schedule defaults
(`missedFireGraceSeconds` 10, `missedFirePolicy` skip). The replicas start with the spec in
place, so whatever the scheduler does to get ready happens before the fire time. Lateness
is each schedule's first run start (`runs.started_at`) minus the nominal fire time; a fire
is missed when its schedule has no succeeded run for that time (under `skip` a fire planned
too late never gets a row at all).

The API caps one cluster at 64 schedules (`agent_api.models.MAX_SCHEDULES`); this spec is
written straight into `cluster_configs`, which the runtime reads without that cap: it is a
stress figure for 10,000 lanes in one instant, not a configuration users can apply.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import asyncpg

from agent_api.db import cluster_store
from bench import environment, replicas
from bench.environment import SQL

NAMESPACE, CLUSTER = "bench", "lateness"
REPLICAS = 5
MAX_CONCURRENT_RUNS = 256  # the API's ceiling: the concurrency cap is not what is measured
GRACE_SECONDS = 10  # the schedules' missedFireGraceSeconds (the default)
AFTER_GRACE_SECONDS = 10.0  # past the fire time + grace, every fire is planned or lost
GIVE_UP_SECONDS = 300.0  # fires still unfinished this long after their time count as missed
QUANTILE_STEPS = 1000  # the recorded lateness distribution, for the CDF plot


def lateness_spec(schedules: int, fire_time: dt.datetime) -> dict[str, Any]:
    cron = f"{fire_time.second} {fire_time.minute} {fire_time.hour} * * *"
    return {
        "replicas": REPLICAS,
        "functions": [{"name": "noop", "python": {"entrypoint": "bench.noop:noop"}}],
        "schedules": [{"name": f"l{i:05d}", "function": "noop", "cron": cron, "timezone": "UTC",
                       "mode": "single", "missedFireGraceSeconds": GRACE_SECONDS}
                      for i in range(schedules)],
        "limits": {"maxConcurrentRuns": MAX_CONCURRENT_RUNS},
    }


async def one_round(bench: environment.Bench, schedules: int, lead: float) -> dict[str, Any]:
    url = await bench.fresh_database("bench_lateness")
    conn = await asyncpg.connect(url)
    try:
        now = await conn.fetchval(SQL["ClockNow"])
        fire_time = (now + dt.timedelta(seconds=lead)).replace(microsecond=0)
        await cluster_store.write_config(conn, NAMESPACE, CLUSTER, 1,
                                         lateness_spec(schedules, fire_time))
        started = await replicas.start_replicas(
            url, [f"r{i}" for i in range(REPLICAS)], namespace=NAMESPACE, cluster=CLUSTER)
        try:
            ready_before = (fire_time - await conn.fetchval(SQL["ClockNow"])).total_seconds()
            await _until(conn, fire_time + dt.timedelta(seconds=GRACE_SECONDS + AFTER_GRACE_SECONDS))
            give_up = fire_time + dt.timedelta(seconds=GIVE_UP_SECONDS)
            while True:
                unfinished = await conn.fetchval(SQL["UnfinishedFiresAt"], NAMESPACE, CLUSTER,
                                                 fire_time)
                if not unfinished or await conn.fetchval(SQL["ClockNow"]) >= give_up:
                    break
                await asyncio.sleep(1.0)
        finally:
            await replicas.stop_replicas(started)
        firsts = await conn.fetch(SQL["FirstRunsAt"], NAMESPACE, CLUSTER, fire_time)
        statuses = {r["status"]: r["fires"]
                    for r in await conn.fetch(SQL["FiresAt"], NAMESPACE, CLUSTER, fire_time)}
    finally:
        await conn.close()
    late = sorted(r["lateness_seconds"] for r in firsts if r["succeeded"])
    return {
        "fire_time": fire_time.isoformat(),
        "replicas_ready_seconds_before_fire_time": ready_before,
        "schedules": schedules,
        "succeeded": len(late),
        "missed": schedules - len(late),
        "fires_by_status": statuses,
        "fires_never_planned": schedules - sum(statuses.values()),
        **_percentiles(late),
        "quantiles": [round(environment.percentile(late, 100 * i / QUANTILE_STEPS), 4)
                      for i in range(QUANTILE_STEPS + 1)] if late else [],
    }


def _percentiles(ordered: list[float]) -> dict[str, float | None]:
    if not ordered:
        return {"p50_seconds": None, "p99_seconds": None, "max_seconds": None}
    return {"p50_seconds": environment.percentile(ordered, 50),
            "p99_seconds": environment.percentile(ordered, 99),
            "max_seconds": ordered[-1]}


async def _until(conn: asyncpg.Connection, moment: dt.datetime) -> None:
    """Sleep until `moment` on the database clock."""
    left = (moment - await conn.fetchval(SQL["ClockNow"])).total_seconds()
    if left > 0:
        await asyncio.sleep(left)


async def run(bench: environment.Bench) -> dict[str, Any]:
    schedules = 1000 if bench.quick else 10_000
    lead = 15.0 if bench.quick else 30.0
    repeats = 1 if bench.quick else 3
    rounds = []
    for repeat in range(repeats):
        measured = await one_round(bench, schedules, lead)
        print(f"  lateness round {repeat + 1}: p50 {measured['p50_seconds']} s, "
              f"p99 {measured['p99_seconds']} s, max {measured['max_seconds']} s, "
              f"missed {measured['missed']} of {schedules}", flush=True)
        rounds.append(measured)
    summary = {key: environment.median([r[key] for r in rounds if r[key] is not None] or [None])
               for key in ("p50_seconds", "p99_seconds", "max_seconds", "missed")}
    return {
        "benchmark": "lateness",
        "command": bench.command("lateness"),
        "parameters": {"schedules": schedules, "replicas": REPLICAS, "lead_seconds": lead,
                       "repeats": repeats, "max_concurrent_runs": MAX_CONCURRENT_RUNS,
                       "missed_fire_grace_seconds": 10, "missed_fire_policy": "skip"},
        "median": summary,
        "rounds": rounds,
    }
