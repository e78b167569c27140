"""The gateway tier: the real gateway process in front of the real operator, its replica pods,
PostgreSQL and Redis, driven through the official MCP client with ServiceAccount tokens."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from devcluster import gateway_process, services
from devcluster.cluster import DevCluster
from tests.e2e.helpers import RunningOperator


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
