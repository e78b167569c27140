"""Admission with several operators, and with none.

Every operator replica serves the validating webhook, leader or not, at one address (in a
cluster: the Service; in the devcluster: one loopback port all of them listen on). So when one
goes away, killed or shut down, a bad spec is still refused by the webhook itself (its
message, never "failed calling webhook"). With no operator at all, the API server fails
closed: the webhooks stay configured (kopf leaves persistent webhooks in place on shutdown),
nobody answers, and every create or update of an AgentCluster is refused."""

from __future__ import annotations

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

    configured = admission.read_validating_webhook_configuration("agentclusters.io")
    assert sorted(w.name for w in configured.webhooks or []) == ["scale.agentclusters.io", "spec.agentclusters.io"]
    with pytest.raises(ApiException) as refused:
        ac.create(agc, namespace, manifest("while-down", 1))
    assert refused.value.status == 500
    assert "failed calling webhook" in refused.value.body
    with pytest.raises(ApiException) as scale_refused:
        ac.scale(agc, namespace, "existing", 2)
    assert "failed calling webhook" in scale_refused.value.body
    assert not ac.exists(agc, namespace, "while-down")
    # Deleting needs no admission: the configured webhooks match CREATE and UPDATE only.
    ac.delete(agc, namespace, "existing")
    eventually(lambda: not ac.exists(agc, namespace, "existing"), what="the deletion")
