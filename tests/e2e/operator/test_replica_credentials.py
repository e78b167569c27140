"""Each AgentCluster's replica token: in its namespace's token Secret under the cluster's name,
different for every cluster, handed to its pods by reference, and put back when someone
deletes or edits it."""

from __future__ import annotations

import base64

import httpx
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from agent_api import replica_auth
from tests.e2e.helpers import eventually
from tests.e2e.operator import agentclusters as ac
from tests.e2e.operator.conftest import manifest
from tests.e2e.operator.test_replica_endpoints import replica_url

pytestmark = pytest.mark.e2e


def _token(core: client.CoreV1Api, namespace: str, cluster: str) -> str | None:
    try:
        secret = core.read_namespaced_secret(replica_auth.SECRET_NAME, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    raw = (secret.data or {}).get(cluster)
    return base64.b64decode(raw).decode() if raw else None


def test_each_cluster_has_its_own_token_which_only_its_replicas_accept(agc, k8s_api, namespace, operator):
    core = client.CoreV1Api(k8s_api)
    ac.create(agc, namespace, manifest("alpha", 1))
    ac.create(agc, namespace, manifest("beta", 1))
    alpha, beta = replica_url(k8s_api, agc, namespace, "alpha"), replica_url(k8s_api, agc, namespace, "beta")
    alpha_token, beta_token = _token(core, namespace, "alpha"), _token(core, namespace, "beta")

    assert alpha_token and beta_token and alpha_token != beta_token
    assert alpha_token == replica_auth.token(operator.replica_auth_key.encode(), namespace, "alpha")
    own = httpx.get(f"{alpha}/metrics", headers={"Authorization": f"Bearer {alpha_token}"}, timeout=30)
    other = httpx.get(f"{alpha}/metrics", headers={"Authorization": f"Bearer {beta_token}"}, timeout=30)
    assert own.status_code == 200 and "agentclusters_runs_in_flight" in own.text
    assert other.status_code == 401
    assert httpx.get(f"{beta}/metrics", headers={"Authorization": f"Bearer {beta_token}"},
                     timeout=30).status_code == 200


def test_the_token_reaches_the_pods_by_reference(agc, k8s_api, namespace):
    core = client.CoreV1Api(k8s_api)
    ac.create(agc, namespace, manifest("referred", 1))
    member = ac.ready_members(agc, namespace, "referred", 1)[0]
    env = {e.name: e for e in core.read_namespaced_pod(member["pod"], namespace).spec.containers[0].env}

    ref = env[replica_auth.TOKEN_ENV].value_from.secret_key_ref
    assert (ref.name, ref.key) == (replica_auth.SECRET_NAME, "referred")
    assert env[replica_auth.TOKEN_ENV].value is None  # never a literal in the pod spec


def test_a_deleted_token_secret_is_written_again(agc, k8s_api, namespace):
    core = client.CoreV1Api(k8s_api)
    ac.create(agc, namespace, manifest("mended", 1))
    ac.ready_members(agc, namespace, "mended", 1)
    before = _token(core, namespace, "mended")
    core.delete_namespaced_secret(replica_auth.SECRET_NAME, namespace)

    assert eventually(lambda: _token(core, namespace, "mended"), timeout=60,
                      what="the token Secret to be written again") == before


def test_an_edited_token_is_written_again_with_an_event(agc, k8s_api, namespace):
    core = client.CoreV1Api(k8s_api)
    ac.create(agc, namespace, manifest("edited", 1))
    ac.ready_members(agc, namespace, "edited", 1)
    before = _token(core, namespace, "edited")
    core.patch_namespaced_secret(replica_auth.SECRET_NAME, namespace, {"stringData": {"edited": "tampered"}})

    assert eventually(lambda: _token(core, namespace, "edited") == before, timeout=60,
                      what="the edited token to be rewritten")
    assert "rewrote it" in ac.event(core, namespace, "edited", "ReplicaTokenRewritten")
