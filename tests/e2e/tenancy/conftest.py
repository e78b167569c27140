"""Two tenant namespaces, A and B, each running a cluster, for the hostile-tenant suite: every
test takes only what B's replicas are handed (its runtime Secret) and tries to reach A."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from tests.e2e.helpers import RunningOperator, eventually
from tests.e2e.operator import agentclusters as ac
from tests.e2e.operator.conftest import manifest

RUNTIME_SECRET = "agentclusters-runtime"
ECHO = {"name": "echo", "python": {"entrypoint": "agent_runtime.builtins:echo"}}
EVERY_SECOND = [{"name": "tick", "function": "echo", "cron": "* * * * * *"}]


def runtime_secret_value(core: client.CoreV1Api, namespace: str, key: str) -> str:
    """One value of the namespace's runtime Secret: what its replicas are handed."""
    secret = core.read_namespaced_secret(RUNTIME_SECRET, namespace)
    return base64.b64decode(secret.data[key]).decode()


@pytest.fixture(scope="module")
def tenants(k8s_api: ApiClient, operator: RunningOperator) -> Iterator[tuple[str, str]]:
    """Namespaces A and B, each with a ready cluster `ticker` running a schedule."""
    core = client.CoreV1Api(k8s_api)
    agc = client.CustomObjectsApi(k8s_api)
    names = [f"t-{uuid.uuid4().hex[:10]}" for _ in range(2)]
    for name in names:
        core.create_namespace(body={"metadata": {"name": name}})
        eventually(lambda n=name: core.read_namespaced_service_account("default", n), timeout=30,
                   what=f"the default ServiceAccount of {name}")
        ac.create(agc, name, manifest("ticker", 2, functions=[ECHO], schedules=EVERY_SECOND))
    for name in names:
        ac.ready_members(agc, name, "ticker", 2)
    yield names[0], names[1]
    for name in names:
        core.delete_namespace(name, propagation_policy="Background")
