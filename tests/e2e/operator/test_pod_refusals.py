"""A pod the API server refuses (here: a real ResourceQuota on the namespace's pod count) shows
on the AgentCluster, in its Degraded condition and a Warning event with the API server's own
words, and the condition clears once the cause is gone."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from agent_api import constants
from tests.e2e.helpers import eventually
from tests.e2e.operator import agentclusters as ac
from tests.e2e.operator.conftest import manifest

pytestmark = pytest.mark.e2e

NAME = "capped"
QUOTA = "one-pod"
REFUSED = "PodCreateRefused"  # the documented reason (constants.EVENT_POD_CREATE_REFUSED)


@pytest.fixture(scope="module")
def capped(k8s_api: ApiClient, operator) -> Iterator[dict]:
    """A namespace whose ResourceQuota allows one pod, and a cluster of two replicas in it."""
    core = client.CoreV1Api(k8s_api)
    agc = client.CustomObjectsApi(k8s_api)
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace(body={"metadata": {"name": namespace}})
    core.create_namespaced_resource_quota(namespace, {"metadata": {"name": QUOTA},
                                                      "spec": {"hard": {"pods": "1"}}})
    # The quota admission plugin refuses every pod until the controller-manager has computed
    # the quota's usage; wait, so the refusal seen is the pod count's.
    eventually(lambda: (core.read_namespaced_resource_quota(QUOTA, namespace).status.hard or {}).get("pods"),
               timeout=60, what="the quota's status")
    ac.create(agc, namespace, manifest(NAME, 2))
    yield {"namespace": namespace, "core": core, "agc": agc}
    core.delete_namespace(namespace, propagation_policy="Background")


def _degraded(agc: client.CustomObjectsApi, namespace: str) -> dict | None:
    return ac.condition(ac.get(agc, namespace, NAME), constants.CONDITION_DEGRADED)


def test_a_refused_pod_sets_degraded_with_the_api_servers_message(capped):
    agc, namespace = capped["agc"], capped["namespace"]

    degraded = eventually(lambda: (d := _degraded(agc, namespace)) and d["reason"] == REFUSED and d,
                          timeout=60, what="Degraded=True, PodCreateRefused")

    assert degraded["status"] == "True"
    assert "exceeded quota: one-pod" in degraded["message"]
    ready = ac.condition(ac.get(agc, namespace, NAME), constants.CONDITION_READY)
    assert (ready["status"], ready["reason"]) == ("False", REFUSED)


def test_a_refused_pod_leaves_a_warning_event_with_the_api_servers_message(capped):
    message = ac.event(capped["core"], capped["namespace"], NAME, REFUSED)

    assert "forbidden" in message and "exceeded quota: one-pod" in message
    event = ac.events_of(capped["core"], capped["namespace"], NAME, REFUSED)[0]
    assert event.type == "Warning"


def test_the_condition_clears_once_the_quota_is_removed(capped):
    agc, core, namespace = capped["agc"], capped["core"], capped["namespace"]

    core.delete_namespaced_resource_quota(QUOTA, namespace)

    ac.ready_members(agc, namespace, NAME, 2)
    degraded = eventually(lambda: (d := _degraded(agc, namespace)) and d["status"] == "False" and d,
                          timeout=60, what="Degraded=False")
    assert degraded["reason"] == "AsExpected"
