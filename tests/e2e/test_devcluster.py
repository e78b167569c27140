"""The devcluster itself: the pinned real control plane, a Ready node, the namespace controller."""

from __future__ import annotations

import json
import sys

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devcluster import binaries
from tests.e2e.helpers import eventually, pid_alive

pytestmark = pytest.mark.e2e


def test_kubectl_version_reports_the_pinned_server_version(devcluster):
    result = devcluster.kubectl("version", "-o", "json")
    assert result.returncode == 0, result.stderr
    version = json.loads(result.stdout)
    assert version["serverVersion"]["gitVersion"] == binaries.K8S_VERSION == "v1.34.4"
    assert version["clientVersion"]["gitVersion"] == "v1.34.4"


def test_node_is_ready_with_capacity_and_a_renewed_lease(devcluster, k8s_api):
    core = client.CoreV1Api(k8s_api)
    node = core.read_node(devcluster.node_name)
    conditions = {c.type: c.status for c in node.status.conditions}
    assert conditions["Ready"] == "True"
    assert node.status.allocatable["pods"] == "250"
    assert node.status.node_info.kubelet_version == "v1.34.4"
    assert {a.type: a.address for a in node.status.addresses} == {
        "InternalIP": "127.0.0.1", "Hostname": devcluster.node_name}
    assert not [t for t in node.spec.taints or [] if t.key.startswith("node.kubernetes.io/")]

    leases = client.CoordinationV1Api(k8s_api)
    first = leases.read_namespaced_lease(devcluster.node_name, "kube-node-lease").spec.renew_time
    eventually(lambda: leases.read_namespaced_lease(
        devcluster.node_name, "kube-node-lease").spec.renew_time > first,
        timeout=30, what="a Lease renewal")


def test_deleting_a_namespace_completes(devcluster, k8s_api):
    """The namespace controller empties it (including a running pod, which the kubelet stops)."""
    core = client.CoreV1Api(k8s_api)
    name = "doomed"
    core.create_namespace(body={"metadata": {"name": name}})
    eventually(lambda: core.read_namespaced_service_account("default", name), timeout=30,
               what="the default ServiceAccount")
    core.create_namespaced_config_map(name, {"metadata": {"name": "cfg"}, "data": {"a": "b"}})
    core.create_namespaced_pod(name, {
        "metadata": {"name": "sleeper"},
        "spec": {"terminationGracePeriodSeconds": 5, "containers": [{
            "name": "main", "image": "ignored",
            "command": [sys.executable, "-c", "import time; time.sleep(3600)"]}]},
    })
    pod = eventually(lambda: _running(core.read_namespaced_pod("sleeper", name)), timeout=60,
                     what="the pod running")
    pid = int(pod.status.container_statuses[0].container_id.removeprefix("process://"))

    core.delete_namespace(name)

    def gone() -> bool:
        try:
            core.read_namespace(name)
        except ApiException as exc:
            return exc.status == 404
        return False

    eventually(gone, timeout=120, what=f"namespace {name} to be deleted")
    assert not pid_alive(pid)


def _running(pod):
    statuses = pod.status.container_statuses or []
    return pod if statuses and statuses[0].state.running else None
