"""A member's identity survives the loss of its pod or of its runtime process."""

from __future__ import annotations

import os
import signal

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from agent_api import constants
from tests.e2e.helpers import container_pid, eventually, pid_alive
from tests.e2e.operator import agentclusters as ac
from tests.e2e.operator.conftest import manifest

pytestmark = pytest.mark.e2e


def test_deleted_pod_is_recreated_under_the_same_name_with_an_event(agc, k8s_api: ApiClient, namespace: str):
    core = client.CoreV1Api(k8s_api)
    ac.create(agc, namespace, manifest("sturdy", 2))
    before = ac.ready_members(agc, namespace, "sturdy", 2)
    lost = before[0]
    old_uid = core.read_namespaced_pod(lost["pod"], namespace).metadata.uid

    core.delete_namespaced_pod(lost["pod"], namespace)

    def replaced() -> client.V1Pod | None:
        pod = core.read_namespaced_pod(lost["pod"], namespace)
        return pod if pod.metadata.uid != old_uid else None

    pod = eventually(replaced, timeout=60, what=f"a new pod named {lost['pod']}")
    after = ac.ready_members(agc, namespace, "sturdy", 2)
    assert [(m["name"], m["ordinal"], m["pod"]) for m in after] == \
        [(m["name"], m["ordinal"], m["pod"]) for m in before]
    assert pod.metadata.labels[constants.LABEL_REPLICA] == lost["name"]
    assert lost["name"] in ac.event(core, namespace, "sturdy", constants.EVENT_REPLICA_RECREATED)


def test_killed_runtime_is_restarted_in_the_same_pod_and_member(agc, k8s_api: ApiClient, namespace: str):
    core = client.CoreV1Api(k8s_api)
    ac.create(agc, namespace, manifest("phoenix", 1))
    member = ac.ready_members(agc, namespace, "phoenix", 1)[0]
    pod = core.read_namespaced_pod(member["pod"], namespace)
    pid = container_pid(pod)
    assert pid is not None

    os.kill(pid, signal.SIGKILL)

    def restarted() -> client.V1Pod | None:
        now = core.read_namespaced_pod(member["pod"], namespace)
        running = container_pid(now)
        return now if running is not None and running != pid and now.status.container_statuses[0].ready else None

    now = eventually(restarted, timeout=60, what="the runtime to run again")
    assert not pid_alive(pid)
    assert now.metadata.uid == pod.metadata.uid
    assert now.status.container_statuses[0].restart_count == 1
    assert ac.ready_members(agc, namespace, "phoenix", 1) == [member]
    assert not ac.events_of(core, namespace, "phoenix", constants.EVENT_REPLICA_RECREATED)
