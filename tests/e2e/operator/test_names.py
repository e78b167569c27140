"""Replica names: unique across a namespace, deterministic per cluster name, never reused."""

from __future__ import annotations

import itertools

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from agent_api import names
from tests.e2e.helpers import eventually
from tests.e2e.operator import agentclusters as ac
from tests.e2e.operator.conftest import manifest

pytestmark = pytest.mark.e2e


def allocated_names(agc, core: client.CoreV1Api, namespace: str, cluster: str, count: int) -> list[str]:
    """The member names once `count` members are recorded and each has its pod."""
    def check() -> list[str] | None:
        members = ac.status(agc, namespace, cluster).get("members") or []
        pods = {p.metadata.name for p in ac.pods_of(core, namespace, cluster)}
        if len(members) == count and pods == {m["pod"] for m in members}:
            return [m["name"] for m in sorted(members, key=lambda m: m["ordinal"])]
        return None

    return eventually(check, timeout=120, what=f"{count} members of {cluster} with their pods")


def clusters_with_same_first_candidate() -> tuple[str, str, str]:
    """Two cluster names whose candidate sequences start with the same replica name."""
    first_of: dict[str, str] = {}
    for i in itertools.count():
        cluster = f"pair{i}"
        name = next(names.candidates(cluster))
        if name in first_of:
            return first_of[name], cluster, name
        first_of[name] = cluster
    raise AssertionError("unreachable")


def test_two_clusters_of_twenty_in_one_namespace_share_no_name(agc, k8s_api: ApiClient, namespace: str):
    core = client.CoreV1Api(k8s_api)
    ac.create(agc, namespace, manifest("north", 20))
    ac.create(agc, namespace, manifest("south", 20))

    north = allocated_names(agc, core, namespace, "north", 20)
    south = allocated_names(agc, core, namespace, "south", 20)

    assert len(set(north)) == 20
    assert len(set(south)) == 20
    assert not set(north) & set(south)


def test_cluster_recreated_in_fresh_namespace_gets_the_same_names(agc, k8s_api: ApiClient, namespace: str,
                                                                  make_namespace):
    core = client.CoreV1Api(k8s_api)
    ac.create(agc, namespace, manifest("twin", 2))
    first = allocated_names(agc, core, namespace, "twin", 2)
    ac.delete(agc, namespace, "twin")
    eventually(lambda: not ac.exists(agc, namespace, "twin"), what="twin to be deleted")

    fresh = make_namespace()
    ac.create(agc, fresh, manifest("twin", 2))

    assert allocated_names(agc, core, fresh, "twin", 2) == first


def test_new_name_skips_a_name_archived_by_another_cluster(agc, k8s_api: ApiClient, namespace: str):
    core = client.CoreV1Api(k8s_api)
    elder, younger, shared_first = clusters_with_same_first_candidate()
    ac.create(agc, namespace, manifest(elder, 1))
    assert allocated_names(agc, core, namespace, elder, 1) == [shared_first]
    ac.scale(agc, namespace, elder, 0)
    eventually(lambda: [a["name"] for a in ac.status(agc, namespace, elder).get("archived") or []]
               == [shared_first], what=f"{shared_first} to be archived")

    ac.create(agc, namespace, manifest(younger, 1))

    assert allocated_names(agc, core, namespace, younger, 1) != [shared_first]


def test_cluster_recreated_in_same_namespace_does_not_reuse_its_archived_names(
        agc, k8s_api: ApiClient, namespace: str, operator):
    """After a Retain deletion the members' state stays archived in PostgreSQL under their
    names; a new cluster of the same name must not take those names (and their read-only
    state) again."""
    core = client.CoreV1Api(k8s_api)
    ac.create(agc, namespace, manifest("phoenix", 2))
    first = allocated_names(agc, core, namespace, "phoenix", 2)
    ac.delete(agc, namespace, "phoenix")
    eventually(lambda: not ac.exists(agc, namespace, "phoenix"), what="phoenix to be deleted")
    eventually(lambda: len(ac.query(
        operator.database_url,
        "SELECT replica FROM cluster_members WHERE namespace = $1 AND cluster = 'phoenix' "
        "AND archived_at IS NOT NULL", namespace)) == 2, what="the deleted members archived in PostgreSQL")

    ac.create(agc, namespace, manifest("phoenix", 2))

    second = allocated_names(agc, core, namespace, "phoenix", 2)
    assert not set(first) & set(second)
