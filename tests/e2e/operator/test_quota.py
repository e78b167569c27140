"""Tier slots: the admission webhook refuses what the namespace's slots cannot hold, with the
numbers; the reconcile never exceeds them either, should the webhook be bypassed."""

from __future__ import annotations

import json
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

WEBHOOK_CONFIGURATION = "agentclusters.io"


def pro_refusal(namespace: str, used: int, requested: int) -> str:
    return (f'namespace "{namespace}" (tier pro) has 5 agent slots, {used} used by other clusters; '
            f"{requested} requested")


def refusal_message(exc: ApiException) -> str:
    return json.loads(exc.body)["message"]


@pytest.fixture
def pro_namespace(make_namespace) -> str:
    return make_namespace({constants.LABEL_TIER: "pro"})


@pytest.fixture
def webhook_bypassed(k8s_api: ApiClient, operator) -> Iterator[None]:
    """The ValidatingWebhookConfiguration removed for the test, restored afterwards."""
    admission = client.AdmissionregistrationV1Api(k8s_api)
    saved = k8s_api.sanitize_for_serialization(
        admission.read_validating_webhook_configuration(WEBHOOK_CONFIGURATION))
    saved["metadata"] = {k: v for k, v in saved["metadata"].items() if k in ("name", "labels", "annotations")}
    admission.delete_validating_webhook_configuration(WEBHOOK_CONFIGURATION)
    try:
        yield
    finally:
        admission.create_validating_webhook_configuration(saved)


def test_create_over_the_slots_is_refused_with_the_numbers(agc, k8s_api: ApiClient, pro_namespace: str):
    ac.create(agc, pro_namespace, manifest("first", 3))

    with pytest.raises(ApiException) as refused:
        ac.create(agc, pro_namespace, manifest("second", 3))

    assert refused.value.status == 403
    assert refusal_message(refused.value).endswith(f"denied the request: {pro_refusal(pro_namespace, 3, 3)}")
    assert not ac.exists(agc, pro_namespace, "second")
    assert not ac.pods_of(client.CoreV1Api(k8s_api), pro_namespace, "second")


def test_scale_over_the_slots_is_refused_with_the_numbers(agc, devcluster, pro_namespace: str):
    ac.create(agc, pro_namespace, manifest("grower", 2))

    scaled = devcluster.kubectl("-n", pro_namespace, "scale", "agc/grower", "--replicas=6")

    assert scaled.returncode != 0
    assert pro_refusal(pro_namespace, 0, 6) in scaled.stderr
    assert ac.get(agc, pro_namespace, "grower")["spec"]["replicas"] == 2


def test_scale_within_the_slots_left_by_other_clusters_is_accepted(agc, pro_namespace: str):
    ac.create(agc, pro_namespace, manifest("left", 2))
    ac.create(agc, pro_namespace, manifest("right", 1))

    ac.scale(agc, pro_namespace, "right", 3)

    assert ac.get(agc, pro_namespace, "right")["spec"]["replicas"] == 3


def test_reconcile_never_exceeds_the_slots_when_the_webhook_is_bypassed(
        agc, k8s_api: ApiClient, pro_namespace: str, webhook_bypassed):
    core = client.CoreV1Api(k8s_api)
    expected = pro_refusal(pro_namespace, 0, 7)
    eventually(lambda: ac.create(agc, pro_namespace, manifest("greedy", 7)), timeout=30,
               what="the create to pass without the webhook")

    def capped() -> dict | None:
        # status.replicas is written after the pods exist (members are written before them).
        seen = ac.status(agc, pro_namespace, "greedy")
        members = seen.get("members") or []
        pods = {p.metadata.name for p in ac.pods_of(core, pro_namespace, "greedy")}
        return seen if seen.get("replicas") == 5 and pods == {m["pod"] for m in members} else None

    seen = eventually(capped, timeout=60, what="five replicas with their pods")

    assert len({m["name"] for m in seen["members"]}) == 5
    quota = eventually(lambda: ac.condition(ac.get(agc, pro_namespace, "greedy"),
                                            constants.CONDITION_QUOTA_EXCEEDED), what="a QuotaExceeded condition")
    assert (quota["status"], quota["reason"], quota["message"]) == ("True", "SlotsExhausted", expected)
    assert ac.event(core, pro_namespace, "greedy", constants.EVENT_QUOTA_EXCEEDED) == expected
