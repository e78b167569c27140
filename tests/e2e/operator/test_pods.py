"""The pod of a member: identity in labels and environment, secrets by reference, the tier's
resources, no API token, and readiness from the runtime's health endpoint."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from agent_api import constants
from devcluster.operator_process import DEFAULT_TIERS
from tests.e2e.helpers import container_pid, eventually
from tests.e2e.operator import agentclusters as ac
from tests.e2e.operator.conftest import manifest

pytestmark = pytest.mark.e2e

RUNTIME_SECRET = "agentclusters-runtime"


@pytest.fixture(scope="module")
def namespace(k8s_api: ApiClient, operator) -> Iterator[str]:
    """One namespace for the module: every test here reads the same member pod."""
    core = client.CoreV1Api(k8s_api)
    name = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace(body={"metadata": {"name": name}})
    yield name
    core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture(scope="module")
def member_pod(k8s_api: ApiClient, namespace: str) -> tuple[dict, client.V1Pod]:
    """The one ready member of a cluster `solo` and its pod."""
    agc = client.CustomObjectsApi(k8s_api)
    ac.create(agc, namespace, manifest("solo", 1))
    member = ac.ready_members(agc, namespace, "solo", 1)[0]
    return member, client.CoreV1Api(k8s_api).read_namespaced_pod(member["pod"], namespace)


def process_environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(entry.split("=", 1) for entry in raw.decode().split("\0") if "=" in entry)


def test_pod_is_named_and_labelled_for_its_member(member_pod):
    member, pod = member_pod

    assert pod.metadata.name == f"solo-{member['name']}" == member["pod"]
    assert pod.metadata.labels[constants.LABEL_CLUSTER] == "solo"
    assert pod.metadata.labels[constants.LABEL_REPLICA] == member["name"]
    assert pod.metadata.labels[constants.LABEL_ORDINAL] == "0"
    owner = pod.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.controller) == ("AgentCluster", "solo", True)


def test_pod_environment_names_the_member_and_references_the_runtime_secret(member_pod):
    member, pod = member_pod
    env = {e.name: e for e in pod.spec.containers[0].env}

    assert env["AGENT_NAMESPACE"].value_from.field_ref.field_path == "metadata.namespace"
    assert env["AGENT_CLUSTER"].value == "solo"
    assert env["AGENT_REPLICA"].value == member["name"]
    assert env["AGENT_ORDINAL"].value == "0"
    assert env["POD_IP"].value_from.field_ref.field_path == "status.podIP"
    for key in ("DATABASE_URL", "REDIS_URL"):
        assert env[key].value is None
        assert (env[key].value_from.secret_key_ref.name, env[key].value_from.secret_key_ref.key) \
            == (RUNTIME_SECRET, key)


def test_runtime_process_runs_with_the_member_identity_and_the_secret_values(
        member_pod, k8s_api: ApiClient, namespace: str, operator):
    member, pod = member_pod
    core = client.CoreV1Api(k8s_api)
    secret = core.read_namespaced_secret(RUNTIME_SECRET, namespace)
    pid = eventually(lambda: container_pid(core.read_namespaced_pod(pod.metadata.name, namespace)),
                     what="the runtime's pid")

    env = process_environment(pid)

    assert env["AGENT_NAMESPACE"] == namespace
    assert env["AGENT_CLUSTER"] == "solo"
    assert env["AGENT_REPLICA"] == member["name"]
    assert env["AGENT_ORDINAL"] == "0"
    assert env["POD_IP"] == core.read_namespaced_pod(pod.metadata.name, namespace).status.pod_ip
    # The namespace's own PostgreSQL role, never the operator's (tests/e2e/tenancy).
    assert env["DATABASE_URL"] == base64.b64decode(secret.data["DATABASE_URL"]).decode()
    assert urlsplit(env["DATABASE_URL"]).username != urlsplit(operator.database_url).username
    assert set(secret.data) == {"DATABASE_URL", "REDIS_URL"}
    assert env["REDIS_URL"].startswith("redis://")


def test_pod_has_no_service_account_token(member_pod):
    _, pod = member_pod

    assert pod.spec.automount_service_account_token is False
    assert not [v for v in pod.spec.volumes or [] if (v.projected or v.secret)]


def test_pod_requests_and_limits_are_the_tier_resources(member_pod):
    _, pod = member_pod
    standard = DEFAULT_TIERS["tiers"]["standard"]

    resources = pod.spec.containers[0].resources
    assert resources.requests == {"cpu": standard["cpu"], "memory": standard["memory"]}
    assert resources.limits == resources.requests


def test_pod_readiness_comes_from_the_runtime_health_endpoint(member_pod):
    _, pod = member_pod

    probe = pod.spec.containers[0].readiness_probe
    assert probe.http_get.path == "/readyz"
    assert probe.http_get.port == "http"
    assert any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)
