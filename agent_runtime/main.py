"""`agentclusters runtime`: wire config, scheduler, registry and HTTP server; drain on SIGTERM.

Shutdown order matters: stop claiming, report not-ready, let in-flight runs finish within the
grace period, release the leases of the rest (another replica claims them at once), deregister
from Redis, exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import signal
import time

import asyncpg
from aiohttp import web

from agent_api.db import cluster_store, migrate
from agent_runtime import (
    config,
    database,
    logs,
    metrics,
    registry,
    retention,
    runner,
    scheduler,
    server,
)
from agent_runtime.ai import redaction

log = logging.getLogger(__name__)

# While waiting for the operator's migrations, say so at most this often.
SCHEMA_WAIT_LOG_SECONDS = 30.0


async def _connect_pool(url: str, stop: asyncio.Event,
                        pooling: str = "session") -> asyncpg.Pool | None:
    """Wait for PostgreSQL (it may start after us) and for the schema version this code needs.

    The runtime never migrates: the operator applies migrations at its start, with its
    privileged role (a replica's role may not run DDL). Until then the replica waits, not
    ready, and says which migration it waits for."""
    needed = migrate.latest_version()
    delay = 0.2
    said_at = -math.inf
    while not stop.is_set():
        try:
            conn = await database.connect(url, pooling)
            try:
                have = await migrate.current_version(conn)
            finally:
                await conn.close()
            if have >= needed:
                return await database.create_pool(url, pooling)
            if time.monotonic() - said_at >= SCHEMA_WAIT_LOG_SECONDS:
                said_at = time.monotonic()
                log.warning(
                    "waiting for the operator to apply migration %d (the database has %s); "
                    "the operator applies migrations when it starts. Without a running "
                    "operator, run `agentclusters migrate` with its privileged DATABASE_URL",
                    needed, f"migration {have}" if have else "none",
                    extra={"schema_version": have, "schema_version_needed": needed})
        except database.TRANSIENT as error:
            log.warning("PostgreSQL not reachable yet, retrying: %r", error)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        delay = min(delay * 2, 5.0)
    return None


async def run(identity: config.Identity | None = None,
              stop: asyncio.Event | None = None,
              clock: scheduler.Clock = scheduler.database_clock) -> int:
    identity = identity or config.Identity.from_env()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)

    pool = await _connect_pool(identity.database_url, stop, identity.database_pooling)
    if pool is None:
        return 0
    counters = metrics.Metrics(identity.namespace, identity.cluster, identity.replica)
    await cluster_store.register_member(pool, identity.namespace, identity.cluster,
                                        identity.replica, identity.ordinal)
    watcher = config.ConfigWatcher(pool, identity)
    with contextlib.suppress(*database.TRANSIENT):
        await watcher.load()
    run_functions = runner.Runner(pool, identity, watcher, counters)
    schedule_loop = scheduler.Scheduler(pool, identity, watcher, run_functions, counters, clock)

    def ready() -> bool:
        return watcher.current is not None and schedule_loop.claiming and not stop.is_set()

    app = server.build_app(identity, counters, run_functions, ready)
    web_runner = web.AppRunner(app, access_log=None)
    await web_runner.setup()
    await web.TCPSite(web_runner, identity.pod_ip, identity.http_port).start()
    address = f"http://{identity.pod_ip}:{identity.http_port}"
    replica_registry = registry.Registry(
        identity, address, lambda: (ready(), schedule_loop.busy())
    )
    background = [
        asyncio.create_task(watcher.run(stop), name="config"),
        asyncio.create_task(replica_registry.run(stop), name="registry"),
        asyncio.create_task(retention.run(pool, identity.namespace, identity.cluster,
                                          lambda: _retention_seconds(watcher), stop),
                            name="retention"),
    ]
    log.info("runtime started", extra={"address": address})
    await schedule_loop.run(stop)

    log.info("shutting down: draining in-flight runs",
             extra={"in_flight": schedule_loop.busy(),
                    "grace_seconds": identity.shutdown_grace_seconds})
    await asyncio.gather(schedule_loop.drain(identity.shutdown_grace_seconds),
                         run_functions.drain_manual(identity.shutdown_grace_seconds))
    await asyncio.gather(*background, return_exceptions=True)
    await replica_registry.deregister()
    await web_runner.cleanup()
    await run_functions.close()
    await pool.close()
    log.info("runtime stopped")
    return 0


def _retention_seconds(watcher: config.ConfigWatcher) -> float:
    hours = watcher.current.limits.history_retention_hours if watcher.current else 7 * 24
    return hours * 3600


def main(argv: list[str] | None = None) -> int:
    """Run one agent replica (identity from AGENT_* environment variables)."""
    parser = argparse.ArgumentParser(prog="agentclusters runtime", description=main.__doc__)
    parser.parse_args(argv)
    identity = config.Identity.from_env()
    redaction.register_environment(os.environ)  # before the first log line
    logs.configure(identity.namespace, identity.cluster, identity.replica)
    return asyncio.run(run(identity))
