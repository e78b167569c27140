"""thousand: 1,000 replicas through PgBouncer (transaction pooling); what do they cost at idle?

The replicas are scheduler instances spread over PROCESSES worker processes (one event loop
each), in clusters of 100 (the API's `MAX_REPLICAS`), each cluster with the `idle`
benchmark's 20 yearly schedules. They connect through `devcluster.services.PgBouncer`
(`PgBouncer(data_dir, port, upstream)`, `start()`, `stop()`, `url_for(database)`), with the
runtime set for transaction pooling (no LISTEN, no statement cache). After a warm-up: server
connections (`pg_stat_activity` on PostgreSQL, and PgBouncer's `SHOW POOLS` when its admin
console answers), the idle load as in `idle`, and the time for a fire to be claimed: one
schedule is added to the first cluster, due at a known second, and its run's start
(`runs.started_at`) is compared with that second.

It degrades instead of failing: replicas that cannot start (PgBouncer refusing clients, a
saturated machine) are counted, each failing batch is recorded, a worker gives up after
GIVE_UP_AFTER_FAILURES batches failing in a row, and whatever started is measured;
`--replicas N` runs fewer.

Worker processes run `python -m bench.thousand`: they read their assignment as one JSON line
on stdin, report one JSON line when started, and stop their replicas when stdin closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import glob
import json
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import asyncpg

from agent_api import constants
from agent_api.db import cluster_store
from bench import environment, idle, replicas
from bench.environment import SQL
from devcluster import ports, services

NAMESPACE = "bench"
DATABASE = "bench_thousand"
PROCESSES = 4
SCHEDULES = 20
START_CHUNK = 10  # replicas started at once within a worker: no connection storm
GIVE_UP_AFTER_FAILURES = 3  # chunks failing in a row before a worker stops starting more
READY_TIMEOUT_SECONDS = 600.0
PROBE_LEAD_SECONDS = 30.0  # > the config poll (10 s): replicas without LISTEN must see it
PROBE_WAIT_SECONDS = 120.0  # after the probe's time; no run by then counts as missed
START_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def cluster_names(total: int) -> list[tuple[str, list[str]]]:
    """(cluster, replica names) for `total` replicas, 100 per cluster."""
    per = constants.MAX_REPLICAS
    return [(f"c{c:02d}", [f"c{c:02d}-r{i:03d}" for i in range(min(per, total - c * per))])
            for c in range((total + per - 1) // per)]


def assignments(total: int, processes: int) -> list[list[tuple[str, list[str], list[int]]]]:
    """Spread every cluster's replicas over the processes, round robin: per process, a list of
    (cluster, names, ordinals)."""
    work: list[list[tuple[str, list[str], list[int]]]] = [[] for _ in range(processes)]
    for cluster, names in cluster_names(total):
        for p in range(processes):
            ordinals = list(range(p, len(names), processes))
            if ordinals:
                work[p].append((cluster, [names[i] for i in ordinals], ordinals))
    return work


async def run(bench: environment.Bench, replica_count: int | None = None) -> dict[str, Any]:
    total = replica_count or (40 if bench.quick else 1000)
    warmup, window = (10.0, 10.0) if bench.quick else (30.0, 60.0)
    result: dict[str, Any] = {
        "benchmark": "thousand",
        "command": bench.command("thousand", *([f"--replicas {replica_count}"] if replica_count else [])),
        "parameters": {"replicas": total, "processes": PROCESSES, "schedules_per_cluster": SCHEDULES,
                       "replicas_per_cluster": constants.MAX_REPLICAS, "warmup_seconds": warmup,
                       "window_seconds": window, "pooling": "transaction"},
    }
    url = await bench.fresh_database(DATABASE)
    conn = await asyncpg.connect(url)
    try:
        for cluster, _ in cluster_names(total):
            await cluster_store.write_config(conn, NAMESPACE, cluster, 1, idle.idle_spec(SCHEDULES))
    finally:
        await conn.close()
    data_dir = Path(tempfile.mkdtemp(prefix="agentclusters-bench-pgbouncer-"))
    bouncer_port = ports.free_port()
    # Room for every replica's pooled connection (1 each at idle in transaction mode).
    bouncer = services.PgBouncer(data_dir, bouncer_port, bench.server.port,
                                 max_client_conn=3 * total + 100)
    bouncer.start()
    workers: list[asyncio.subprocess.Process] = []
    try:
        pooled_url = bouncer.url_for(DATABASE)
        work = assignments(total, PROCESSES)
        workers = [await _spawn(pooled_url, share, data_dir / f"worker-{i}.log")
                   for i, share in enumerate(work) if share]
        reports = await asyncio.gather(*(_first_report(w) for w in workers))
        started = sum(r.get("started", 0) for r in reports)
        result["started_replicas"] = started
        result["start_errors"] = [e for r in reports for e in r.get("errors", [])]
        print(f"  thousand: {started} of {total} replicas started", flush=True)
        await asyncio.sleep(warmup)
        cpu_before = [environment.process_cpu_seconds(w.pid) for w in workers]
        load = await idle.measure(bench.admin_url, url, DATABASE, window)
        cpu_after = [environment.process_cpu_seconds(w.pid) for w in workers]
        result["idle"] = {
            **load,
            "transactions_per_second_per_replica": load["transactions_per_second"] / max(started, 1),
            "rows_written_per_second_per_replica": load["rows_written_per_second"] / max(started, 1),
            "worker_cpu_seconds_per_second": [(b - a) / load["seconds"]
                                              for a, b in zip(cpu_before, cpu_after, strict=True)],
        }
        result["pgbouncer_pools"] = _show_pools(bouncer_port)
        print(f"  thousand: {load['transactions_per_second']:,.0f} tx/s, "
              f"{load['rows_written_per_second']:,.0f} rows/s, "
              f"{load['connections_max']} server connections", flush=True)
        result["probe"] = await _probe(url)
        print(f"  thousand: probe fire {result['probe']}", flush=True)
    finally:
        await asyncio.gather(*(_stop(w) for w in workers))
        bouncer.stop()
        result["worker_log"] = _log_summary(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)
    return result


async def _probe(url: str) -> dict[str, Any]:
    """Add one schedule to the first cluster, due at a known second; how late does it start?"""
    conn = await asyncpg.connect(url)
    try:
        now = await conn.fetchval(SQL["ClockNow"])
        fire_time = (now + dt.timedelta(seconds=PROBE_LEAD_SECONDS)).replace(microsecond=0)
        spec = idle.idle_spec(SCHEDULES)
        spec["schedules"].append({
            "name": "probe", "function": "noop", "timezone": "UTC", "mode": "single",
            "cron": f"{fire_time.second} {fire_time.minute} {fire_time.hour} * * *"})
        await cluster_store.write_config(conn, NAMESPACE, "c00", 2, spec)
        deadline = fire_time + dt.timedelta(seconds=PROBE_WAIT_SECONDS)
        while True:
            firsts = await conn.fetch(SQL["FirstRunsAt"], NAMESPACE, "c00", fire_time)
            if firsts or await conn.fetchval(SQL["ClockNow"]) > deadline:
                break
            await asyncio.sleep(0.5)
    finally:
        await conn.close()
    if not firsts:
        return {"fire_time": fire_time.isoformat(), "claimed": False}
    return {"fire_time": fire_time.isoformat(), "claimed": True,
            "lateness_seconds": firsts[0]["lateness_seconds"]}


def _show_pools(port: int) -> list[dict[str, str]] | str:
    """PgBouncer's own count of client and server connections, from its admin console."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/psql")) or [shutil.which("psql")]
    if not candidates[-1]:
        return "psql not found"
    completed = subprocess.run(
        [candidates[-1], "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
         "-d", "pgbouncer", "--csv", "-c", "SHOW POOLS"],
        capture_output=True, text=True, check=False, timeout=30)
    if completed.returncode != 0:
        return f"SHOW POOLS failed: {completed.stderr.strip()}"
    lines = completed.stdout.strip().splitlines()
    header = lines[0].split(",")
    return [dict(zip(header, line.split(","), strict=False)) for line in lines[1:]]


