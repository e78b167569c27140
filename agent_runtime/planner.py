"""Turning cron schedules into fire rows: which nominal fire times are due, and inserting them.

Any replica may plan any lane; the lane row is locked SKIP LOCKED for the short planning
transaction, and the fires' unique key makes a repeated insert a no-op. A lane remembers how
far it has been planned (`planned_until`), so fires missed while no replica ran are handled by
the schedule's missed-fire policy rather than silently replayed or silently lost.
"""

from __future__ import annotations

import datetime as dt
import json

import asyncpg

from agent_api import cron
from agent_api.db import queries
from agent_runtime import spec

MAX_FIRES_PER_PLAN = 1000


def lane_of(schedule: spec.ScheduleSpec, replica: str) -> str:
    return "" if schedule.mode == "single" else replica


def due_fire_times(schedule: spec.ScheduleSpec, planned_until: dt.datetime, now: dt.datetime,
                   backoff_until: dt.datetime | None = None) -> list[dt.datetime]:
    """Fire times in (planned_until, now] to insert, after the missed-fire policy."""
    if now <= planned_until:
        return []
    cutoff = now - dt.timedelta(seconds=schedule.missed_fire_grace_seconds)
    missed: list[dt.datetime] = []
    if planned_until < cutoff:
        keep = {"skip": 0, "runOnce": 1, "backfill": schedule.backfill_limit}
        limit = keep[schedule.missed_fire_policy]
        if limit:
            missed = cron.latest_fire_times(schedule.cron, schedule.timezone, planned_until,
                                            cutoff, limit)
    on_time = cron.fire_times(schedule.cron, schedule.timezone, max(planned_until, cutoff), now,
                              MAX_FIRES_PER_PLAN)
    due = missed + on_time
    if backoff_until is not None:
        due = [t for t in due if t >= backoff_until]
    return due


async def plan_lane(pool: asyncpg.Pool, namespace: str, cluster: str, replica: str,
                    schedule: spec.ScheduleSpec, limits: spec.Limits,
                    now: dt.datetime) -> list[dt.datetime]:
    """Insert the due fires of one schedule lane; return the fire times this call inserted."""
    lane = lane_of(schedule, replica)
    definition = schedule.definition_hash()
    key = (namespace, cluster, schedule.name, lane)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(queries.SQL["EnsureLane"], *key, definition, now)
        row = await conn.fetchrow(queries.SQL["LockLane"], *key)
        if row is None:
            return []  # another replica is planning this lane right now
        backoff_until, disabled = row["backoff_until"], row["disabled_at"] is not None
        if row["definition_hash"] != definition:
            await conn.execute(queries.SQL["ResetLaneDefinition"], *key, definition)
            backoff_until, disabled = None, False
        due: list[dt.datetime] = []
        if schedule.enabled and not disabled:
            due = due_fire_times(schedule, row["planned_until"], now, backoff_until)
        inserted: list[dt.datetime] = []
        if due:
            rows = await conn.fetch(
                queries.SQL["InsertFires"], namespace, cluster, schedule.name, lane,
                schedule.mode, schedule.function, not schedule.allow_overlap,
                json.dumps(schedule.payload), limits.max_attempts, due,
            )
            inserted = [r["fire_time"] for r in rows]
        await conn.execute(queries.SQL["AdvanceLane"], *key, now)
        return inserted


async def mark_error(pool: asyncpg.Pool, namespace: str, cluster: str, schedule: str,
                     message: str) -> None:
    await pool.execute(queries.SQL["MarkLaneError"], namespace, cluster, schedule, "", message)
