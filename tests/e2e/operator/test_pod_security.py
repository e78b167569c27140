"""Replica pods under Pod Security `restricted`: the devcluster's real kube-apiserver enforces
the namespace label, and an AgentCluster's pods must be admitted and become Ready."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from agent_api import constants
from tests.e2e.operator import agentclusters as ac
from tests.e2e.operator.conftest import manifest

pytestmark = pytest.mark.e2e

RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted",
              "pod-security.kubernetes.io/enforce-version": "latest"}


def test_a_cluster_in_a_restricted_namespace_gets_ready_pods(k8s_api: ApiClient, operator, make_namespace):
    namespace = make_namespace(RESTRICTED)
    agc = client.CustomObjectsApi(k8s_api)

    ac.create(agc, namespace, manifest("locked", 2))

    members = ac.ready_members(agc, namespace, "locked", 2)
    degraded = ac.condition(ac.get(agc, namespace, "locked"), constants.CONDITION_DEGRADED)
    assert degraded is not None and degraded["status"] == "False", degraded
    pods = ac.pods_of(client.CoreV1Api(k8s_api), namespace, "locked")
    assert sorted(p.metadata.name for p in pods) == sorted(m["pod"] for m in members)
