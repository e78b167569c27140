"""In-process runtime replicas for the benchmarks: the one place that builds the runtime's objects.

A replica here is what `agent_runtime.main.run` wires in a pod, minus what does not touch the
scheduling path (HTTP server, Redis registry, retention sweep, migrations, which the benchmark
applies once per database): its own pool from `database.create_pool` (the runtime's own
sizes, timeouts and pooler settings), the member row, a `ConfigWatcher`, a `Runner` and a
`Scheduler`, with `scheduler.run(stop)` and `watcher.run(stop)` running as tasks, at
production defaults (poll intervals, pool size).

What this module relies on, and so what to adapt when the runtime changes:
  - `config.Identity(namespace, cluster, replica, ordinal, pod_ip, database_url, redis_url,
    database_pooling=...)`;
  - `database.create_pool(url, pooling)`;
  - `config.ConfigWatcher(pool, identity)` with `load()` and `run(stop)`;
  - `metrics.Metrics(namespace, cluster, replica)`, `runner.Runner(pool, identity, watcher, counters)` and `close()`;
  - `scheduler.Scheduler(pool, identity, watcher, runner, counters)` with `run(stop)` and
    `drain(grace_seconds)`;
  - `cluster_store.register_member`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import asyncpg

from agent_api.db import cluster_store
from agent_runtime import config, database, metrics, runner, scheduler

Pooling = Literal["session", "transaction"]
# Grace for in-flight runs when a benchmark stops its replicas; no-op runs finish in it.
STOP_GRACE_SECONDS = 1.0
# Not contacted: the registry (the only Redis user) is not started here.
UNUSED_REDIS = "redis://127.0.0.1:1/0"


@dataclass
class Replica:
    name: str
    pool: asyncpg.Pool
    watcher: config.ConfigWatcher
    runner: runner.Runner
    scheduler: scheduler.Scheduler
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


async def start_replicas(database_url: str, names: Sequence[str], *, namespace: str,
                         cluster: str, pooling: Pooling = "session",
                         ordinals: Sequence[int] | None = None) -> list[Replica]:
    """Start one replica per name, all at once; if any fails to start, stop the others and raise.

    Ordinals default to the names' positions."""
    ordinals = range(len(names)) if ordinals is None else ordinals
    started = await asyncio.gather(
        *(_start_replica(database_url, name, namespace, cluster, ordinal, pooling)
          for name, ordinal in zip(names, ordinals, strict=True)),
        return_exceptions=True,
    )
    replicas = [r for r in started if isinstance(r, Replica)]
    failures = [r for r in started if isinstance(r, BaseException)]
    if failures:
        await stop_replicas(replicas)
        raise failures[0]
    return replicas


async def stop_replicas(replicas: Sequence[Replica]) -> None:
    """Stop every loop, let in-flight runs finish (briefly), close the pools."""
    await asyncio.gather(*(_stop_replica(r) for r in replicas))


async def _start_replica(database_url: str, name: str, namespace: str, cluster: str,
                         ordinal: int, pooling: Pooling) -> Replica:
    identity = config.Identity(namespace, cluster, name, ordinal, "127.0.0.1", database_url,
                               UNUSED_REDIS, database_pooling=pooling)
    pool = await database.create_pool(database_url, pooling)
    try:
        await cluster_store.register_member(pool, namespace, cluster, name, ordinal)
        watcher = config.ConfigWatcher(pool, identity)
        await watcher.load()
    except BaseException:
        await pool.close()
        raise
    counters = metrics.Metrics(namespace, cluster, name)
    run = runner.Runner(pool, identity, watcher, counters)
    replica = Replica(name, pool, watcher, run,
                      scheduler.Scheduler(pool, identity, watcher, run, counters))
    replica.tasks = [
        asyncio.create_task(replica.scheduler.run(replica.stop), name=f"{name}-scheduler"),
        asyncio.create_task(watcher.run(replica.stop), name=f"{name}-config"),
    ]
    return replica


async def _stop_replica(replica: Replica) -> None:
    replica.stop.set()
    await asyncio.gather(*replica.tasks, return_exceptions=True)
    await replica.scheduler.drain(STOP_GRACE_SECONDS)
    await replica.runner.close()
    await replica.pool.close()

