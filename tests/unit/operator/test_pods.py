"""The replica pod builder: Secrets reach the runtime only through env references, and a
change of those references changes the template hash (so the pods roll)."""

from __future__ import annotations

import copy

from agent_api import constants, models, replica_auth, secret_env, tiers
from agent_operator import pods
from agent_operator.settings import OperatorSettings

TIER = tiers.Tier(name="pro", slots=10)
SETTINGS = OperatorSettings()
MEMBER = models.Member(name="daring-duck", ordinal=0, pod="scraper-daring-duck")

CLUSTER = {
    "metadata": {"name": "scraper", "namespace": "team-a", "uid": "u-1", "generation": 3},
    "spec": {
        "ai": {"provider": "openai", "model": "gpt-4o-mini",
               "apiKeySecretRef": {"name": "llm", "key": "api-key"}},
        "functions": [{"name": "summarize", "prompt": {"template": "hi"}}],
        "channels": [{"name": "team-alerts", "type": "slack",
                      "urlSecretRef": {"name": "slack", "key": "webhook"}}],
        "mcpServers": [{"name": "docs", "url": "https://mcp.example.test/mcp",
                        "headersSecretRef": {"name": "docs-mcp"}},
                       {"name": "open", "url": "https://open.example.test/mcp"}],
        "webhooks": [{"name": "gh-push", "path": "/github", "function": "summarize",
                      "secretRef": {"name": "hooks", "key": "github"}}],
    },
}


def _container(cluster: dict) -> dict:
    return pods.build(cluster, MEMBER, TIER, SETTINGS)["spec"]["containers"][0]


def _hash(cluster: dict) -> str:
    spec = models.AgentClusterSpec.model_validate(cluster["spec"])
    return pods.template_hash(SETTINGS.image, TIER, SETTINGS, spec)


def test_secret_refs_become_env_from_secret_key_refs():
    env = {e["name"]: e for e in _container(CLUSTER)["env"]}
    assert env["AGENT_AI_API_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "llm", "key": "api-key"}}
    assert env["AGENT_CHANNEL_TEAM_ALERTS_URL"]["valueFrom"] == {
        "secretKeyRef": {"name": "slack", "key": "webhook"}}
    assert all("value" not in e for name, e in env.items() if secret_env.is_secret(name))


def test_mcp_header_secret_is_env_from_with_a_per_server_prefix():
    assert _container(CLUSTER)["envFrom"] == [
        {"prefix": "AGENT_MCP_DOCS_HEADER_", "secretRef": {"name": "docs-mcp"}}]


def test_a_spec_without_secrets_adds_nothing():
    plain = {"metadata": CLUSTER["metadata"], "spec": {}}
    container = _container(plain)
    assert "envFrom" not in container
    assert [e["name"] for e in container["env"] if secret_env.is_secret(e["name"])] == ["AGENT_REPLICA_TOKEN"]
    assert pods.template_hash(SETTINGS.image, TIER, SETTINGS, models.AgentClusterSpec()) == (
        pods.template_hash(SETTINGS.image, TIER, SETTINGS))


def test_changing_a_secret_reference_changes_the_template_hash():
    base = _hash(CLUSTER)
    for path, value in ((("ai", "apiKeySecretRef", "key"), "other-key"),
                        (("channels", 0, "urlSecretRef", "name"), "slack-2"),
                        (("mcpServers", 0, "headersSecretRef", "name"), "docs-mcp-2"),
                        (("webhooks", 0, "secretRef", "key"), "gitlab")):
        changed = copy.deepcopy(CLUSTER)
        target = changed["spec"]
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
        assert _hash(changed) != base, path


def test_hot_reloaded_fields_do_not_change_the_hash():
    changed = copy.deepcopy(CLUSTER)
    changed["spec"]["ai"]["model"] = "gpt-4o"
    changed["spec"]["functions"][0]["prompt"]["template"] = "hello"
    assert _hash(changed) == _hash(CLUSTER)


def test_the_pod_annotation_carries_the_hash_with_secret_refs():
    pod = pods.build(CLUSTER, MEMBER, TIER, SETTINGS)
    assert pod["metadata"]["annotations"][constants.ANNOTATION_POD_TEMPLATE_HASH] == _hash(CLUSTER)


def test_the_replica_token_comes_from_the_namespaces_token_secret_under_the_clusters_name():
    env = {e["name"]: e for e in _container(CLUSTER)["env"]}
    assert env["AGENT_REPLICA_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": replica_auth.SECRET_NAME, "key": "scraper"}}


