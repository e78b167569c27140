"""The operator tier: the AgentCluster API with the real operator running (the `operator`
fixture itself lives in tests/e2e/conftest.py: one operator per session, shared with the
gateway tier; `operator_group` swaps it for several, for the HA tests)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from agent_api import constants
from devcluster import operator_process
from tests.e2e.helpers import RunningOperator
from tests.e2e.operator.operators import OperatorGroup


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


@pytest.fixture
def operator_group(request: pytest.FixtureRequest, devcluster, operator, redis_server,
                   k8s_api: ApiClient, tmp_path) -> Iterator[OperatorGroup]:
    """Two operators (or `request.param`) on the session's database, in place of the session's
    operator, which is stopped gracefully (it releases the Lease) and started again after."""
    operator.process.stop()
    count = getattr(request, "param", 2)
    processes = operator_process.start_many(
        count, tmp_path, devcluster.bin_dir / "kubectl", devcluster.kubeconfig, operator.database_url,
        redis_server.url, operator.replica_auth_key, grace_seconds=5)
    group = OperatorGroup(processes, client.CoordinationV1Api(k8s_api), tmp_path, devcluster.kubeconfig,
                          operator.replica_auth_key)
    try:
        yield group
    finally:
        group.stop_all()
        operator.restart()
