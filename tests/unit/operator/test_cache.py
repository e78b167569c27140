"""The watch-fed cache: kopf's index copies, and the operator's own writes until the watch has them.

kopf's indexes are mappings of key -> iterable of values; plain dicts of lists stand in for
them here (the e2e test `tests/e2e/operator/test_api_requests.py` runs the real ones)."""

from __future__ import annotations

from typing import Any

from agent_api import constants
from agent_operator import cache


def pod(name: str, cluster: str, version: int, **extra: Any) -> dict[str, Any]:
    return {"kind": "Pod", "metadata": {"name": name, "namespace": "ns", "resourceVersion": str(version),
                                        "labels": {constants.LABEL_CLUSTER: cluster}, **extra}}


def agentcluster(name: str, version: int, members: int = 0) -> dict[str, Any]:
    return {"kind": "AgentCluster", "metadata": {"name": name, "namespace": "ns", "resourceVersion": str(version)},
            "status": {"members": [{"name": f"m{i}"} for i in range(members)]}}


def watch_cache(clusters: dict | None = None, pods: dict | None = None, budgets: dict | None = None,
                namespaces: dict | None = None, ttl: float = cache.WRITTEN_TTL_SECONDS) -> cache.WatchCache:
    watch = cache.WatchCache(ttl)
    watch.attach({cache.CLUSTERS: clusters or {}, cache.PODS: pods or {}, cache.BUDGETS: budgets or {},
                  cache.NAMESPACES: namespaces or {}})
    return watch


def test_own_status_write_is_read_before_the_watch_delivers_it():
    watch = watch_cache(clusters={("ns", "a"): [agentcluster("a", 10)]})
    watch.wrote(agentcluster("a", 11, members=2))

    assert len(watch.cluster("ns", "a")["status"]["members"]) == 2


def test_watch_copy_wins_once_it_is_as_new_as_the_own_write():
    clusters = {("ns", "a"): [agentcluster("a", 10)]}
    watch = watch_cache(clusters=clusters)
    watch.wrote(agentcluster("a", 11, members=2))
    clusters[("ns", "a")] = [agentcluster("a", 12, members=3)]  # the watch caught up, and more

    assert len(watch.cluster("ns", "a")["status"]["members"]) == 3


def test_cluster_gone_from_the_watch_is_gone_whatever_was_written():
    clusters = {("ns", "a"): [agentcluster("a", 10)]}
    watch = watch_cache(clusters=clusters)
    watch.wrote(agentcluster("a", 11))
    del clusters[("ns", "a")]

    assert watch.cluster("ns", "a") is None
    assert watch.clusters("ns") == []


def test_created_pod_is_listed_before_the_watch_has_it():
    watch = watch_cache(pods={("ns", "a"): [pod("a-one", "a", 5)]})
    watch.wrote(pod("a-two", "a", 6))
    watch.wrote(pod("b-one", "b", 7))

    assert [p["metadata"]["name"] for p in watch.pods("ns", "a")] == ["a-one", "a-two"]


def test_deleted_budget_reads_as_absent_until_the_watch_drops_it():
    budget = {"kind": "PodDisruptionBudget", "metadata": {"name": "a", "namespace": "ns", "resourceVersion": "9"}}
    budgets = {("ns", "a"): [budget]}
    watch = watch_cache(budgets=budgets)
    watch.deleted("PodDisruptionBudget", "ns", "a", "9")

    assert watch.budget("ns", "a") is None
    del budgets[("ns", "a")]
    recreated = {**budget, "metadata": {**budget["metadata"], "resourceVersion": "15"}}
    budgets[("ns", "a")] = [recreated]
    assert watch.budget("ns", "a") == recreated


def test_own_write_expires_when_the_watch_never_catches_up():
    watch = watch_cache(pods={}, ttl=-1.0)  # every write already older than its time to live
    watch.wrote(pod("a-one", "a", 5))

    assert watch.pods("ns", "a") == []


def test_reads_are_copies_the_reconcile_may_change():
    watch = watch_cache(clusters={("ns", "a"): [agentcluster("a", 10)]})
    watch.cluster("ns", "a")["status"]["members"].append({"name": "x"})

    assert watch.cluster("ns", "a")["status"]["members"] == []


def test_unknown_namespace_has_no_labels():
    watch = watch_cache(namespaces={"team": [{"agentclusters.io/tier": "pro"}]})

    assert watch.namespace_labels("team") == {"agentclusters.io/tier": "pro"}
    assert watch.namespace_labels("other") is None


def test_created_pod_deleted_before_any_read_is_not_listed():
    pods: dict = {}
    watch = watch_cache(pods=pods)
    created = pod("a-one", "a", 5)
    watch.wrote(created)
    # The watch delivers the creation (kopf calls the index function), then the deletion
    # (kopf drops the entry itself), with no read in between.
    pods.update(watch.index_pod(namespace="ns", name="a-one", labels=created["metadata"]["labels"],
                                body=created))
    pods.clear()

    assert watch.pods("ns", "a") == []


def test_indexed_pod_keeps_metadata_and_status_not_spec():
    body = {**pod("a-one", "a", 5, managedFields=[{"manager": "kubectl"}]),
            "spec": {"containers": []}, "status": {"phase": "Running"}}

    [(key, indexed)] = cache.WatchCache().index_pod(namespace="ns", name="a-one",
                                                    labels=body["metadata"]["labels"], body=body).items()

    assert key == ("ns", "a")
    assert indexed["status"] == {"phase": "Running"} and "spec" not in indexed
    assert "managedFields" not in indexed["metadata"]