def test_a_webhook_secret_reaches_the_replica_by_reference():
    env = {e["name"]: e for e in _container(CLUSTER)["env"]}
    assert env["AGENT_WEBHOOK_GH_PUSH_SECRET"]["valueFrom"] == {"secretKeyRef": {"name": "hooks", "key": "github"}}


def test_a_rotated_master_key_changes_the_template_hash():
    rotated = SETTINGS.model_copy(update={"replica_auth_key": "r" * 32})
    spec = models.AgentClusterSpec.model_validate(CLUSTER["spec"])
    assert pods.template_hash(SETTINGS.image, TIER, rotated, spec) != _hash(CLUSTER)


def test_credentials_version_rolls_the_pods_without_the_pod_carrying_credentials():
    spec = models.AgentClusterSpec.model_validate(CLUSTER["spec"])
    hashes = {version: pods.template_hash(SETTINGS.image, TIER, SETTINGS, spec, version)
              for version in ("", "0a1b2c3d4e5f6a7b", "9f8e7d6c5b4a3f2e")}
    pod = pods.build(CLUSTER, MEMBER, TIER, SETTINGS, "0a1b2c3d4e5f6a7b")

    assert len(set(hashes.values())) == 3
    assert hashes[""] == _hash(CLUSTER)  # without a version: as before
    assert pod["metadata"]["annotations"][constants.ANNOTATION_POD_TEMPLATE_HASH] \
        == hashes["0a1b2c3d4e5f6a7b"]
    assert "0a1b2c3d4e5f6a7b" not in str(pod)


def test_pooling_mode_reaches_the_runtime_and_rolls_the_pods_when_changed():
    pooled = SETTINGS.model_copy(update={"runtime_database_pooling": "transaction"})
    spec = models.AgentClusterSpec.model_validate(CLUSTER["spec"])

    env = {e["name"]: e for e in pods.build(CLUSTER, MEMBER, TIER, pooled)["spec"]["containers"][0]["env"]}

    assert env["AGENT_DATABASE_POOLING"] == {"name": "AGENT_DATABASE_POOLING", "value": "transaction"}
    assert pods.template_hash(SETTINGS.image, TIER, pooled, spec) != _hash(CLUSTER)


HEADERS = [{"name": "Authorization", "secretKeyRef": {"name": "api-token", "key": "token"}}]


def _with_http_headers(cluster: dict) -> dict:
    changed = copy.deepcopy(cluster)
    changed["spec"]["functions"].append(
        {"name": "fetch", "http": {"url": "https://api.example.test/x", "headers": HEADERS}})
    return changed


def test_an_http_functions_header_secret_reaches_the_replica_by_reference():
    env = {e["name"]: e for e in _container(_with_http_headers(CLUSTER))["env"]}

    variable = secret_env.http_header("fetch", "Authorization")
    assert env[variable]["valueFrom"] == {"secretKeyRef": {"name": "api-token", "key": "token"}}
    assert "value" not in env[variable]


def test_adding_an_http_header_secret_rolls_the_pods():
    assert _hash(_with_http_headers(CLUSTER)) != _hash(CLUSTER)


def test_the_pod_passes_pod_security_restricted():
    """What `restricted` checks (the e2e test has the real API server enforce it)."""
    pod = pods.build(CLUSTER, MEMBER, TIER, SETTINGS)["spec"]
    container = pod["containers"][0]

    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert all(set(volume) == {"name", "emptyDir"} for volume in pod["volumes"])  # allowed types only


def test_tmp_is_a_size_limited_writable_volume_under_the_read_only_root():
    pod = pods.build(CLUSTER, MEMBER, TIER, SETTINGS)["spec"]
    container = pod["containers"][0]

    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["volumeMounts"] == [{"name": pods.TMP_VOLUME, "mountPath": "/tmp"}]
    assert pod["volumes"] == [{"name": pods.TMP_VOLUME, "emptyDir": {"sizeLimit": pods.TMP_SIZE_LIMIT}}]


def test_image_pull_secrets_reach_the_pod_and_do_not_roll_it():
    pulling = copy.deepcopy(CLUSTER)
    pulling["spec"]["imagePullSecrets"] = [{"name": "registry-a"}, {"name": "registry-b"}]

    assert pods.build(pulling, MEMBER, TIER, SETTINGS)["spec"]["imagePullSecrets"] == [
        {"name": "registry-a"}, {"name": "registry-b"}]
    assert "imagePullSecrets" not in pods.build(CLUSTER, MEMBER, TIER, SETTINGS)["spec"]
    assert _hash(pulling) == _hash(CLUSTER)
