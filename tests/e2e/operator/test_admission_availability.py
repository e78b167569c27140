"""Admission with several operators, and with none.

Every operator replica serves the validating webhook, leader or not, at one address (in a
cluster: the Service; in the devcluster: one loopback port all of them listen on). So when one
goes away, killed or shut down, a bad spec is still refused by the webhook itself (its
message, never "failed calling webhook"). With no operator at all, the API server fails
closed: the webhooks stay configured (kopf leaves persistent webhooks in place on shutdown),
nobody answers, and every create or update of an AgentCluster is refused."""

from __future__ import annotations

import json
import signal

import pytest
from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from tests.e2e.helpers import eventually
from tests.e2e.operator import agentclusters as ac
from tests.e2e.operator.conftest import manifest
from tests.e2e.operator.operators import OperatorGroup

pytestmark = pytest.mark.e2e

ECHO = {"name": "echo", "python": {"entrypoint": "agent_runtime.builtins:echo"}}
BAD_CRON = "61 * * * *"
REFUSAL = f"cron '{BAD_CRON}' is not a valid cron expression"
CONFIGURATION = "agentclusters.io"  # devcluster/operator_process.py
WEBHOOKS = ["scale.agentclusters.io", "spec.agentclusters.io"]


def bad_spec(name: str) -> dict:
    return manifest(name, 1, functions=[ECHO],
                    schedules=[{"name": "tick", "function": "echo", "cron": BAD_CRON}])


def refusal(agc: client.CustomObjectsApi, namespace: str, name: str) -> str:
    """The API server's answer to creating a bad spec (fails the test if it was admitted)."""
    with pytest.raises(ApiException) as refused:
        ac.create(agc, namespace, bad_spec(name))
    return refused.value.body or ""


@pytest.mark.parametrize(("victim", "how"), [
    ("leader", signal.SIGKILL), ("follower", signal.SIGKILL),
    ("leader", signal.SIGTERM), ("follower", signal.SIGTERM),
], ids=["leader-killed", "follower-killed", "leader-shut-down", "follower-shut-down"])
def test_the_webhook_keeps_refusing_bad_specs_while_one_operator_goes_away(
        operator_group: OperatorGroup, agc, namespace: str, victim: str, how: signal.Signals):
    leader = operator_group.leader()
    gone = leader if victim == "leader" else operator_group.others(leader)[0]
    for i in range(10):
        assert REFUSAL in refusal(agc, namespace, f"before-{i}")

    if how == signal.SIGKILL:
        operator_group.kill(gone)
    else:
        gone.stop()  # SIGTERM: kopf's cleanup runs, as in a rolling update or a drain

    answers = [refusal(agc, namespace, f"after-{i}") for i in range(30)]
    assert [a for a in answers if REFUSAL not in a] == []
    assert not ac.exists(agc, namespace, "after-0")


def test_with_no_operator_running_admission_fails_closed(
        operator_group: OperatorGroup, agc, k8s_api: ApiClient, namespace: str):
    admission = client.AdmissionregistrationV1Api(k8s_api)
    ac.create(agc, namespace, manifest("existing", 0))

    for process in operator_group.processes:
        process.stop()  # graceful: SIGTERM, kopf runs its cleanup (and releases the Lease)

    configured = admission.read_validating_webhook_configuration(CONFIGURATION)
    assert sorted(w.name for w in configured.webhooks or []) == WEBHOOKS
    refusals = []
    for attempt in (
        lambda: ac.create(agc, namespace, manifest("while-down", 1)),
        lambda: ac.scale(agc, namespace, "existing", 2),
        # Any update, e.g. removing a finalizer by hand (docs/operations.md).
        lambda: agc.patch_namespaced_custom_object(ac.G, ac.V, namespace, ac.P, "existing",
                                                   {"metadata": {"labels": {"touched": "yes"}}}),
    ):
        with pytest.raises(ApiException) as refused:
            attempt()
        refusals.append((refused.value.status, json.loads(refused.value.body)["message"]))
    # The API server could not call the webhook, and failurePolicy Fail turns that into a refusal.
    assert [(status, message.split(": failed to call webhook")[0]) for status, message in refusals] == [
        (500, f'Internal error occurred: failed calling webhook "{name}"')
        for name in ("spec.agentclusters.io", "scale.agentclusters.io", "spec.agentclusters.io")], refusals
    assert not ac.exists(agc, namespace, "while-down")
    # Deleting needs no admission: the webhooks match CREATE and UPDATE only.
    ac.delete(agc, namespace, "existing")
    eventually(lambda: not ac.exists(agc, namespace, "existing"), what="the deletion")


def test_deleting_the_webhook_configuration_lets_changes_through_until_an_operator_restores_it(
        operator_group: OperatorGroup, agc, k8s_api: ApiClient, namespace: str):
    admission = client.AdmissionregistrationV1Api(k8s_api)
    for process in operator_group.processes:
        process.stop()

    admission.delete_validating_webhook_configuration(CONFIGURATION)
    eventually(lambda: ac.create(agc, namespace, manifest("unchecked", 0)), timeout=30,
               what="a create without the webhook configuration")  # the API server's cache follows

    operator_group.start_again(0)
    configured = admission.read_validating_webhook_configuration(CONFIGURATION)
    assert sorted(w.name for w in configured.webhooks or []) == WEBHOOKS
    attempts = iter(range(1000))

    def refused_again() -> bool:
        # The API server picks the configuration up from its watch: a create may slip through
        # for a moment after the operator wrote it.
        name = f"checked-again-{next(attempts)}"
        try:
            ac.create(agc, namespace, bad_spec(name))
        except ApiException as refused:
            return REFUSAL in (refused.body or "")
        return False

    eventually(refused_again, timeout=30, what="the webhook to refuse a bad spec again")
