"""Deleting old finished fires and run history, so the high-churn tables stay small.

Each replica sweeps its own cluster's history only, with its cluster's
`limits.historyRetentionHours`: one cluster's short retention never touches another cluster's
or another namespace's rows. Any replica of the cluster may sweep: deletes are batched, touch
only finished rows, and are harmless when two replicas sweep at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable

import asyncpg

from agent_api.db import queries
from agent_runtime import database

log = logging.getLogger(__name__)
BATCH = 5000


async def sweep(pool: asyncpg.Pool, namespace: str, cluster: str, retention_seconds: float,
                now: dt.datetime | None = None) -> tuple[int, int]:
    """Delete the cluster's finished fires and runs older than the retention; return (fires,
    runs) deleted."""
    totals = []
    for name in ("DeleteOldFires", "DeleteOldRuns"):
        total = 0
        while True:
            status = await pool.execute(queries.SQL[name], namespace, cluster, retention_seconds,
                                        BATCH, now)
            deleted = int(status.split()[-1])
            total += deleted
            if deleted < BATCH:
                break
        totals.append(total)
    return totals[0], totals[1]


async def run(pool: asyncpg.Pool, namespace: str, cluster: str,
              retention_seconds: Callable[[], float], stop: asyncio.Event,
              interval_seconds: float = 600.0) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_seconds)
        if stop.is_set():
            return
        try:
            fires_deleted, runs_deleted = await sweep(pool, namespace, cluster,
                                                     retention_seconds())
            if fires_deleted or runs_deleted:
                log.info("retention sweep", extra={"fires_deleted": fires_deleted,
                                                   "runs_deleted": runs_deleted})
        except database.TRANSIENT as error:
            log.warning("retention sweep failed, will retry: %r", error)
