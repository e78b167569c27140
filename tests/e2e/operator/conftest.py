"""The operator tier: the AgentCluster API with the real operator running (the `operator`
fixture itself lives in tests/e2e/conftest.py: one operator per session, shared with the
gateway tier)."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from agent_api import constants
from tests.e2e.helpers import RunningOperator


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
