"""With the replica token namespace B's pods are handed, A's replicas answer nothing but
their health probes, and nothing runs in A: both clusters are named `ticker`, so only the
namespace tells the tokens apart."""

from __future__ import annotations

import base64

import httpx
import pytest
from kubernetes import client

from agent_api import replica_auth
from tests.e2e.operator import agentclusters as ac
from tests.e2e.tenancy.test_database import fetchval

pytestmark = pytest.mark.e2e

PROTECTED = [("GET", "/metrics", None), ("POST", "/run/echo", {"payload": {"from": "B"}}),
             ("POST", "/chat", {"message": "hello from B"})]


def handed_token(core: client.CoreV1Api, namespace: str, cluster: str) -> str:
    secret = core.read_namespaced_secret(replica_auth.SECRET_NAME, namespace)
    return base64.b64decode(secret.data[cluster]).decode()


def test_b_token_opens_no_endpoint_of_a_replica(k8s_api, tenants, operator):
    core, agc = client.CoreV1Api(k8s_api), client.CustomObjectsApi(k8s_api)
    a, b = tenants
    member = ac.ready_members(agc, a, "ticker", 2)[0]
    pod = core.read_namespaced_pod(member["pod"], a)
    url = f"http://{pod.status.pod_ip}:{pod.spec.containers[0].ports[0].container_port}"
    headers = {"Authorization": f"Bearer {handed_token(core, b, 'ticker')}"}
    manual_runs = "SELECT count(*) FROM runs WHERE namespace = $1 AND trigger IN ('manual', 'chat')"

    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        answers = [http.request(method, path, json=body) for method, path, body in PROTECTED]

    assert [r.status_code for r in answers] == [401, 401, 401], [r.text[:200] for r in answers]
    assert fetchval(operator.database_url, manual_runs, a) == 0
