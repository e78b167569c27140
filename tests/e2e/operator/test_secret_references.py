"""Who may reference which Secret: the admission webhook asks the API server (SubjectAccessReview)
whether the requesting user may `get` every Secret a create or update newly references, and
refuses otherwise, naming each Secret, the field, the user and the grant that would allow it.
Without this, anyone with `patch` on AgentClusters could point a Secret they cannot read at a
URL of their choosing (the AI `baseURL`, an MCP server, an http function) and receive it.

Users are impersonated (`Impersonate-User`, as `kubectl --as` does) and get their rights from
real Roles, so the real kube-apiserver's RBAC answers every review."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator

import pytest
from kubernetes import client, config
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from devcluster import operator_process
from devcluster.cluster import DevCluster
from tests.e2e.operator import agentclusters as ac
from tests.e2e.operator.conftest import manifest

pytestmark = pytest.mark.e2e

ALICE = "alice@example.com"  # may edit AgentClusters, may not read the team's Secrets
BOB = "bob@example.com"  # may edit AgentClusters and read the Secret team-key
EDITOR_RULES = [
    {"apiGroups": ["agentclusters.io"], "resources": ["agentclusters"],
     "verbs": ["get", "list", "create", "patch", "update"]},
    {"apiGroups": ["agentclusters.io"], "resources": ["agentclusters/scale"], "verbs": ["patch"]},
]
ECHO = {"name": "echo", "python": {"entrypoint": "agent_runtime.builtins:echo"}}


def ai_with_key(base_url: str = "https://llm.example.com/v1") -> dict:
    return {"provider": "openai", "model": "gpt-4o-mini", "baseURL": base_url,
            "apiKeySecretRef": {"name": "team-key", "key": "api-key"}}


def refusal(call: Callable[[], object]) -> str:
    with pytest.raises(ApiException) as refused:
        call()
    assert refused.value.status == 403, refused.value.body
    return json.loads(refused.value.body)["message"]


def _role(rbac: client.RbacAuthorizationV1Api, namespace: str, name: str, rules: list[dict],
          users: list[str]) -> None:
    rbac.create_namespaced_role(namespace, {"metadata": {"name": name}, "rules": rules})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user} for user in users],
    })


@pytest.fixture
def team(k8s_api: ApiClient, namespace: str) -> str:
    """A namespace with the Secret team-key; alice and bob edit AgentClusters, only bob reads team-key."""
    client.CoreV1Api(k8s_api).create_namespaced_secret(namespace, {
        "metadata": {"name": "team-key"}, "data": {"api-key": base64.b64encode(b"sk-team").decode()}})
    rbac = client.RbacAuthorizationV1Api(k8s_api)
    _role(rbac, namespace, "agentcluster-editor", EDITOR_RULES,
          [ALICE, BOB, operator_process.SECRET_CHECK_EXEMPT_USER])
    _role(rbac, namespace, "read-team-key",
          [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["team-key"], "verbs": ["get"]}], [BOB])
    return namespace


@pytest.fixture
def as_user(devcluster: DevCluster, operator) -> Iterator[Callable[[str], client.CustomObjectsApi]]:
    """The AgentCluster API as another user (the operator and its webhook are running)."""
    opened: list[ApiClient] = []

    def impersonate(user: str) -> client.CustomObjectsApi:
        api = config.new_client_from_config(config_file=str(devcluster.kubeconfig))
        api.set_default_header("Impersonate-User", user)
        opened.append(api)
        return client.CustomObjectsApi(api)

    yield impersonate
    for api in opened:
        api.close()


def test_creating_a_cluster_that_references_a_secret_its_author_may_not_read_is_refused(agc, team, as_user):
    body = manifest("leaky", 0, ai=ai_with_key("https://attacker.example/v1"))

    message = refusal(lambda: ac.create(as_user(ALICE), team, body))

    assert f'user "{ALICE}" may not get Secret "team-key" in namespace "{team}"' in message, message
    assert "spec.ai.apiKeySecretRef" in message and "https://attacker.example/v1" in message, message
    assert (f"kubectl -n {team} create role read-agent-secrets --verb=get --resource=secrets "
            f"--resource-name=team-key") in message, message
    assert f"--user={ALICE}" in message, message
    assert not ac.exists(agc, team, "leaky")


def test_patching_in_a_reference_to_a_secret_its_author_may_not_read_is_refused(agc, team, as_user):
    ac.create(agc, team, manifest("quiet", 0))

    message = refusal(lambda: ac.patch_spec(as_user(ALICE), team, "quiet", {
        "channels": [{"name": "ops", "type": "webhook", "urlSecretRef": {"name": "team-key", "key": "api-key"}}]}))

    assert 'Secret "team-key"' in message and "spec.channels[0].urlSecretRef" in message, message
    obj = ac.get(agc, team, "quiet")
    assert "channels" not in obj["spec"] and obj["metadata"]["generation"] == 1


def test_every_kind_of_reference_is_checked_and_named(agc, team, as_user):
    body = manifest(
        "everything", 0,
        ai=ai_with_key(),
        functions=[ECHO, {"name": "call-out", "http": {
            "url": "https://api.example.com/hook",
            "headers": [{"name": "Authorization", "secretKeyRef": {"name": "http-token", "key": "token"}}]}}],
        webhooks=[{"name": "gh", "path": "/gh", "function": "echo", "secretRef": {"name": "hook-key", "key": "k"}}],
        channels=[{"name": "ops", "type": "slack", "urlSecretRef": {"name": "slack-url", "key": "url"}}],
        mcpServers=[{"name": "tools", "url": "https://mcp.example.com/mcp",
                     "headersSecretRef": {"name": "mcp-headers"}}],
    )

    message = refusal(lambda: ac.create(as_user(ALICE), team, body))

    for secret, field in [("team-key", "spec.ai.apiKeySecretRef"),
                          ("http-token", "spec.functions[1].http.headers[0].secretKeyRef"),
                          ("hook-key", "spec.webhooks[0].secretRef"),
                          ("slack-url", "spec.channels[0].urlSecretRef"),
                          ("mcp-headers", "spec.mcpServers[0].headersSecretRef")]:
        assert f'Secret "{secret}"' in message and field in message, (secret, message)
        assert f"--resource-name={secret}" in message, (secret, message)
    # Secrets that do not exist are refused in the same words: admission never looks them up.
    assert not ac.exists(agc, team, "everything")


def test_a_teammate_may_edit_other_fields_of_a_cluster_that_already_references_the_secret(agc, team, as_user):
    ac.create(agc, team, manifest("shared", 0, ai=ai_with_key(), functions=[ECHO], channels=[
        {"name": "ops", "type": "webhook", "urlSecretRef": {"name": "team-key", "key": "api-key"}}]))

    ac.patch_spec(as_user(ALICE), team, "shared", {
        "replicas": 0, "limits": {"maxConcurrentRuns": 2},
        "ai": {"model": "gpt-4.1-mini", "systemPrompt": "Be brief."},
        "schedules": [{"name": "tick", "function": "echo", "cron": "0 * * * *"}]})

    obj = ac.get(agc, team, "shared")
    assert obj["metadata"]["generation"] == 2
    assert obj["spec"]["ai"]["model"] == "gpt-4.1-mini"
    assert obj["spec"]["ai"]["apiKeySecretRef"] == {"name": "team-key", "key": "api-key"}


def test_pointing_an_existing_reference_at_another_url_counts_as_a_new_reference(agc, team, as_user):
    ac.create(agc, team, manifest("pointed", 0, ai=ai_with_key()))

    message = refusal(lambda: ac.patch_spec(as_user(ALICE), team, "pointed", {
        "ai": {"baseURL": "https://attacker.example/v1"}}))

    assert 'Secret "team-key"' in message and "https://attacker.example/v1" in message, message
    assert ac.get(agc, team, "pointed")["spec"]["ai"]["baseURL"] == "https://llm.example.com/v1"


def test_a_user_who_may_get_the_secret_may_reference_it(agc, team, as_user):
    ac.create(as_user(BOB), team, manifest("allowed", 0, ai=ai_with_key("https://elsewhere.example/v1")))

    assert ac.get(agc, team, "allowed")["spec"]["ai"]["apiKeySecretRef"]["name"] == "team-key"


def test_a_writer_configured_as_exempt_is_not_checked(agc, team, as_user):
    """The MCP gateway writes with its own ServiceAccount after checking its caller itself."""
    ac.create(as_user(operator_process.SECRET_CHECK_EXEMPT_USER), team, manifest("via-gateway", 0, ai=ai_with_key()))

    assert ac.exists(agc, team, "via-gateway")
