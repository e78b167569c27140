"""The PodDisruptionBudget of an AgentCluster of 2 or more replicas, against the devcluster's
real kube-controller-manager (its disruption controller computes the budget) and the real
eviction API: a drain cannot take every replica at once.

The tests of this module run in order on one cluster of three replicas.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from agent_api import constants
from tests.e2e.helpers import eventually
from tests.e2e.operator import agentclusters as ac
from tests.e2e.operator.conftest import manifest

pytestmark = pytest.mark.e2e

NAME = "steady"


@pytest.fixture(scope="module")
def steady(k8s_api: ApiClient, operator) -> Iterator[dict]:
    core = client.CoreV1Api(k8s_api)
    agc = client.CustomObjectsApi(k8s_api)
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace(body={"metadata": {"name": namespace}})
    created = ac.create(agc, namespace, manifest(NAME, 3))
    ac.ready_members(agc, namespace, NAME, 3)
    yield {"namespace": namespace, "core": core, "agc": agc, "policy": client.PolicyV1Api(k8s_api),
           "uid": created["metadata"]["uid"]}
    core.delete_namespace(namespace, propagation_policy="Background")


def _budget(steady: dict) -> client.V1PodDisruptionBudget | None:
    try:
        return steady["policy"].read_namespaced_pod_disruption_budget(NAME, steady["namespace"])
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _allows_one(steady: dict) -> bool:
    """The disruption controller has counted three Ready replicas and allows one disruption
    (raises with the budget's status otherwise, for the timeout's message)."""
    budget = _budget(steady)
    status = budget.status if budget is not None else None
    if status is None or (status.current_healthy, status.disruptions_allowed) != (3, 1):
        raise AssertionError(f"budget status: {status}")
    return True


def _evict(steady: dict, pod: str) -> None:
    steady["core"].create_namespaced_pod_eviction(pod, steady["namespace"], client.V1Eviction(
        metadata=client.V1ObjectMeta(name=pod, namespace=steady["namespace"])))


def test_a_cluster_of_three_has_a_budget_of_one_unavailable_owned_by_it(steady):
    budget = eventually(lambda: _budget(steady), timeout=60, what="the PodDisruptionBudget")

    assert budget.spec.max_unavailable == 1
    assert budget.spec.selector.match_labels == {constants.LABEL_CLUSTER: NAME}
    owner = budget.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid, owner.controller) == ("AgentCluster", NAME, steady["uid"], True)


def test_a_second_concurrent_eviction_is_refused_with_429(steady):
    eventually(lambda: _allows_one(steady), timeout=60, what="the budget to allow one disruption")
    first, second = sorted(p.metadata.name for p in ac.pods_of(steady["core"], steady["namespace"], NAME))[:2]

    _evict(steady, first)
    with pytest.raises(ApiException) as refused:
        _evict(steady, second)

    assert refused.value.status == 429
    assert "disruption budget" in refused.value.body
    # The evicted replica comes back under its name; the budget allows one disruption again.
    ac.ready_members(steady["agc"], steady["namespace"], NAME, 3)
    eventually(lambda: _allows_one(steady), timeout=60, what="the budget to allow one disruption again")


def test_max_unavailable_follows_the_spec(steady):
    ac.patch_spec(steady["agc"], steady["namespace"], NAME, {"disruption": {"maxUnavailable": "50%"}})

    eventually(lambda: _budget(steady).spec.max_unavailable == "50%", timeout=60,
               what="maxUnavailable 50% on the budget")


def test_scaling_below_two_replicas_deletes_the_budget(steady):
    ac.scale(steady["agc"], steady["namespace"], NAME, 1)

    eventually(lambda: _budget(steady) is None, timeout=60, what="the budget to be deleted")


def test_the_budget_is_garbage_collected_with_its_cluster(steady):
    ac.scale(steady["agc"], steady["namespace"], NAME, 2)
    eventually(lambda: _budget(steady), timeout=60, what="the budget to come back at 2 replicas")

    ac.delete(steady["agc"], steady["namespace"], NAME)

    eventually(lambda: _budget(steady) is None, timeout=90, what="the garbage collector to delete the budget")


def test_a_budget_of_the_same_name_owned_by_someone_else_is_left_alone_and_reported(
        k8s_api: ApiClient, operator, make_namespace):
    namespace = make_namespace()
    policy = client.PolicyV1Api(k8s_api)
    theirs = {"metadata": {"name": "shared"},
              "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "theirs"}}}}
    policy.create_namespaced_pod_disruption_budget(namespace, theirs)
    agc = client.CustomObjectsApi(k8s_api)

    ac.create(agc, namespace, manifest("shared", 2))

    degraded = eventually(
        lambda: (d := ac.condition(ac.get(agc, namespace, "shared"), constants.CONDITION_DEGRADED))
        and d["reason"] == "DisruptionBudgetConflict" and d, timeout=60, what="Degraded DisruptionBudgetConflict")
    assert "not owned by this AgentCluster" in degraded["message"]
    budget = policy.read_namespaced_pod_disruption_budget("shared", namespace)
    assert (budget.spec.min_available, budget.spec.max_unavailable, budget.metadata.owner_references) == (1, None, None)
    assert "not owned" in ac.event(client.CoreV1Api(k8s_api), namespace, "shared", "DisruptionBudgetConflict")
