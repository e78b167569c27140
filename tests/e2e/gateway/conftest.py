"""The gateway tier: the real gateway process in front of the real operator, its replica pods,
PostgreSQL and Redis, driven through the official MCP client with ServiceAccount tokens."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from devcluster import gateway_process, services
from devcluster.cluster import DevCluster
from tests.e2e.helpers import RunningOperator

CALLER = "mcp-caller"  # the ServiceAccount gateway_process.issue_caller_token makes by default


@pytest.fixture(scope="session")
def gateway(devcluster: DevCluster, operator: RunningOperator,
            redis_server: services.Redis) -> Iterator[gateway_process.RunningGateway]:
    running = gateway_process.start(operator.state_dir, devcluster.kubeconfig, operator.database_url,
                                    redis_server.url, operator.replica_auth_key, rate_limit_per_minute=100_000)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def token_for(devcluster: DevCluster) -> Callable[[str], str]:
    """A bearer token of a ServiceAccount allowed on agentclusters in that namespace only,
    minted for the gateway's audience."""
    def issue(namespace: str) -> str:
        return gateway_process.issue_caller_token(devcluster.bin_dir / "kubectl", devcluster.kubeconfig, namespace)

    return issue


@pytest.fixture
def grant_secret_read(k8s_api: ApiClient) -> Callable[[str, str], None]:
    """Lets the caller of `token_for(namespace)` get one Secret there (a Role and a RoleBinding),
    as a tool that references the Secret requires."""
    def grant(namespace: str, secret: str) -> None:
        rbac = client.RbacAuthorizationV1Api(k8s_api)
        name = f"read-{secret}"
        rbac.create_namespaced_role(namespace, {"metadata": {"name": name}, "rules": [
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [secret], "verbs": ["get"]}]})
        rbac.create_namespaced_role_binding(namespace, {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": CALLER, "namespace": namespace}]})

    return grant


@pytest.fixture(scope="session")
def second_gateway(devcluster: DevCluster, operator: RunningOperator,
                   redis_server: services.Redis) -> Iterator[gateway_process.RunningGateway]:
    """Another gateway process beside `gateway`, on the same database, Redis and key: two
    replicas of the gateway's Deployment."""
    running = gateway_process.start(operator.state_dir, devcluster.kubeconfig, operator.database_url,
                                    redis_server.url, operator.replica_auth_key, rate_limit_per_minute=100_000,
                                    name="gateway-2")
    try:
        yield running
    finally:
        running.stop()
