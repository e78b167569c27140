"""The Helm chart's rendering, without a cluster: the settings file the operator will read,
the RBAC it gets, where its URLs and webhook certificate come from, and the values schema."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from agent_operator import settings
from tests.unit import chart


def _settings(docs: list[dict], tmp_path: Path) -> settings.OperatorSettings:
    config_map = chart.one(docs, "ConfigMap")
    path = tmp_path / "operator.yaml"
    path.write_text(config_map["data"]["operator.yaml"], "utf-8")
    return settings.load(path)


def _container(docs: list[dict]) -> dict:
    deployment = chart.one(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _env(docs: list[dict]) -> dict[str, dict]:
    return {e["name"]: e for e in _container(docs)["env"]}


def test_default_settings_are_accepted_by_the_operator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://from-env/db")
    docs = chart.render()
    loaded = _settings(docs, tmp_path)
    assert loaded.database_url == "postgresql://from-env/db"  # the file leaves URLs to the env
    assert loaded.image == "ghcr.io/agent-clusters/agent-clusters:0.1.0"
    assert loaded.runtime_command == ["agentclusters", "runtime"]
    assert loaded.tiers.default_tier == "standard"
    assert loaded.tiers.tiers["standard"].slots == 20
    assert loaded.webhook is not None
    assert loaded.webhook.host == "ac-agent-clusters-webhook.agent-clusters.svc"
    assert loaded.webhook.listen == "0.0.0.0"
    assert loaded.webhook.port == 9443
    assert loaded.webhook.configuration_name == "ac-agent-clusters.agentclusters.io"
    env = _env(docs)
    assert env["AGENTCLUSTERS_OPERATOR_CONFIG"]["value"] == "/etc/agentclusters/operator.yaml"
    assert "DATABASE_URL" not in env and "REDIS_URL" not in env  # nothing configured: NOTES warn


def test_custom_tiers_and_agents_reach_the_settings(tmp_path: Path) -> None:
    docs = chart.render({
        "tiers.defaultTier": "free",
        "tiers.tiers.free.slots": "2",
        "tiers.tiers.pro.slots": "50",
        "tiers.tiers.pro.cpu": "2",
        "tiers.tiers.pro.memory": "4Gi",
        "tiers.tiers.pro.minScheduleIntervalSeconds": "0",
        "agents.image": "registry.example/agents:1.2",
        "agents.runtimeSecretName": "agent-env",
        "operator.workers": "8",
        "webhook.enabled": "false",
    })
    loaded = _settings(docs, tmp_path)
    assert loaded.tiers.default_tier == "free"
    assert set(loaded.tiers.tiers) == {"free", "pro", "standard"}  # helm merges maps
    assert loaded.tiers.tiers["pro"].cpu == "2" and loaded.tiers.tiers["pro"].memory == "4Gi"
    assert loaded.image == "registry.example/agents:1.2"
    assert loaded.runtime_secret_name == "agent-env"
    assert loaded.workers == 8
    assert loaded.webhook is None
    kinds = {d["kind"] for d in docs}
    assert "Service" not in kinds and "ValidatingWebhookConfiguration" not in kinds
    assert "ports" not in _container(docs) and "readinessProbe" not in _container(docs)
    namespaced = chart.one(docs, "ClusterRole", "ac-agent-clusters")
    assert chart.rules(namespaced) == chart.expected_namespaced_rules("agent-env")
    cluster = chart.one(docs, "ClusterRole", "ac-agent-clusters-cluster")
    assert chart.rules(cluster) == chart.expected_cluster_rules(None)


def test_default_rbac_is_exactly_what_the_operator_uses() -> None:
    docs = chart.render()
    assert chart.rules(chart.one(docs, "ClusterRole", "ac-agent-clusters")) == chart.expected_namespaced_rules()
    assert chart.rules(chart.one(docs, "ClusterRole", "ac-agent-clusters-cluster")) == \
        chart.expected_cluster_rules("ac-agent-clusters.agentclusters.io")
    bindings = [d for d in docs if d["kind"] in ("ClusterRoleBinding", "RoleBinding")]
    assert {(b["kind"], b["roleRef"]["name"]) for b in bindings} == {
        ("ClusterRoleBinding", "ac-agent-clusters"), ("ClusterRoleBinding", "ac-agent-clusters-cluster"),
    }
    for binding in bindings:
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "ac-agent-clusters", "namespace": "agent-clusters"}
        ]
    assert chart.one(docs, "ServiceAccount")["metadata"]["name"] == "ac-agent-clusters"


def test_watch_namespaces_binds_namespaced_rights_per_namespace() -> None:
    docs = chart.render({"operator.watchNamespaces": "{team-a,team-b}"})
    role_bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    assert sorted(b["metadata"]["namespace"] for b in role_bindings) == ["team-a", "team-b"]
    assert all(b["roleRef"]["name"] == "ac-agent-clusters" for b in role_bindings)
    assert [b["metadata"]["name"] for b in docs if b["kind"] == "ClusterRoleBinding"] == \
        ["ac-agent-clusters-cluster"]
    cluster = chart.one(docs, "ClusterRole", "ac-agent-clusters-cluster")
    assert chart.rules(cluster) == chart.expected_cluster_rules(
        "ac-agent-clusters.agentclusters.io", watch_namespaces=True)
    assert _container(docs)["args"] == ["--namespace=team-a", "--namespace=team-b"]


def test_urls_as_values_go_into_the_release_secret() -> None:
    docs = chart.render(chart.URLS)
    secret = chart.one(docs, "Secret")
    assert secret["metadata"]["name"] == "ac-agent-clusters-connections"
    assert secret["stringData"] == {
        "DATABASE_URL": chart.URLS["database.url"], "REDIS_URL": chart.URLS["redis.url"],
    }
    env = _env(docs)
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "ac-agent-clusters-connections", "key": "DATABASE_URL"}
    assert env["REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "ac-agent-clusters-connections", "key": "REDIS_URL"}
    # No URL is ever written into the ConfigMap.
    config = chart.one(docs, "ConfigMap")["data"]["operator.yaml"]
    assert "postgres" not in config and "redis://" not in config
    assert base64.b64encode(b"secret").decode() not in config


def test_existing_secrets_and_cert_manager() -> None:
    docs = chart.render(chart.ALTERNATIVE)
    assert not [d for d in docs if d["kind"] == "Secret"]  # nothing to render: both are existing
    env = _env(docs)
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "pg-credentials", "key": "uri"}
    assert env["REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "redis-credentials", "key": "REDIS_URL"}

    issuer = chart.one(docs, "Issuer")
    assert issuer["spec"] == {"selfSigned": {}}
    certificate = chart.one(docs, "Certificate")
    assert certificate["apiVersion"] == "cert-manager.io/v1"
    assert certificate["spec"]["issuerRef"] == {"kind": "Issuer", "name": issuer["metadata"]["name"]}
    assert "ac-agent-clusters-webhook.agent-clusters.svc" in certificate["spec"]["dnsNames"]
    assert "server auth" in certificate["spec"]["usages"]
    # The Deployment mounts the Secret cert-manager writes, under the names the operator reads.
    volumes = {v["name"]: v for v in chart.one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["webhook-cert"]["secret"] == {
        "secretName": certificate["spec"]["secretName"],
        "items": [{"key": "tls.crt", "path": "webhook.crt"}, {"key": "tls.key", "path": "webhook.key"}],
    }
    mounts = {m["name"]: m for m in _container(docs)["volumeMounts"]}
    assert mounts["webhook-cert"]["readOnly"] is True


def test_cert_manager_with_an_issuer_of_your_own() -> None:
    docs = chart.render({"webhook.certManager.enabled": "true",
                         "webhook.certManager.issuerRef.kind": "ClusterIssuer",
                         "webhook.certManager.issuerRef.name": "corp-ca"})
    assert not [d for d in docs if d["kind"] == "Issuer"]
    assert chart.one(docs, "Certificate")["spec"]["issuerRef"] == {"kind": "ClusterIssuer", "name": "corp-ca"}


def test_existing_tls_secret_and_self_signed_default() -> None:
    docs = chart.render({"webhook.existingSecret": "my-webhook-tls"})
    assert not [d for d in docs if d["kind"] in ("Issuer", "Certificate")]
    volumes = {v["name"]: v for v in chart.one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["webhook-cert"]["secret"]["secretName"] == "my-webhook-tls"
    # Default: no certificate given, the operator writes a self-signed one to a writable emptyDir.
    volumes = {v["name"]: v for v in chart.one(chart.render(), "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["webhook-cert"] == {"name": "webhook-cert", "emptyDir": {}}


def test_one_operator_without_overlap_and_hardened_pod() -> None:
    deployment = chart.one(chart.render(), "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["command"] == ["agentclusters", "operator"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["readinessProbe"] == {"tcpSocket": {"port": "webhook"}, "periodSeconds": 5,
                                           "failureThreshold": 3}
    assert "livenessProbe" not in container


@pytest.mark.parametrize(("values", "message"), [
    ({"replicaCount": "2"}, "/replicaCount"),
    ({"tiers.tiers.big.slots": "1", "tiers.tiers.big.cpu": "lots"}, "/tiers/tiers/big/cpu"),
    ({"tiers.tiers.nothing.cpu": "1"}, "missing property 'slots'"),
    ({"unknownKey": "1"}, "additional properties 'unknownKey' not allowed"),
    ({"webhook.port": "70000"}, "/webhook/port"),
    ({"tiers.defaultTier": "gold"}, 'tiers.defaultTier "gold" is not one of tiers.tiers (standard)'),
    ({"webhook.certManager.enabled": "true", "webhook.existingSecret": "x"},
     "webhook.certManager.enabled and webhook.existingSecret are exclusive"),
])
def test_bad_values_are_refused_with_a_clear_message(values: dict[str, str], message: str) -> None:
    result = chart.helm("template", "ac", str(chart.CHART), *chart.set_args(values), check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
