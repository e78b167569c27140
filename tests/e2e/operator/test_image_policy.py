"""Each tier lists the image prefixes its AgentClusters may run (`allowedImages`); the operator's
own image is always allowed. The admission webhook refuses any other `spec.image` saying which
Helm value allows it, and the reconcile creates no pod from a stored spec whose image the tier
does not allow (admitted before the policy, or in a namespace that changed tier).

The devcluster's tiers (devcluster/operator_process.py): standard allows `agent-clusters:`,
pro allows `registry.example/approved/`, free allows nothing but the operator's image."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from agent_api import constants
from tests.e2e.helpers import eventually
from tests.e2e.operator import agentclusters as ac
from tests.e2e.operator.conftest import manifest

pytestmark = pytest.mark.e2e

PRO = {constants.LABEL_TIER: "pro"}


def refusal(call) -> str:
    with pytest.raises(ApiException) as refused:
        call()
    return json.loads(refused.value.body)["message"]


def test_an_image_outside_the_tiers_prefixes_is_refused_with_the_helm_value_to_change(agc, make_namespace):
    namespace = make_namespace(PRO)

    message = refusal(lambda: ac.create(agc, namespace, manifest("foreign", 0, image="docker.io/someone/agent:1")))

    assert message.endswith(
        f'denied the request: spec.image "docker.io/someone/agent:1" is not allowed in namespace "{namespace}" '
        '(tier pro): images must start with registry.example/approved/, or be the operator\'s own image '
        '"agent-clusters:dev" (used when spec.image is unset). To allow another registry, a platform admin '
        "adds its prefix to the Helm value tiers.tiers.pro.allowedImages, e.g. "
        "--set 'tiers.tiers.pro.allowedImages={registry.example/approved/,docker.io/someone/}'"), message
    assert not ac.exists(agc, namespace, "foreign")


def test_an_image_under_an_allowed_prefix_is_accepted(agc, make_namespace):
    namespace = make_namespace(PRO)

    ac.create(agc, namespace, manifest("approved", 0, image="registry.example/approved/agent:1.2"))

    assert ac.exists(agc, namespace, "approved")


def test_the_operators_own_image_is_allowed_in_a_tier_that_allows_nothing_else(agc, make_namespace):
    namespace = make_namespace({constants.LABEL_TIER: "free"})

    ac.create(agc, namespace, manifest("own", 0, image="agent-clusters:dev"))
    message = refusal(lambda: ac.create(agc, namespace, manifest("other", 0, image="agent-clusters:v1")))

    assert ac.exists(agc, namespace, "own")
    assert "tier free allows no image but the operator's own" in message, message


def test_changing_to_a_disallowed_image_is_refused_and_the_spec_kept(agc, make_namespace):
    namespace = make_namespace(PRO)
    ac.create(agc, namespace, manifest("moving", 0, image="registry.example/approved/agent:1"))

    message = refusal(lambda: ac.patch_spec(agc, namespace, "moving", {"image": "evil.example/agent:1"}))

    assert 'spec.image "evil.example/agent:1" is not allowed' in message, message
    assert ac.get(agc, namespace, "moving")["spec"]["image"] == "registry.example/approved/agent:1"


def test_a_stored_spec_whose_image_the_tier_does_not_allow_gets_no_pod_and_says_why(
        agc, k8s_api: ApiClient, make_namespace):
    core = client.CoreV1Api(k8s_api)
    namespace = make_namespace()  # standard: agent-clusters: images are allowed
    ac.create(agc, namespace, manifest("grandfathered", 0, image="agent-clusters:v1"))
    core.patch_namespace(namespace, {"metadata": {"labels": PRO}})  # now pro: they are not

    ac.scale(agc, namespace, "grandfathered", 1)

    message = ac.event(core, namespace, "grandfathered", "InvalidSpec")
    assert message.startswith(f'spec.image "agent-clusters:v1" is not allowed in namespace "{namespace}" (tier pro)')

    def degraded() -> dict | None:
        found = ac.condition(ac.get(agc, namespace, "grandfathered"), constants.CONDITION_DEGRADED)
        return found if found is not None and found["status"] == "True" else None

    condition = eventually(degraded, what="the Degraded condition")
    assert condition["message"].startswith('spec rejected: spec.image "agent-clusters:v1" is not allowed')
    assert not ac.pods_of(core, namespace, "grandfathered")
    assert not ac.status(agc, namespace, "grandfathered").get("members")


def test_a_refused_spec_is_reported_once_not_on_every_reconcile(agc, k8s_api: ApiClient, make_namespace):
    core = client.CoreV1Api(k8s_api)
    namespace = make_namespace()
    ac.create(agc, namespace, manifest("refused", 0, image="agent-clusters:v1"))
    core.patch_namespace(namespace, {"metadata": {"labels": PRO}})

    def observed(generation: int) -> bool:
        found = ac.condition(ac.get(agc, namespace, "refused"), constants.CONDITION_DEGRADED)
        return found is not None and found["status"] == "True" and found["observedGeneration"] == generation

    eventually(lambda: observed(1), what="generation 1 refused")
    ac.patch_spec(agc, namespace, "refused", {"limits": {"maxConcurrentRuns": 2}})  # reconciled again, same refusal
    eventually(lambda: observed(2), what="generation 2 refused")
    assert len(ac.events_of(core, namespace, "refused", "InvalidSpec")) == 1
