"""The retention sweep on real PostgreSQL, with the injectable clock instead of waiting."""

from __future__ import annotations

import datetime as dt

import asyncpg

from agent_runtime import retention
from tests.integration.runtime import harness
from tests.integration.runtime.harness import CLUSTER, NAMESPACE

NOW = dt.datetime(2030, 6, 1, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
RETENTION = 7 * 24 * 3600.0


async def _fire(conn, name: str, status: str, finished_ago: dt.timedelta | None,
                fire_ago: dt.timedelta) -> int:
    running = status == "running"
    return await conn.fetchval(
        "INSERT INTO fires (namespace, cluster, schedule, fire_time, mode, function, status,"
        " attempt, lease_owner, lease_token, lease_expires_at, started_at, finished_at)"
        " VALUES ($1, $2, $3, $4, 'single', 'f', $5, $6, $7, $8, $9, $4, $10) RETURNING id",
        NAMESPACE, CLUSTER, name, NOW - fire_ago, status, 1 if running else 0,
        "r0" if running else None, 1000 if running else None,
        NOW - fire_ago + dt.timedelta(seconds=30) if running else None,
        NOW - finished_ago if finished_ago is not None else None)


async def _run(conn, fire_id: int | None, status: str, started_ago: dt.timedelta) -> int:
    return await conn.fetchval(
        "INSERT INTO runs (namespace, cluster, replica, fire_id, trigger, function, status,"
        " started_at, finished_at) VALUES ($1, $2, 'r0', $3, $4, 'f', $5, $6, $7) RETURNING id",
        NAMESPACE, CLUSTER, fire_id, "schedule" if fire_id else "webhook", status,
        NOW - started_ago, None if status == "running" else NOW - started_ago)


async def test_sweep_removes_old_finished_rows_and_keeps_live_and_recent_ones(database_url):
    await harness.migrated(database_url)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            old = {s: await _fire(conn, f"old-{s}", s, 9 * DAY, 9 * DAY)
                   for s in ("succeeded", "failed", "skipped", "cancelled")}
            # Live fires are never swept, however old: their runs may still be going.
            old_available = await _fire(conn, "old-available", "available", None, 30 * DAY)
            old_running = await _fire(conn, "old-running", "running", None, 30 * DAY)
            recent = await _fire(conn, "recent", "succeeded", 6 * DAY, 6 * DAY)
            old_run = await _run(conn, old["succeeded"], "succeeded", 9 * DAY)
            old_rejected = await _run(conn, old["failed"], "rejected", 9 * DAY)
            old_webhook = await _run(conn, None, "failed", 8 * DAY)
            old_live_run = await _run(conn, old_running, "running", 30 * DAY)
            recent_run = await _run(conn, recent, "succeeded", 6 * DAY)
            # A recent run of a fire old enough to go: the history row stays, unlinked.
            recent_run_of_old_fire = await _run(conn, old["cancelled"], "released", 1 * DAY)

        deleted = await retention.sweep(pool, NAMESPACE, CLUSTER, RETENTION, NOW)
        again = await retention.sweep(pool, NAMESPACE, CLUSTER, RETENTION, NOW)
        later = await retention.sweep(pool, NAMESPACE, CLUSTER, RETENTION, NOW + 2 * DAY)
        fires = {r["id"]: r["status"] for r in await pool.fetch("SELECT id, status FROM fires")}
        runs = {r["id"]: r["fire_id"] for r in await pool.fetch("SELECT id, fire_id FROM runs")}
    finally:
        await pool.close()

    assert deleted == (4, 3)
    assert again == (0, 0)  # idempotent: two replicas sweeping at once is harmless
    assert later == (1, 1)  # six days old becomes eight: past the retention now
    assert fires == {old_available: "available", old_running: "running"}
    assert runs == {old_live_run: old_running, recent_run_of_old_fire: None}
    assert {old_run, old_rejected, old_webhook, recent_run}.isdisjoint(runs)


async def test_sweep_deletes_in_batches(database_url, monkeypatch):
    await harness.migrated(database_url)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        await pool.execute(
            "INSERT INTO fires (namespace, cluster, schedule, fire_time, mode, function, status,"
            " finished_at) SELECT $1, $2, 's', $3::timestamptz - make_interval(secs => n), 'single', 'f',"
            " 'succeeded', $3::timestamptz - interval '8 days' FROM generate_series(1, 25) AS n",
            NAMESPACE, CLUSTER, NOW)
        monkeypatch.setattr(retention, "BATCH", 10)
        assert await retention.sweep(pool, NAMESPACE, CLUSTER, RETENTION, NOW) == (25, 0)
        assert await pool.fetchval("SELECT count(*) FROM fires") == 0
    finally:
        await pool.close()


async def test_one_clusters_short_retention_leaves_other_clusters_history(database_url):
    """Cluster A of team-a keeps one hour of history: its sweep deletes its own old rows and
    leaves those of its sibling cluster and of another namespace, however old."""
    await harness.migrated(database_url)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    scopes = [(NAMESPACE, CLUSTER), (NAMESPACE, "sibling"), ("team-b", CLUSTER)]
    try:
        for namespace, cluster in scopes:
            fire = await pool.fetchval(
                "INSERT INTO fires (namespace, cluster, schedule, fire_time, mode, function,"
                " status, finished_at) VALUES ($1, $2, 's', $3, 'single', 'f', 'succeeded', $3)"
                " RETURNING id", namespace, cluster, NOW - 2 * DAY)
            await pool.execute(
                "INSERT INTO runs (namespace, cluster, replica, fire_id, trigger, function,"
                " status, started_at, finished_at) VALUES ($1, $2, 'r0', $3, 'schedule', 'f',"
                " 'succeeded', $4, $4)", namespace, cluster, fire, NOW - 2 * DAY)

        deleted = await retention.sweep(pool, NAMESPACE, CLUSTER, 3600.0, NOW)
        left = {(r["namespace"], r["cluster"]) for r in await pool.fetch(
            "SELECT namespace, cluster FROM fires UNION ALL SELECT namespace, cluster FROM runs")}
    finally:
        await pool.close()

    assert deleted == (1, 1)
    assert left == {(NAMESPACE, "sibling"), ("team-b", CLUSTER)}
