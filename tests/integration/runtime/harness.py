"""In-process replicas and subprocess runtimes against the test's real PostgreSQL/Redis."""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import hashlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx

from agent_api.db import cluster_store, migrate, tenants
from agent_runtime import config, database, metrics, runner, scheduler

NAMESPACE = "team-a"
CLUSTER = "scraper"
REPO = Path(__file__).resolve().parents[3]
SAMPLE = "tests.integration.runtime.sample_functions"
# The credential every spawned runtime expects from its callers (the operator derives the real
# one per cluster; any non-empty value does here).
REPLICA_TOKEN = "test-replica-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {REPLICA_TOKEN}"}


class FakeClock:
    """The injectable clock: every query uses this instant instead of now()."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def python_function(name: str, entrypoint: str) -> dict:
    return {"name": name, "python": {"entrypoint": f"{SAMPLE}:{entrypoint}"}}


def schedule(name: str, function: str, cron: str = "* * * * * *", **extra) -> dict:
    return {"name": name, "function": function, "cron": cron, "timezone": "UTC",
            "mode": "single", **extra}


def spec_with(functions: list[dict], schedules: list[dict], **limits) -> dict:
    return {"replicas": 1, "functions": functions, "schedules": schedules,
            "limits": {"leaseSeconds": 5, **limits}}


async def migrated(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await migrate.apply(conn)
    finally:
        await conn.close()


async def tenant_url(database_url: str, namespace: str = NAMESPACE) -> str:
    """What the operator hands `namespace`'s replicas: the schema migrated (the operator's job,
    never a replica's), the namespace's own role, and a URL to the same server and database
    with that role's credentials (row-level security: the replica sees only its namespace)."""
    await migrated(database_url)
    password = _tenant_password(database_url, namespace)
    conn = await asyncpg.connect(database_url)
    try:
        role = await tenants.ensure_role(conn, namespace, password)
    finally:
        await conn.close()
    return tenants.tenant_url(database_url, role, password)


def tenant_url_blocking(database_url: str, namespace: str = NAMESPACE) -> str:
    """`tenant_url` from synchronous code that may run inside the test's event loop (a fixture's
    `spawn`): on a thread with a loop of its own."""
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, tenant_url(database_url, namespace)).result()


def _tenant_password(database_url: str, namespace: str) -> str:
    """One password per database and namespace: a second URL of the same database (through a
    proxy) sets the same password again instead of locking out replicas started earlier."""
    database = urlsplit(database_url).path.lstrip("/")
    return hashlib.sha256(f"test tenant\0{database}\0{namespace}".encode()).hexdigest()


async def write_spec(database_url: str, generation: int, spec: dict) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await cluster_store.write_config(conn, NAMESPACE, CLUSTER, generation, spec)
    finally:
        await conn.close()


