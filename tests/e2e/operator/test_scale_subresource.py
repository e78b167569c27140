"""Scaling through the scale subresource: to zero and with `kubectl scale`."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from tests.e2e.helpers import eventually
from tests.e2e.operator import agentclusters as ac
from tests.e2e.operator.conftest import manifest

pytestmark = pytest.mark.e2e


def test_scale_to_zero_stops_every_pod_and_archives_every_member(agc, k8s_api: ApiClient, namespace: str):
    core = client.CoreV1Api(k8s_api)
    ac.create(agc, namespace, manifest("idle", 2))
    before = ac.ready_members(agc, namespace, "idle", 2)

    ac.scale(agc, namespace, "idle", 0)

    def emptied() -> dict | None:
        seen = ac.status(agc, namespace, "idle")
        done = not seen.get("members") and len(seen.get("archived") or []) == 2
        return seen if done and not ac.pods_of(core, namespace, "idle") else None

    final = eventually(emptied, timeout=60, what="idle to have no members and no pods")
    assert final["replicas"] == 0
    assert sorted(a["name"] for a in final["archived"]) == sorted(m["name"] for m in before)
    ready = ac.condition(ac.get(agc, namespace, "idle"), "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "AllReplicasReady")


def test_kubectl_scale_changes_the_number_of_ready_replicas(agc, devcluster, namespace: str):
    ac.create(agc, namespace, manifest("dial", 1))
    ac.ready_members(agc, namespace, "dial", 1)

    scaled = devcluster.kubectl("-n", namespace, "scale", "agentcluster/dial", "--replicas=3")

    assert scaled.returncode == 0, scaled.stderr
    assert ac.get(agc, namespace, "dial")["spec"]["replicas"] == 3
    assert len(ac.ready_members(agc, namespace, "dial", 3)) == 3
