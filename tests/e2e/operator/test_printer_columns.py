"""`kubectl get agc` must not show an unhealthy cluster as healthy: the Ready column is the
operator's Ready condition, read here from the API server's Table (what kubectl prints)."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from agent_api import constants
from tests.e2e.helpers import eventually
from tests.e2e.operator import agentclusters as ac
from tests.e2e.operator.conftest import manifest

pytestmark = pytest.mark.e2e

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def table_row(k8s_api: ApiClient, namespace: str, name: str) -> dict[str, object]:
    """One AgentCluster as the API server's Table ({column name: cell}, wide columns too)."""
    method, url, headers, body, _ = k8s_api.param_serialize(
        "GET", f"/apis/{constants.GROUP}/{constants.VERSION}/namespaces/{namespace}/{constants.PLURAL}/{name}",
        header_params={"Accept": TABLE}, auth_settings=["BearerToken"])
    response = k8s_api.call_api(method, url, header_params=headers, body=body)
    response.read()
    table = json.loads(response.data)
    assert table["kind"] == "Table", table
    (row,) = table["rows"]
    return {c["name"]: cell for c, cell in zip(table["columnDefinitions"], row["cells"], strict=True)}


def test_a_degraded_cluster_with_no_replica_running_shows_not_ready(agc, k8s_api: ApiClient, make_namespace):
    """A spec the tier refuses (image no longer allowed): no pod, so every count agrees (0 of 0
    ready) - the Ready column must still say False and why."""
    core = client.CoreV1Api(k8s_api)
    namespace = make_namespace()  # standard: agent-clusters: images are allowed
    ac.create(agc, namespace, manifest("grounded", 0, image="agent-clusters:v1"))
    core.patch_namespace(namespace, {"metadata": {"labels": {constants.LABEL_TIER: "pro"}}})  # now they are not
    ac.scale(agc, namespace, "grounded", 1)

    def degraded() -> bool:
        found = ac.condition(ac.get(agc, namespace, "grounded"), constants.CONDITION_DEGRADED)
        return found is not None and found["status"] == "True"

    eventually(degraded, what="grounded to be Degraded")
    row = table_row(k8s_api, namespace, "grounded")

    assert (row["Ready"], row["Reason"]) == ("False", "ConfigNotStored")
    assert "is not allowed" in str(row["Message"])


def test_a_healthy_cluster_shows_ready(agc, k8s_api: ApiClient, namespace: str):
    ac.create(agc, namespace, manifest("fine", 1))
    ac.ready_members(agc, namespace, "fine", 1)

    row = eventually(lambda: (r := table_row(k8s_api, namespace, "fine"))["Ready"] == "True" and r,
                     what="the Ready column True")

    assert (row["Ready-Replicas"], row["Reason"]) == (1, "AllReplicasReady")
