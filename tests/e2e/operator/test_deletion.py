"""Deleting an AgentCluster: pods are collected through their owner references; the stored
state is kept (Retain, no finalizer) or removed before the object goes (Delete)."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from agent_api import constants
from tests.e2e.helpers import eventually
from tests.e2e.operator import agentclusters as ac
from tests.e2e.operator.conftest import manifest

pytestmark = pytest.mark.e2e


def member_rows(database_url: str, namespace: str, cluster: str) -> list[dict]:
    return ac.query(database_url, "SELECT replica, archived_at FROM cluster_members "
                    "WHERE namespace = $1 AND cluster = $2", namespace, cluster)


def config_rows(database_url: str, namespace: str, cluster: str) -> list[dict]:
    return ac.query(database_url, "SELECT generation FROM cluster_configs "
                    "WHERE namespace = $1 AND cluster = $2", namespace, cluster)


def test_retain_deletion_keeps_the_members_archived_in_postgresql(agc, k8s_api: ApiClient, namespace: str,
                                                                  operator):
    core = client.CoreV1Api(k8s_api)
    ac.create(agc, namespace, manifest("keeps", 2))
    members = ac.ready_members(agc, namespace, "keeps", 2)
    assert not ac.get(agc, namespace, "keeps")["metadata"].get("finalizers")

    ac.delete(agc, namespace, "keeps")

    eventually(lambda: not ac.exists(agc, namespace, "keeps"), timeout=30, what="keeps to be gone")
    eventually(lambda: not ac.pods_of(core, namespace, "keeps"), timeout=60, what="the pods to be collected")
    rows = eventually(lambda: (r := member_rows(operator.database_url, namespace, "keeps"))
                      and all(row["archived_at"] for row in r) and r, what="both members archived")
    assert sorted(r["replica"] for r in rows) == sorted(m["name"] for m in members)
    assert config_rows(operator.database_url, namespace, "keeps")


def test_delete_policy_removes_the_stored_state_before_the_object_goes(agc, k8s_api: ApiClient, namespace: str,
                                                                       operator):
    core = client.CoreV1Api(k8s_api)
    ac.create(agc, namespace, manifest("wipes", 2, statePolicy={"whenDeleted": "Delete"}))
    ac.ready_members(agc, namespace, "wipes", 2)
    eventually(lambda: ac.get(agc, namespace, "wipes")["metadata"].get("finalizers") == [constants.FINALIZER],
               what="the state-policy finalizer")
    assert len(member_rows(operator.database_url, namespace, "wipes")) == 2

    ac.delete(agc, namespace, "wipes")

    eventually(lambda: not ac.exists(agc, namespace, "wipes"), timeout=30, what="wipes to be gone")
    assert member_rows(operator.database_url, namespace, "wipes") == []
    assert config_rows(operator.database_url, namespace, "wipes") == []
    eventually(lambda: not ac.pods_of(core, namespace, "wipes"), timeout=60, what="the pods to be collected")


def test_members_of_a_cluster_deleted_while_the_operator_was_down_are_archived_when_it_is_back(
        agc, k8s_api: ApiClient, namespace: str, operator):
    core = client.CoreV1Api(k8s_api)
    ac.create(agc, namespace, manifest("orphan", 1))
    members = ac.ready_members(agc, namespace, "orphan", 1)
    operator.kill()
    try:
        ac.delete(agc, namespace, "orphan")
        eventually(lambda: not ac.exists(agc, namespace, "orphan"), timeout=30, what="orphan to be gone")
        eventually(lambda: not ac.pods_of(core, namespace, "orphan"), timeout=60, what="the pod to be collected")
        assert not any(row["archived_at"] for row in member_rows(operator.database_url, namespace, "orphan"))
    finally:
        operator.restart()

    rows = eventually(lambda: (r := member_rows(operator.database_url, namespace, "orphan"))
                      and all(row["archived_at"] for row in r) and r, what="the member archived")
    assert [r["replica"] for r in rows] == [m["name"] for m in members]
