"""Fixtures for tests that run real runtime processes (`spawn`) against a PostgreSQL of their
own (`private_postgres`), so stopping or restarting it disturbs no other test."""

from __future__ import annotations

import random
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devcluster import ports, services
from tests.integration.runtime import harness
from tests.integration.runtime.harness import RuntimeProcess


@pytest.fixture
def spawn(redis_url, tmp_path):
    """Start runtime processes; each on its own loopback address; killed at teardown.

    As the operator would: the database is migrated first, and the runtime gets its
    namespace's own role (`harness.tenant_url`) unless `tenant=False` (then `database_url` is
    used as given)."""
    started: list[RuntimeProcess] = []
    octet = random.randint(2, 200)
    handed: dict[str, str] = {}

    def start(replica: str, database_url: str, redis: str | None = None, grace: float = 5.0,
              tenant: bool = True, **env: str) -> RuntimeProcess:
        if tenant:
            if database_url not in handed:
                handed[database_url] = harness.tenant_url_blocking(database_url)
            database_url = handed[database_url]
        pod_ip = f"127.0.{octet}.{len(started) + 2}"
        process = RuntimeProcess(database_url, redis or redis_url, replica, pod_ip,
                                 ports.free_port(pod_ip), tmp_path, grace, len(started),
                                 extra_env=env)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.process.poll() is None:
            process.signal(signal.SIGCONT)  # a frozen process must not outlive the test
        process.kill()


@pytest.fixture
def private_postgres() -> Iterator[services.Postgres]:
    """A PostgreSQL of this test's own, so restarting it disturbs no other test.

    Not under pytest's basetemp: pytest resets /tmp/pytest-of-<user> to 0700, which would lock
    the `postgres` user out of its data directory.
    """
    data_dir = Path(tempfile.mkdtemp(prefix="agentclusters-test-pg-restart-"))
    server = services.Postgres(data_dir, ports.free_port()).start()
    yield server
    server.stop()
    shutil.rmtree(data_dir, ignore_errors=True)
