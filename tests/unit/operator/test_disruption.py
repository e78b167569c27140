"""The PodDisruptionBudget builder: one per cluster of 2+ replicas, owned by it, selecting
exactly its replica pods, with the spec's maxUnavailable (1 by default)."""

from __future__ import annotations

from agent_api import constants, models
from agent_operator import disruption

CLUSTER = {"metadata": {"name": "scout", "namespace": "team-a", "uid": "u-1", "generation": 1}}


def _spec(**fields: object) -> models.AgentClusterSpec:
    return models.AgentClusterSpec.model_validate(fields)


def test_fewer_than_two_replicas_have_no_budget():
    assert disruption.build(CLUSTER, _spec(replicas=0)) is None
    assert disruption.build(CLUSTER, _spec(replicas=1)) is None


def test_two_replicas_get_a_budget_of_one_unavailable_owned_by_the_cluster():
    budget = disruption.build(CLUSTER, _spec(replicas=2))

    assert budget is not None
    assert (budget["apiVersion"], budget["kind"]) == ("policy/v1", "PodDisruptionBudget")
    assert (budget["metadata"]["name"], budget["metadata"]["namespace"]) == ("scout", "team-a")
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"] == {"matchLabels": {constants.LABEL_CLUSTER: "scout"}}
    owner = budget["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == (constants.KIND, "u-1", True)
    assert disruption.owned_by(budget, "u-1") and not disruption.owned_by(budget, "u-2")


def test_max_unavailable_comes_from_the_spec_as_a_number_or_a_percentage():
    for value in (2, "25%"):
        budget = disruption.build(CLUSTER, _spec(replicas=4, disruption={"maxUnavailable": value}))
        assert budget is not None and budget["spec"]["maxUnavailable"] == value


def test_a_budget_whose_sync_failed_is_recognised():
    failed = {"metadata": {"generation": 1}, "status": {"conditions": [
        {"type": "DisruptionAllowed", "status": "False", "reason": "SyncFailed", "message": "no matches"}]}}
    healthy = {"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "conditions": [
        {"type": "DisruptionAllowed", "status": "True", "reason": "SufficientPods"}]}}

    assert disruption.sync_failed(failed)
    assert not disruption.sync_failed(healthy)
    assert not disruption.sync_failed({"metadata": {"generation": 1}})
