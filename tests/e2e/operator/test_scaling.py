"""Scaling an AgentCluster: named members recorded before pods, LIFO scale-down, archives."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from agent_api import constants
from tests.e2e.helpers import eventually
from tests.e2e.operator.conftest import manifest

pytestmark = pytest.mark.e2e

G, V, P = constants.GROUP, constants.VERSION, constants.PLURAL


def get(agc: client.CustomObjectsApi, namespace: str, name: str) -> dict:
    return agc.get_namespaced_custom_object(G, V, namespace, P, name)


def ready_members(agc: client.CustomObjectsApi, namespace: str, name: str, count: int) -> list[dict]:
    def check() -> list[dict] | None:
        status = get(agc, namespace, name).get("status") or {}
        members = status.get("members") or []
        if len(members) == count and status.get("readyReplicas") == count and all(m["ready"] for m in members):
            return members
        return None

    return eventually(check, timeout=120, what=f"{count} ready members of {name}")


def scale(agc: client.CustomObjectsApi, namespace: str, name: str, replicas: int) -> None:
    agc.patch_namespaced_custom_object_scale(G, V, namespace, P, name, {"spec": {"replicas": replicas}})


def test_create_gives_named_ready_replicas_with_ordinals(agc, k8s_api: ApiClient, namespace: str):
    agc.create_namespaced_custom_object(G, V, namespace, P, manifest("scraper", 3))

    members = ready_members(agc, namespace, "scraper", 3)

    assert [m["ordinal"] for m in members] == [0, 1, 2]
    pods = client.CoreV1Api(k8s_api).list_namespaced_pod(
        namespace, label_selector=f"{constants.LABEL_CLUSTER}=scraper").items
    assert sorted(p.metadata.name for p in pods) == sorted(f"scraper-{m['name']}" for m in members)
    for pod in pods:
        assert pod.metadata.labels[constants.LABEL_REPLICA] == pod.metadata.name.removeprefix("scraper-")
        assert pod.spec.automount_service_account_token is False
        assert pod.metadata.owner_references[0].kind == "AgentCluster"


def test_scale_down_removes_newest_and_archives_them(agc, namespace: str):
    agc.create_namespaced_custom_object(G, V, namespace, P, manifest("lifo", 5))
    before = ready_members(agc, namespace, "lifo", 5)

    scale(agc, namespace, "lifo", 3)

    after = ready_members(agc, namespace, "lifo", 3)
    archived = eventually(lambda: (get(agc, namespace, "lifo")["status"].get("archived") or [None, None])
                          if len(get(agc, namespace, "lifo")["status"].get("archived") or []) == 2 else None,
                          what="two archived members")
    by_ordinal = sorted(before, key=lambda m: m["ordinal"])
    assert [m["name"] for m in after] == [m["name"] for m in by_ordinal[:3]]
    assert sorted(a["name"] for a in archived) == sorted(m["name"] for m in by_ordinal[3:])


def test_scale_5_3_5_gives_two_new_names(agc, namespace: str):
    agc.create_namespaced_custom_object(G, V, namespace, P, manifest("again", 5))
    first = {m["name"] for m in ready_members(agc, namespace, "again", 5)}
    scale(agc, namespace, "again", 3)
    ready_members(agc, namespace, "again", 3)

    scale(agc, namespace, "again", 5)

    final = {m["name"] for m in ready_members(agc, namespace, "again", 5)}
    new = final - first
    assert len(new) == 2
    archived = {a["name"] for a in get(agc, namespace, "again")["status"]["archived"]}
    assert not new & archived
