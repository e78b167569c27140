"""The operator's admission webhook refuses what the CRD schema cannot check: cron syntax,
time zones, the tier's shortest schedule interval, unknown tiers and slots. Each refusal names
the problem, and nothing is created. (The schema and CEL refusals are in
tests/e2e/test_crd_apiserver.py.)"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from agent_api import constants
from tests.e2e.operator import agentclusters as ac
from tests.e2e.operator.conftest import manifest

pytestmark = pytest.mark.e2e

ECHO = {"name": "echo", "python": {"entrypoint": "agent_runtime.builtins:echo"}}


def with_schedule(replicas: int = 1, name: str = "refused", **schedule: str) -> dict:
    return manifest(name, replicas, functions=[ECHO],
                    schedules=[{"name": "tick", "function": "echo", "cron": "0 * * * *", **schedule}])


@dataclass(frozen=True)
class Refusal:
    id: str
    tier: str | None  # namespace label value; None: no label (the default tier)
    manifest: dict
    message: str  # "{ns}" stands for the namespace


REFUSALS = [
    Refusal("cron-minute-out-of-range", None, with_schedule(cron="61 * * * *"),
            "spec.schedules[0] (tick): cron '61 * * * *' is not a valid cron expression"),
    Refusal("cron-hour-out-of-range", None, with_schedule(cron="0 25 * * *"),
            "spec.schedules[0] (tick): cron '0 25 * * *' is not a valid cron expression"),
    Refusal("cron-zero-step", None, with_schedule(cron="*/0 * * * *"),
            "spec.schedules[0] (tick): cron '*/0 * * * *' is not a valid cron expression"),
    Refusal("cron-unknown-weekday", None, with_schedule(cron="0 0 * * MON-XYZ"),
            "spec.schedules[0] (tick): cron '0 0 * * MON-XYZ' is not a valid cron expression"),
    Refusal("cron-never-fires", None, with_schedule(cron="0 0 31 2 *"),
            "spec.schedules[0] (tick): cron '0 0 31 2 *' never fires (no date matches it)"),
    Refusal("timezone-unknown", None, with_schedule(timezone="Mars/Olympus_Mons"),
            'spec.schedules[0].timezone: unknown time zone "Mars/Olympus_Mons"'),
    Refusal("timezone-offset-is-not-a-zone", None, with_schedule(timezone="UTC+2"),
            'spec.schedules[0].timezone: unknown time zone "UTC+2"'),
    Refusal("schedule-more-frequent-than-free-tier", "free", with_schedule(cron="*/30 * * * * *"),
            "spec.schedules[0] (tick): cron '*/30 * * * * *' fires every 30s, but tier free allows "
            "at most one fire every 60s"),
    Refusal("free-tier-slots", "free", manifest("refused", 3),
            'namespace "{ns}" (tier free) has 2 agent slots, 0 used by other clusters; 3 requested'),
    Refusal("pro-tier-slots", "pro", manifest("refused", 6),
            'namespace "{ns}" (tier pro) has 5 agent slots, 0 used by other clusters; 6 requested'),
    Refusal("unknown-tier-label", "gold", manifest("refused", 1),
            f"namespace label {constants.LABEL_TIER}=gold names no configured tier "
            "(configured: free, pro, standard)"),
]


def refusal(call) -> str:
    with pytest.raises(ApiException) as refused:
        call()
    return json.loads(refused.value.body)["message"]


@pytest.mark.parametrize("case", REFUSALS, ids=lambda c: c.id)
def test_webhook_refuses_with_the_expected_message_and_creates_nothing(
        agc, k8s_api: ApiClient, make_namespace, case: Refusal):
    namespace = make_namespace({constants.LABEL_TIER: case.tier} if case.tier else None)

    message = refusal(lambda: ac.create(agc, namespace, case.manifest))

    assert message.endswith("denied the request: " + case.message.format(ns=namespace))
    assert not ac.exists(agc, namespace, "refused")
    assert not ac.pods_of(client.CoreV1Api(k8s_api), namespace, "refused")


def test_schedule_as_frequent_as_the_free_tier_allows_is_accepted(agc, make_namespace):
    namespace = make_namespace({constants.LABEL_TIER: "free"})

    ac.create(agc, namespace, with_schedule(replicas=0, name="minutely", cron="* * * * *"))

    assert ac.exists(agc, namespace, "minutely")


def test_update_to_an_invalid_cron_is_refused_and_the_spec_kept(agc, namespace: str):
    ac.create(agc, namespace, with_schedule(replicas=0, name="hourly"))

    message = refusal(lambda: ac.patch_spec(agc, namespace, "hourly", {
        "schedules": [{"name": "tick", "function": "echo", "cron": "0 0 30 2 *"}]}))

    assert message.endswith(
        "denied the request: spec.schedules[0] (tick): cron '0 0 30 2 *' never fires (no date matches it)"
    )
    obj = ac.get(agc, namespace, "hourly")
    assert obj["spec"]["schedules"][0]["cron"] == "0 * * * *"
    assert obj["metadata"]["generation"] == 1