@dataclass
class Replica:
    """One replica's scheduler with its own pool (its own connections), driven by the test."""

    database_url: str
    name: str
    clock: scheduler.Clock = scheduler.database_clock
    ordinal: int = 0
    # The runtime's own pool (agent_runtime.database: no reset query, its timeouts) rather
    # than asyncpg's defaults: for tests that count what the runtime sends PostgreSQL.
    runtime_pool: bool = False
    pool: asyncpg.Pool | None = None
    scheduler: scheduler.Scheduler | None = None
    runner: runner.Runner | None = None
    watcher: config.ConfigWatcher | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task] = field(default_factory=list)

    async def start(self, loops: bool = False) -> Replica:
        identity = config.Identity(NAMESPACE, CLUSTER, self.name, self.ordinal, "127.0.0.1",
                                   self.database_url, "redis://127.0.0.1:1/0",
                                   config_poll_seconds=60, replica_token=REPLICA_TOKEN)
        if self.runtime_pool:
            self.pool = await database.create_pool(self.database_url, min_size=1, max_size=4)
        else:
            self.pool = await asyncpg.create_pool(self.database_url, min_size=1, max_size=4)
        await cluster_store.register_member(self.pool, NAMESPACE, CLUSTER, self.name,
                                            self.ordinal)
        self.watcher = config.ConfigWatcher(self.pool, identity)
        await self.watcher.load()
        counters = self.metrics = metrics.Metrics(NAMESPACE, CLUSTER, self.name)
        self.runner = runner.Runner(self.pool, identity, self.watcher, counters)
        self.scheduler = scheduler.Scheduler(self.pool, identity, self.watcher, self.runner,
                                             counters, self.clock, tick_seconds=0.05)
        if loops:
            self.tasks = [asyncio.create_task(self.scheduler.run(self.stop)),
                          asyncio.create_task(self.watcher.run(self.stop))]
        return self

    async def tick(self) -> None:
        await self.scheduler.tick()

    async def settle(self) -> None:
        """Wait until this replica's in-flight runs have finished."""
        tasks = [e.task for e in self.scheduler.in_flight.values() if e.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.scheduler.drain(0.1)
        await self.runner.close()
        await self.pool.close()


async def fetch(database_url: str, query: str, *args) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def one_fire_due_now(database_url: str, slow_replica: str, slow_seconds: float,
                           lease_seconds: float) -> None:
    """A single-mode schedule `job` with exactly one fire due now: a yearly cron whose lane
    starts just before this year's fire (1 January, 00:00), which is late by now and kept by
    `runOnce`. The function sleeps `slow_seconds` on `slow_replica` and returns at once
    elsewhere."""
    await migrated(database_url)
    await write_spec(database_url, 1, spec_with(
        [python_function("slow", "sleepy")],
        [schedule("job", "slow", cron="0 0 1 1 *", missedFirePolicy="runOnce", missedFireGraceSeconds=0,
                  payload={"seconds": 0, "slow_replica": slow_replica, "slow_seconds": slow_seconds})],
        leaseSeconds=lease_seconds))
    await fetch(database_url,
                "INSERT INTO schedule_lanes (namespace, cluster, schedule, lane, planned_until, definition_hash)"
                " VALUES ($1, $2, 'job', '', date_trunc('year', now()) - interval '1 second', '')", NAMESPACE, CLUSTER)


async def wait_for(predicate, within: float = 30.0, interval: float = 0.1) -> None:
    """Poll an async predicate until true; fail the test if it never becomes true."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        if await predicate():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within} s: {predicate.__doc__}")
        await asyncio.sleep(interval)


async def until_serving(process: RuntimeProcess, within: float = 30.0) -> None:
    """Wait until the runtime answers its readiness probe."""
    async def ready() -> bool:
        """the runtime answers /readyz"""
        try:
            async with httpx.AsyncClient() as http:
                return (await http.get(f"{process.url}/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    await wait_for(ready, within=within)


class RuntimeProcess:
    """A real `python -m agent_runtime` subprocess (what `agentclusters runtime` runs)."""

    def __init__(self, database_url: str, redis_url: str, replica: str, pod_ip: str,
                 port: int, log_dir: Path, grace_seconds: float = 5.0, ordinal: int = 0,
                 extra_env: dict[str, str] | None = None) -> None:
        self.replica = replica
        self.pod_ip = pod_ip
        self.port = port
        self.log_path = log_dir / f"{replica}.log"
        env = {
            **os.environ,
            "AGENT_NAMESPACE": NAMESPACE, "AGENT_CLUSTER": CLUSTER, "AGENT_REPLICA": replica,
            "AGENT_ORDINAL": str(ordinal), "POD_IP": pod_ip, "AGENT_HTTP_PORT": str(port),
            "DATABASE_URL": database_url, "REDIS_URL": redis_url,
            "AGENT_SHUTDOWN_GRACE_SECONDS": str(grace_seconds),
            "AGENT_REPLICA_TOKEN": REPLICA_TOKEN,
            "PYTHONPATH": str(REPO),
            **(extra_env or {}),
        }
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agent_runtime"], cwd=REPO, env=env,
            stdout=self._log, stderr=subprocess.STDOUT,
        )

    @property
    def url(self) -> str:
        return f"http://{self.pod_ip}:{self.port}"

    def signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    async def wait(self, within: float = 30.0) -> int:
        deadline = asyncio.get_running_loop().time() + within
        while self.process.poll() is None:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{self.replica} did not exit; log:\n{self.log()}")
            await asyncio.sleep(0.05)
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()


def queries_sql(name: str) -> str:
    from agent_api.db import queries

    return queries.SQL[name]