def _log_summary(data_dir: Path) -> dict[str, Any]:
    """What the replicas logged (warnings and errors): how many lines, and the distinct kinds."""
    lines = [line for path in sorted(data_dir.glob("worker-*.log"))
             for line in path.read_text(errors="replace").splitlines()]
    kinds: dict[str, int] = {}
    for line in lines:
        if line[:1].isspace() or not line.strip():
            continue  # continuation of a multi-line message
        kind = line.split(":", 1)[0][:120]
        kinds[kind] = kinds.get(kind, 0) + 1
    return {"lines": len(lines), "kinds": dict(sorted(kinds.items(), key=lambda k: -k[1])[:10])}


async def _spawn(url: str, share: list[tuple[str, list[str], list[int]]],
                 log: Path) -> asyncio.subprocess.Process:
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.thousand", cwd=environment.REPO,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr)
    process.stdin.write((json.dumps({"url": url, "assignments": share}) + "\n").encode())
    await process.stdin.drain()
    return process


async def _first_report(process: asyncio.subprocess.Process) -> dict[str, Any]:
    try:
        line = await asyncio.wait_for(process.stdout.readline(), READY_TIMEOUT_SECONDS)
    except TimeoutError:
        return {"started": 0, "errors": [f"worker {process.pid} did not report within "
                                         f"{READY_TIMEOUT_SECONDS:.0f} s"]}
    if not line:
        return {"started": 0, "errors": [f"worker {process.pid} exited ({await process.wait()})"]}
    return json.loads(line)


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.stdin is not None and not process.stdin.is_closing():
        process.stdin.close()
    try:
        await asyncio.wait_for(process.wait(), 120)
    except TimeoutError:
        process.kill()
        await process.wait()


# -- the worker process ----------------------------------------------------------------------

async def worker(assignment: dict[str, Any]) -> None:
    # Hundreds of replicas, each a pool and a listening connection: lift the soft limit.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    started: list[replicas.Replica] = []
    errors: list[str] = []
    failures_in_a_row = 0
    for cluster, names, ordinals in assignment["assignments"]:
        for first in range(0, len(names), START_CHUNK):
            if failures_in_a_row >= GIVE_UP_AFTER_FAILURES:
                break
            chunk = slice(first, first + START_CHUNK)
            try:
                started += await replicas.start_replicas(
                    assignment["url"], names[chunk], namespace=NAMESPACE, cluster=cluster,
                    pooling="transaction", ordinals=ordinals[chunk])
                failures_in_a_row = 0
            except START_ERRORS as failure:
                failures_in_a_row += 1
                errors.append(f"{cluster}/{names[first]}+: {type(failure).__name__}: {failure}")
    print(json.dumps({"started": len(started), "errors": errors}), flush=True)
    # The parent closes our stdin to stop us.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    with contextlib.suppress(*START_ERRORS):
        await replicas.stop_replicas(started)


if __name__ == "__main__":
    asyncio.run(worker(json.loads(sys.stdin.readline())))
