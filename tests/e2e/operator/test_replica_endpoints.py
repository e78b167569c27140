"""A replica's HTTP endpoints seen from inside the network, as any pod would reach them: its
pod IP and port, no gateway in between. Without its cluster's token a replica serves only
its health probes; the operator hands each cluster a token of its own."""

from __future__ import annotations

import httpx
import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from tests.e2e.operator import agentclusters as ac
from tests.e2e.operator.conftest import manifest

pytestmark = pytest.mark.e2e

ECHO = [{"name": "echo", "python": {"entrypoint": "agent_runtime.builtins:echo"}}]
PROTECTED = [("GET", "/metrics", None), ("POST", "/run/echo", {"payload": {"from": "a pod"}}),
             ("POST", "/chat", {"message": "hello"})]


def replica_url(k8s_api: ApiClient, agc: client.CustomObjectsApi, namespace: str, name: str) -> str:
    """http://<pod IP>:<port> of the one ready member of `name`."""
    member = ac.ready_members(agc, namespace, name, 1)[0]
    pod = client.CoreV1Api(k8s_api).read_namespaced_pod(member["pod"], namespace)
    return f"http://{pod.status.pod_ip}:{pod.spec.containers[0].ports[0].container_port}"


def test_a_direct_call_to_a_replica_without_the_token_is_refused(agc, k8s_api, namespace, operator):
    ac.create(agc, namespace, manifest("direct", 1, functions=ECHO))
    url = replica_url(k8s_api, agc, namespace, "direct")
    with httpx.Client(base_url=url, timeout=30) as http:
        answers = [http.request(method, path, json=body) for method, path, body in PROTECTED]
        probes = [http.get("/healthz").status_code, http.get("/readyz").status_code]
    assert [a.status_code for a in answers] == [401, 401, 401], [a.text[:200] for a in answers]
    assert probes == [200, 200]  # the kubelet's probes need no token
    assert ac.query(operator.database_url, "SELECT id FROM runs WHERE namespace = $1", namespace) == []
