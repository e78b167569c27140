"""Status and events tell a user what is going on: generation observed, conditions with
reasons, and scaling events in `kubectl describe`."""

from __future__ import annotations

import os
import signal
import socket

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from agent_api import constants
from tests.e2e.helpers import container_pid, eventually
from tests.e2e.operator import agentclusters as ac
from tests.e2e.operator.conftest import manifest

pytestmark = pytest.mark.e2e



def conditions(obj: dict) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in obj["status"]["conditions"]}


def test_ready_cluster_reports_its_generation_and_conditions(agc, namespace: str):
    ac.create(agc, namespace, manifest("calm", 2))
    ac.ready_members(agc, namespace, "calm", 2)

    obj = eventually(lambda: (o := ac.get(agc, namespace, "calm"))
                     and ac.condition(o, constants.CONDITION_READY)["status"] == "True" and o,
                     what="calm to be Ready")

    generation = obj["metadata"]["generation"]
    assert obj["status"]["observedGeneration"] == generation
    assert (obj["status"]["replicas"], obj["status"]["readyReplicas"]) == (2, 2)
    assert obj["status"]["selector"] == f"{constants.LABEL_CLUSTER}=calm"
    assert conditions(obj) == {
        constants.CONDITION_READY: ("True", "AllReplicasReady"),
        constants.CONDITION_PROGRESSING: ("False", "Reconciled"),
        constants.CONDITION_DEGRADED: ("False", "AsExpected"),
        constants.CONDITION_QUOTA_EXCEEDED: ("False", "WithinQuota"),
    }
    assert {c["observedGeneration"] for c in obj["status"]["conditions"]} == {generation}


def test_kubectl_describe_shows_scaling_events_with_the_names(agc, devcluster, namespace: str):
    ac.create(agc, namespace, manifest("told", 2))
    members = ac.ready_members(agc, namespace, "told", 2)
    ac.scale(agc, namespace, "told", 1)
    ac.ready_members(agc, namespace, "told", 1)
    newest = max(members, key=lambda m: m["ordinal"])["name"]

    def described() -> str | None:
        out = devcluster.kubectl("-n", namespace, "describe", "agentcluster", "told").stdout
        return out if constants.EVENT_SCALED_DOWN in out else None

    out = eventually(described, what="the ScaledDown event in kubectl describe")
    scaled_up = next(line for line in out.splitlines() if constants.EVENT_SCALED_UP in line)
    scaled_down = next(line for line in out.splitlines() if constants.EVENT_SCALED_DOWN in line)
    assert all(m["name"] in scaled_up for m in members)
    assert newest in scaled_down


def test_crash_looping_replica_marks_the_cluster_degraded_until_it_recovers(agc, k8s_api: ApiClient, namespace: str):
    """A replica whose runtime cannot start (here: something else holds its pod IP's port
    when the kubelet restarts it) makes the cluster Degraded, naming the member and why."""
    core = client.CoreV1Api(k8s_api)
    ac.create(agc, namespace, manifest("broken", 1))
    member = ac.ready_members(agc, namespace, "broken", 1)[0]
    pod = core.read_namespaced_pod(member["pod"], namespace)
    pid = container_pid(pod)
    assert pid is not None

    squatter = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        os.kill(pid, signal.SIGKILL)
        eventually(lambda: squatter.bind((pod.status.pod_ip, 8080)) is None, timeout=10, interval=0.02,
                   what="taking the replica's port")
        squatter.listen()

        def degraded() -> dict | None:
            obj = ac.get(agc, namespace, "broken")
            found = ac.condition(obj, constants.CONDITION_DEGRADED)
            return obj if found and found["status"] == "True" else None

        obj = eventually(degraded, timeout=90, what="broken to be Degraded")
        degraded_condition = ac.condition(obj, constants.CONDITION_DEGRADED)
        assert degraded_condition["reason"] == "ReplicaFailing"
        assert degraded_condition["message"].startswith(f"{member['name']}: CrashLoopBackOff")
        assert ac.condition(obj, constants.CONDITION_READY)["status"] == "False"
    finally:
        squatter.close()

    recovered = eventually(
        lambda: (obj := ac.get(agc, namespace, "broken"))
        and ac.condition(obj, constants.CONDITION_DEGRADED)["status"] == "False"
        and ac.condition(obj, constants.CONDITION_READY)["status"] == "True",
        timeout=120, what="broken to recover",
    )
    assert recovered
    assert ac.get(agc, namespace, "broken")["status"]["members"][0]["name"] == member["name"]
