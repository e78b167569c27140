"""Fixtures shared by every tier: project-owned PostgreSQL, PgBouncer and Redis for the test
session, and fault-injecting TCP proxies.

Each test session starts its own servers on free ports in a temporary directory, so tests
never touch a developer's `make dev-up` stack or any server the machine already runs.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from devcluster import ports, services
from tests.support import tcp_proxy


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[services.Postgres]:
    # Not under pytest's basetemp: every pytest start resets /tmp/pytest-of-<user> to 0700,
    # which would lock the `postgres` user out of a server another session is running.
    data_dir = Path(tempfile.mkdtemp(prefix="agentclusters-test-pg-"))
    server = services.Postgres(data_dir, ports.free_port()).start()
    yield server
    server.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def pgbouncer_server(postgres_server: services.Postgres) -> Iterator[services.PgBouncer]:
    """PgBouncer (transaction pooling) in front of the session's PostgreSQL; `database_url`'s
    database is reachable through it as `pgbouncer_server.url_for(<its name>)`."""
    # Not under pytest's basetemp, for the same reason as the PostgreSQL data directory.
    data_dir = Path(tempfile.mkdtemp(prefix="agentclusters-test-pgbouncer-"))
    server = services.PgBouncer(data_dir, ports.free_port(), postgres_server.port).start()
    yield server
    server.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.Redis]:
    server = services.Redis(tmp_path_factory.mktemp("redis"), ports.free_port()).start()
    yield server
    server.stop()


@pytest.fixture
async def database_url(postgres_server: services.Postgres) -> AsyncIterator[str]:
    """A fresh, empty database per test, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_server.url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield postgres_server.url_for(name)
    admin = await asyncpg.connect(postgres_server.url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def redis_url(redis_server: services.Redis) -> AsyncIterator[str]:
    """The session's Redis, emptied before each test."""
    client = aioredis.from_url(redis_server.url)
    await client.flushall()
    await client.aclose()
    yield redis_server.url


@pytest.fixture
def proxy_to() -> Iterator[Callable[[int], tcp_proxy.TcpProxy]]:
    """Start fault-injecting proxies in front of a port (`proxy_to(server.port)`); each is
    stopped at teardown."""
    started: list[tcp_proxy.TcpProxy] = []

    def start(upstream_port: int) -> tcp_proxy.TcpProxy:
        proxy = tcp_proxy.TcpProxy(upstream_port).start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
