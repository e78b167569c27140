"""The e2e tier: one devcluster (real etcd, kube-apiserver, controller-manager, scheduler and
the process kubelet) per test session, and a fresh namespace per test.

The binaries are never optional: `binaries.ensure()` builds them when the cache lacks them
(many minutes, once) and raises with the build's reason if that fails.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator

import asyncpg
import pytest
from kubernetes import client, config
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from devcluster import operator_process, services
from devcluster.cluster import DevCluster
from devcluster.processes import Process
from tests.e2e.helpers import RunningOperator, eventually


@pytest.fixture(scope="session")
def devcluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    cluster = DevCluster(tmp_path_factory.mktemp("devcluster")).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def k8s_api(devcluster: DevCluster) -> Iterator[ApiClient]:
    api = config.new_client_from_config(config_file=str(devcluster.kubeconfig))
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def namespace(k8s_api: ApiClient) -> Iterator[str]:
    """A fresh namespace (with its default ServiceAccount, so pods can be created at once)."""
    core = client.CoreV1Api(k8s_api)
    name = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace(body={"metadata": {"name": name}})
    eventually(lambda: core.read_namespaced_service_account("default", name), timeout=30,
               what=f"the default ServiceAccount of {name}")
    yield name
    try:
        core.delete_namespace(name, propagation_policy="Background")
    except ApiException as exc:
        if exc.status != 404:
            raise


@pytest.fixture(scope="session")
def operator(devcluster: DevCluster, postgres_server: services.Postgres, redis_server: services.Redis,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningOperator]:
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

    replica_auth_key = operator_process.new_replica_auth_key()

    def start() -> Process:
        process = operator_process.start(
            state_dir, devcluster.bin_dir / "kubectl", devcluster.kubeconfig, database_url,
            redis_server.url, replica_auth_key, grace_seconds=5,
        )
        # After other operators (the HA tests) the API server may still call their port.
        operator_process.wait_for_admission(devcluster.kubeconfig)
        return process

    running = RunningOperator(start(), database_url, state_dir, start, replica_auth_key)
    try:
        yield running
    finally:
        running.process.stop()


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
