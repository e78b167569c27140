"""An operator killed in the middle of a scale-up and started again converges: every member
has one pod, names are unique, and no pod belongs to no member."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from tests.e2e.helpers import eventually
from tests.e2e.operator import agentclusters as ac
from tests.e2e.operator.conftest import manifest

pytestmark = pytest.mark.e2e


def test_operator_killed_mid_scale_up_converges_without_duplicates_or_orphans(
        agc, k8s_api: ApiClient, namespace: str, operator):
    core = client.CoreV1Api(k8s_api)
    ac.create(agc, namespace, manifest("survivor", 0))
    eventually(lambda: ac.status(agc, namespace, "survivor").get("conditions"), what="a first reconcile")
    ac.scale(agc, namespace, "survivor", 15)
    eventually(lambda: ac.status(agc, namespace, "survivor").get("members"), interval=0.05,
               what="the scale-up to begin")

    operator.kill()
    operator.restart()

    members = ac.ready_members(agc, namespace, "survivor", 15, timeout=180)
    names = [m["name"] for m in members]
    assert len(set(names)) == 15
    assert sorted(m["ordinal"] for m in members) == list(range(15))
    pods = ac.pods_of(core, namespace, "survivor")
    assert sorted(p.metadata.name for p in pods) == sorted(m["pod"] for m in members)
    assert not [p for p in core.list_namespaced_pod(namespace).items
                if not p.metadata.owner_references]
