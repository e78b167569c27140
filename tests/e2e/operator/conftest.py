"""The operator tier: the real operator process against the session's devcluster, with its
own PostgreSQL database and the session's Redis."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from agent_api import constants
from devcluster import operator_process, services
from devcluster.cluster import DevCluster
from devcluster.processes import Process


@dataclass
class RunningOperator:
    process: Process
    database_url: str
    state_dir: Path

    def log(self) -> str:
        return self.process.log.read_text(errors="replace")


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
    process = operator_process.start(
        state_dir, devcluster.bin_dir / "kubectl", devcluster.kubeconfig, database_url, redis_server.url,
        grace_seconds=5,
    )
    try:
        yield RunningOperator(process, database_url, state_dir)
    finally:
        process.stop()


@pytest.fixture
def agc(k8s_api: ApiClient, operator: RunningOperator) -> client.CustomObjectsApi:
    """The AgentCluster API (the operator is running)."""
    return client.CustomObjectsApi(k8s_api)


def manifest(name: str, replicas: int, **spec: object) -> dict:
    return {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND,
        "metadata": {"name": name},
        "spec": {"replicas": replicas, **spec},
    }
