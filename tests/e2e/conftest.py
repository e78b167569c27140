"""The e2e tier: one devcluster (real etcd, kube-apiserver, controller-manager, scheduler and
the process kubelet) per test session, and a fresh namespace per test.

The binaries are never optional: `binaries.ensure()` builds them when the cache lacks them
(many minutes, once) and raises with the build's reason if that fails.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client, config
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from devcluster.cluster import DevCluster
from tests.e2e.helpers import eventually


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
