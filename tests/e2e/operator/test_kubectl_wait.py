"""`kubectl wait --for=condition=Ready agc/NAME` (the README's way to block until an agent is
up) with the devcluster's real kubectl: it returns once the AgentCluster becomes Ready and
times out while it is not.

The cluster that is not Ready: a spec whose image the namespace's tier stops allowing (the
operator keeps it Degraded, Ready False with reason ConfigNotStored) until the namespace goes
back to a tier that allows it."""

from __future__ import annotations

import subprocess
import time

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from agent_api import constants
from devcluster.cluster import DevCluster
from tests.e2e.helpers import eventually
from tests.e2e.operator import agentclusters as ac
from tests.e2e.operator.conftest import manifest

pytestmark = pytest.mark.e2e


def _kubectl_wait(devcluster: DevCluster, namespace: str, name: str, timeout: str) -> list[str]:
    return [str(devcluster.bin_dir / "kubectl"), f"--kubeconfig={devcluster.kubeconfig}", "-n", namespace,
            "wait", "--for=condition=Ready", f"agc/{name}", f"--timeout={timeout}"]


def _grounded(agc, k8s_api: ApiClient, namespace: str, name: str) -> None:
    """An AgentCluster that stays Ready False: its image is no longer allowed in its namespace."""
    ac.create(agc, namespace, manifest(name, 0, image="agent-clusters:v1"))
    client.CoreV1Api(k8s_api).patch_namespace(namespace, {"metadata": {"labels": {constants.LABEL_TIER: "pro"}}})
    ac.scale(agc, namespace, name, 1)

    def not_ready() -> bool:
        found = ac.condition(ac.get(agc, namespace, name), constants.CONDITION_READY)
        return found is not None and found["status"] == "False" and found["reason"] == "ConfigNotStored"

    eventually(not_ready, what=f"{name} to be Ready False (ConfigNotStored)")


def test_kubectl_wait_times_out_while_the_cluster_is_not_ready(agc, k8s_api, devcluster, make_namespace):
    namespace = make_namespace()
    _grounded(agc, k8s_api, namespace, "grounded")

    result = subprocess.run(_kubectl_wait(devcluster, namespace, "grounded", "5s"), capture_output=True,
                            text=True, timeout=60)

    assert result.returncode != 0
    assert "timed out waiting for the condition on agentclusters/grounded" in result.stderr, result.stderr


def test_kubectl_wait_returns_when_the_cluster_becomes_ready(agc, k8s_api, devcluster, make_namespace):
    namespace = make_namespace()
    _grounded(agc, k8s_api, namespace, "late")
    waiting = subprocess.Popen(_kubectl_wait(devcluster, namespace, "late", "180s"), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(3)
        assert waiting.poll() is None, waiting.communicate()  # still waiting: it is not Ready
        # Back to the standard tier, whose images include agent-clusters:v1: the replica starts.
        client.CoreV1Api(k8s_api).patch_namespace(
            namespace, {"metadata": {"labels": {constants.LABEL_TIER: "standard"}}})
        out, err = waiting.communicate(timeout=180)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()
    assert waiting.returncode == 0, err
    assert out.strip() == "agentcluster.agentclusters.io/late condition met"
    ready = ac.condition(ac.get(agc, namespace, "late"), constants.CONDITION_READY)
    assert ready["status"] == "True"
