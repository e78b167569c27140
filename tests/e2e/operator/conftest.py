"""The operator tier: the real operator process against the session's devcluster, with its
own PostgreSQL database and the session's Redis."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from agent_api import constants
from devcluster import operator_process, services
from devcluster.cluster import DevCluster
from devcluster.processes import Process
from tests.e2e.helpers import eventually, pid_alive


@dataclass
class RunningOperator:
    process: Process
    database_url: str
    state_dir: Path
    start: Callable[[], Process]

    def log(self) -> str:
        return self.process.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the operator: no cleanup handlers run, whatever it was doing stops there."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.popen.wait(timeout=10)
        eventually(lambda: not pid_alive(self.process.pid), timeout=10, what="the operator to die")

    def restart(self) -> None:
        """Start a new operator process (same settings and database) after `kill()`."""
        self.process = self.start()


@pytest.fixture(scope="session")
def operator(devcluster: DevCluster, postgres_server: services.Postgres, redis_server: services.Redis,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningOperator]:
    import asyncio

    async def create_database() -> None:
        conn = await asyncpg.connect(postgres_server.url)
        try:
            await conn.execute("DROP DATABASE IF EXISTS agentclusters_e2e WITH (FORCE)")
            await conn.execute("CREATE DATABASE agentclusters_e2e")
        finally:
            await conn.close()

    asyncio.run(create_database())
    database_url = postgres_server.url_for("agentclusters_e2e")
    state_dir = tmp_path_factory.mktemp("operator")

    def start() -> Process:
        return operator_process.start(
            state_dir, devcluster.bin_dir / "kubectl", devcluster.kubeconfig, database_url,
            redis_server.url, grace_seconds=5,
        )

    running = RunningOperator(start(), database_url, state_dir, start)
    try:
        yield running
    finally:
        running.process.stop()


@pytest.fixture
def agc(k8s_api: ApiClient, operator: RunningOperator) -> client.CustomObjectsApi:
    """The AgentCluster API (the operator is running)."""
    return client.CustomObjectsApi(k8s_api)


@pytest.fixture
def make_namespace(k8s_api: ApiClient) -> Iterator[Callable[..., str]]:
    """Creates further fresh namespaces, optionally labelled (e.g. with a tier); all are
    deleted after the test."""
    core = client.CoreV1Api(k8s_api)
    created: list[str] = []

    def make(labels: dict[str, str] | None = None) -> str:
        name = f"t-{uuid.uuid4().hex[:10]}"
        core.create_namespace(body={"metadata": {"name": name, "labels": labels or {}}})
        created.append(name)
        eventually(lambda: core.read_namespaced_service_account("default", name), timeout=30,
                   what=f"the default ServiceAccount of {name}")
        return name

    yield make
    for name in created:
        try:
            core.delete_namespace(name, propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise


def manifest(name: str, replicas: int, **spec: object) -> dict:
    return {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND,
        "metadata": {"name": name},
        "spec": {"replicas": replicas, **spec},
    }
