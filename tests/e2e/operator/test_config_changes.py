"""Spec changes: stored in PostgreSQL with their generation; hot-reloadable changes keep the
pods; image changes replace the pods one at a time."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from tests.e2e.helpers import eventually
from tests.e2e.operator import agentclusters as ac
from tests.e2e.operator.conftest import manifest

pytestmark = pytest.mark.e2e

ECHO = {"name": "echo", "python": {"entrypoint": "agent_runtime.builtins:echo"}}


def scheduled(name: str, replicas: int, cron: str) -> dict:
    return manifest(name, replicas, functions=[ECHO],
                    schedules=[{"name": "tick", "function": "echo", "cron": cron}])


def stored_config(database_url: str, namespace: str, cluster: str) -> dict | None:
    rows = ac.query(database_url, "SELECT generation, spec FROM cluster_configs "
                    "WHERE namespace = $1 AND cluster = $2", namespace, cluster)
    return {"generation": rows[0]["generation"], "spec": json.loads(rows[0]["spec"])} if rows else None


def pod_uids(core: client.CoreV1Api, namespace: str, cluster: str) -> dict[str, str]:
    return {p.metadata.name: p.metadata.uid for p in ac.pods_of(core, namespace, cluster)}


def test_spec_is_stored_in_postgresql_with_its_generation(agc, namespace: str, operator):
    ac.create(agc, namespace, scheduled("keeper", 1, "0 * * * *"))
    ac.ready_members(agc, namespace, "keeper", 1)
    ac.patch_spec(agc, namespace, "keeper", {"schedules": [{"name": "tick", "function": "echo",
                                                             "cron": "30 * * * *"}]})
    obj = ac.get(agc, namespace, "keeper")

    stored = eventually(lambda: (c := stored_config(operator.database_url, namespace, "keeper"))
                        and c["generation"] == obj["metadata"]["generation"] and c,
                        what="the new generation in PostgreSQL")

    assert obj["metadata"]["generation"] == 2
    assert stored["spec"] == obj["spec"]
    assert stored["spec"]["schedules"][0]["cron"] == "30 * * * *"


def test_schedule_change_keeps_the_pods_running(agc, k8s_api: ApiClient, namespace: str, operator):
    core = client.CoreV1Api(k8s_api)
    ac.create(agc, namespace, scheduled("steady", 2, "0 * * * *"))
    ac.ready_members(agc, namespace, "steady", 2)
    before = pod_uids(core, namespace, "steady")

    ac.patch_spec(agc, namespace, "steady", {"schedules": [{"name": "tick", "function": "echo",
                                                             "cron": "*/5 * * * *"}]})

    eventually(lambda: ac.status(agc, namespace, "steady").get("observedGeneration") == 2
               and stored_config(operator.database_url, namespace, "steady")["generation"] == 2,
               what="generation 2 observed and stored")
    ac.ready_members(agc, namespace, "steady", 2)
    assert pod_uids(core, namespace, "steady") == before
    assert all(p.status.container_statuses[0].restart_count == 0 for p in ac.pods_of(core, namespace, "steady"))


def test_image_change_replaces_pods_one_at_a_time_keeping_the_names(agc, k8s_api: ApiClient, namespace: str):
    core = client.CoreV1Api(k8s_api)
    ac.create(agc, namespace, manifest("roller", 2, image="agent-clusters:v1"))
    members = ac.ready_members(agc, namespace, "roller", 2)
    old_uids = pod_uids(core, namespace, "roller")

    ac.patch_spec(agc, namespace, "roller", {"image": "agent-clusters:v2"})

    most_unavailable = 0

    def rolled() -> bool:
        nonlocal most_unavailable
        pods = {p.metadata.name: p for p in ac.pods_of(core, namespace, "roller")}
        unavailable = 0
        for member in members:
            pod = pods.get(member["pod"])
            ready = pod is not None and not pod.metadata.deletion_timestamp and any(
                c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
            unavailable += not ready
        most_unavailable = max(most_unavailable, unavailable)
        return unavailable == 0 and all(
            p.metadata.uid != old_uids[name] and p.spec.containers[0].image == "agent-clusters:v2"
            for name, p in pods.items())

    eventually(rolled, timeout=120, interval=0.1, what="every pod replaced with the new image")
    assert most_unavailable == 1
    after = ac.ready_members(agc, namespace, "roller", 2)
    assert [(m["name"], m["ordinal"]) for m in after] == [(m["name"], m["ordinal"]) for m in members]
