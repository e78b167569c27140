"""The Helm chart's rendering, without a cluster: the settings file the operator will read,
the RBAC it gets, where its URLs and webhook certificate come from, and the values schema."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography import x509

from agent_api import replica_auth
from agent_gateway import settings as gateway_settings
from agent_operator import settings
from tests.unit import chart


def _operator_config_map(docs: list[dict]) -> dict:
    """The operator's settings ConfigMap (the helm test hook's script is another ConfigMap)."""
    (config_map,) = [d for d in docs if d["kind"] == "ConfigMap" and "operator.yaml" in d.get("data", {})]
    return config_map


def _settings(docs: list[dict], tmp_path: Path) -> settings.OperatorSettings:
    config_map = _operator_config_map(docs)
    path = tmp_path / "operator.yaml"
    path.write_text(config_map["data"]["operator.yaml"], "utf-8")
    return settings.load(path)


OPERATOR = "ac-agent-clusters"
GATEWAY = "ac-agent-clusters-gateway"


def _container(docs: list[dict], name: str = OPERATOR) -> dict:
    deployment = chart.one(docs, "Deployment", name)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _env(docs: list[dict], name: str = OPERATOR) -> dict[str, dict]:
    return {e["name"]: e for e in _container(docs, name)["env"]}


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
    # The gateway checks its callers' access to Secrets itself (it writes as its own account).
    assert loaded.webhook.secret_reference_check_exempt == [
        "system:serviceaccount:agent-clusters:ac-agent-clusters-gateway"]
    # Secure by default: the standard tier runs no image but the operator's own.
    assert loaded.tiers.tiers["standard"].allowed_images == []
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
        "tiers.tiers.pro.allowedImages": "{registry.example/team/,ghcr.io/acme/agent:}",
        "agents.image": "registry.example/agents:1.2",
        "agents.runtimeSecretName": "agent-env",
        "agents.runtimeDatabaseUrl": "postgresql://pgbouncer.db.svc:6432/agents",
        "agents.runtimeDatabasePooling": "transaction",
        "agents.credentialRotationDays": "30",
        "operator.workers": "8",
        "webhook.enabled": "false",
    })
    loaded = _settings(docs, tmp_path)
    assert loaded.tiers.default_tier == "free"
    assert set(loaded.tiers.tiers) == {"free", "pro", "standard"}  # helm merges maps
    assert loaded.tiers.tiers["pro"].cpu == "2" and loaded.tiers.tiers["pro"].memory == "4Gi"
    assert loaded.tiers.tiers["pro"].allowed_images == ["registry.example/team/", "ghcr.io/acme/agent:"]
    assert loaded.image == "registry.example/agents:1.2"
    assert loaded.runtime_secret_name == "agent-env"
    assert loaded.runtime_database_url == "postgresql://pgbouncer.db.svc:6432/agents"
    assert loaded.runtime_database_pooling == "transaction"
    assert loaded.credential_rotation_days == 30
    assert loaded.workers == 8
    assert loaded.webhook is None
    kinds = {d["kind"] for d in docs}
    assert "ValidatingWebhookConfiguration" not in kinds
    services = {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}
    assert services == {GATEWAY, "ac-agent-clusters-metrics", f"{GATEWAY}-metrics"}  # no webhook Service
    # Only the metrics port; no webhook port and so no readiness check on it.
    assert [p["name"] for p in _container(docs)["ports"]] == ["metrics"]
    assert "readinessProbe" not in _container(docs)
    namespaced = chart.one(docs, "ClusterRole", "ac-agent-clusters")
    assert chart.rules(namespaced) == chart.expected_namespaced_rules("agent-env")
    cluster = chart.one(docs, "ClusterRole", "ac-agent-clusters-cluster")
    assert chart.rules(cluster) == chart.expected_cluster_rules(None)


def test_default_rbac_is_exactly_what_the_operator_uses() -> None:
    docs = chart.render()
    assert chart.rules(chart.one(docs, "ClusterRole", "ac-agent-clusters")) == chart.expected_namespaced_rules()
    assert chart.rules(chart.one(docs, "ClusterRole", "ac-agent-clusters-cluster")) == \
        chart.expected_cluster_rules("ac-agent-clusters.agentclusters.io")
    bindings = [d for d in docs if d["kind"] in ("ClusterRoleBinding", "RoleBinding")
                and d["metadata"]["labels"]["app.kubernetes.io/component"] == "operator"]
    assert {(b["kind"], b["roleRef"]["name"]) for b in bindings} == {
        ("ClusterRoleBinding", "ac-agent-clusters"), ("ClusterRoleBinding", "ac-agent-clusters-cluster"),
        ("RoleBinding", "ac-agent-clusters-leader-election"),
    }
    election = chart.one(docs, "Role", "ac-agent-clusters-leader-election")
    assert election["metadata"]["namespace"] == "agent-clusters"
    assert chart.rules(election) == chart.expected_leader_election_rules()
    for binding in bindings:
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "ac-agent-clusters", "namespace": "agent-clusters"}
        ]
    assert {d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"} == {OPERATOR, GATEWAY}


def test_watch_namespaces_binds_namespaced_rights_per_namespace() -> None:
    docs = chart.render({"operator.watchNamespaces": "{team-a,team-b}"})
    role_bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    assert sorted((b["metadata"]["namespace"], b["roleRef"]["name"], b["subjects"][0]["name"])
                  for b in role_bindings) == [
        # The Lease lives in the operator's own namespace, watched or not.
        ("agent-clusters", f"{OPERATOR}-leader-election", OPERATOR),
        ("team-a", OPERATOR, OPERATOR), ("team-a", GATEWAY, GATEWAY),
        ("team-b", OPERATOR, OPERATOR), ("team-b", GATEWAY, GATEWAY),
    ]
    # Only the cluster-scoped parts stay cluster-wide (the gateway's: TokenReview, SubjectAccessReview).
    assert sorted(b["metadata"]["name"] for b in docs if b["kind"] == "ClusterRoleBinding") == \
        ["ac-agent-clusters-cluster", f"{GATEWAY}-auth"]
    cluster = chart.one(docs, "ClusterRole", "ac-agent-clusters-cluster")
    assert chart.rules(cluster) == chart.expected_cluster_rules("ac-agent-clusters.agentclusters.io")
    assert _container(docs)["args"] == ["--namespace=team-a", "--namespace=team-b"]


def test_the_gateway_watches_the_namespaces_its_role_bindings_reach() -> None:
    # Its caches list and watch per namespace there: a cluster-wide watch would be forbidden.
    assert _gateway_settings(chart.render({"operator.watchNamespaces": "{team-a,team-b}"})).watch_namespaces == \
        ("team-a", "team-b")
    assert _gateway_settings(chart.render({})).watch_namespaces == ()  # every namespace, one watch


def test_replicas_of_each_watched_namespace_get_a_network_policy() -> None:
    docs = chart.render({"operator.watchNamespaces": "{team-a,team-b}"})
    policies = {d["metadata"]["namespace"]: d["spec"] for d in docs if d["kind"] == "NetworkPolicy"}

    assert sorted(policies) == ["team-a", "team-b"]
    spec = policies["team-a"]
    # The selector matches what agent_operator/pods.py labels replica pods with.
    assert spec["podSelector"]["matchLabels"] == {"app.kubernetes.io/component": "agent-replica",
                                                  "app.kubernetes.io/managed-by": "agent-clusters"}
    (rule,) = spec["ingress"]
    assert rule["from"] == [{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "agent-clusters"}},
        "podSelector": {"matchLabels": chart.one(docs, "Deployment", GATEWAY)["spec"]["selector"]["matchLabels"]},
    }]
    assert rule["ports"] == [{"port": 8080, "protocol": "TCP"}]
    blocked = {cidr for peer in spec["egress"][0]["to"] for cidr in peer["ipBlock"]["except"]}
    assert "169.254.0.0/16" in blocked  # cloud instance metadata


def test_network_policies_need_namespaces_to_be_named() -> None:
    assert not [d for d in chart.render() if d["kind"] == "NetworkPolicy"]
    docs = chart.render({"networkPolicy.namespaces": "{team-c}"})
    assert [d["metadata"]["namespace"] for d in docs if d["kind"] == "NetworkPolicy"] == ["team-c"]
    assert not [d for d in chart.render({"operator.watchNamespaces": "{team-a}", "networkPolicy.enabled": "false"})
                if d["kind"] == "NetworkPolicy"]


def test_urls_as_values_go_into_the_release_secret() -> None:
    docs = chart.render(chart.URLS)
    secret = chart.one(docs, "Secret", "ac-agent-clusters-connections")
    assert secret["stringData"] == {
        "DATABASE_URL": chart.URLS["database.url"], "REDIS_URL": chart.URLS["redis.url"],
    }
    env = _env(docs)
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "ac-agent-clusters-connections", "key": "DATABASE_URL"}
    assert env["REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "ac-agent-clusters-connections", "key": "REDIS_URL"}
    # No URL is ever written into the ConfigMap.
    config = _operator_config_map(docs)["data"]["operator.yaml"]
    assert "postgres" not in config and "redis://" not in config
    assert base64.b64encode(b"secret").decode() not in config


def test_existing_secrets_and_cert_manager() -> None:
    docs = chart.render(chart.ALTERNATIVE)
    # No connections Secret to render: both are existing (the replica auth key is generated).
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "Secret"] == ["ac-agent-clusters-replica-auth"]
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
    volumes = {v["name"]: v for v in chart.one(docs, "Deployment", OPERATOR)["spec"]["template"]["spec"]["volumes"]}
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
    volumes = {v["name"]: v for v in chart.one(docs, "Deployment", OPERATOR)["spec"]["template"]["spec"]["volumes"]}
    assert volumes["webhook-cert"]["secret"]["secretName"] == "my-webhook-tls"
    assert not [d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == f"{OPERATOR}-webhook-tls"]
    # Default: no certificate given, the chart generates one Secret every operator replica
    # mounts (a certificate per pod would leave the caBundle matching only one of them).
    docs = chart.render()
    secret = chart.one(docs, "Secret", f"{OPERATOR}-webhook-tls")
    assert secret["type"] == "kubernetes.io/tls"
    certificate = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    assert f"{OPERATOR}-webhook.agent-clusters.svc" in certificate.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    volumes = {v["name"]: v for v in chart.one(docs, "Deployment", OPERATOR)["spec"]["template"]["spec"]["volumes"]}
    assert volumes["webhook-cert"]["secret"]["secretName"] == f"{OPERATOR}-webhook-tls"


def test_two_operators_roll_one_at_a_time_and_hardened_pod() -> None:
    docs = chart.render()
    deployment = chart.one(docs, "Deployment", OPERATOR)
    assert deployment["spec"]["replicas"] == 2
    # A new operator serves admission before an old one stops; leader election hands over.
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate",
                                              "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    budget = chart.one(docs, "PodDisruptionBudget", OPERATOR)
    assert budget["spec"] == {"maxUnavailable": 1,
                              "selector": {"matchLabels": deployment["spec"]["selector"]["matchLabels"]}}
    env = {e["name"]: e for e in _container(docs)["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["command"] == ["agentclusters", "operator"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["readinessProbe"] == {"tcpSocket": {"port": "webhook"}, "periodSeconds": 5,
                                           "failureThreshold": 3}
    assert "livenessProbe" not in container


# --- the MCP gateway ------------------------------------------------------------------------

GATEWAY_KINDS = {("Deployment", GATEWAY), ("Service", GATEWAY), ("Service", f"{GATEWAY}-metrics"),
                 ("ServiceAccount", GATEWAY),
                 ("ClusterRole", GATEWAY), ("ClusterRole", f"{GATEWAY}-auth"),
                 ("ClusterRoleBinding", GATEWAY), ("ClusterRoleBinding", f"{GATEWAY}-auth"),
                 ("PodDisruptionBudget", GATEWAY)}


def _gateway_objects(docs: list[dict]) -> set[tuple[str, str]]:
    return {(d["kind"], d["metadata"]["name"]) for d in docs
            if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "gateway"}


def _gateway_settings(docs: list[dict]) -> gateway_settings.Settings:
    """The rendered command line, parsed by the gateway's own argument parser."""
    container = _container(docs, GATEWAY)
    assert container["command"] == ["agentclusters", "gateway"]
    return gateway_settings.from_args(gateway_settings.parser().parse_args(container["args"]))


def test_gateway_is_on_by_default_and_reachable_through_its_service(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("KUBECONFIG", "DATABASE_URL", "REDIS_URL"):
        monkeypatch.delenv(variable, raising=False)
    docs = chart.render(chart.URLS)
    assert _gateway_objects(docs) == GATEWAY_KINDS  # no Ingress unless asked for
    loaded = _gateway_settings(docs)
    assert loaded.kubeconfig is None  # in-cluster credentials: the gateway's ServiceAccount
    assert loaded.host == "0.0.0.0" and loaded.port == 8090
    assert loaded.mcp_url == f"http://{GATEWAY}.agent-clusters.svc:8090/mcp"
    assert loaded.default_namespace == "default"
    assert loaded.rate_limit_per_minute == 120
    assert loaded.scale_timeout_seconds == 120.0
    assert loaded.webhook_max_body_bytes == 1024 * 1024
    # The same connection Secret as the operator.
    assert _env(docs, GATEWAY)["DATABASE_URL"] == _env(docs)["DATABASE_URL"]
    assert _env(docs, GATEWAY)["REDIS_URL"] == _env(docs)["REDIS_URL"]
    deployment = chart.one(docs, "Deployment", GATEWAY)
    assert deployment["spec"]["replicas"] == 2
    assert "strategy" not in deployment["spec"]  # stateless: the default rolling update
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == GATEWAY
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = _container(docs, GATEWAY)
    assert container["ports"] == [{"name": "http", "containerPort": 8090, "protocol": "TCP"},
                                  {"name": "metrics", "containerPort": 9091, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}  # caches synced
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    service = chart.one(docs, "Service", GATEWAY)
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": 8090, "targetPort": "http", "protocol": "TCP"}]
    # Each Service selects its own pods only: the webhook never reaches a gateway and back.
    selector = service["spec"]["selector"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    operator_pod = chart.one(docs, "Deployment", OPERATOR)["spec"]["template"]["metadata"]["labels"]
    assert not selector.items() <= operator_pod.items()
    webhook_selector = chart.one(docs, "Service", f"{OPERATOR}-webhook")["spec"]["selector"]
    assert not webhook_selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_exempt_writers_are_the_gateway_plus_the_configured_ones(tmp_path: Path) -> None:
    docs = chart.render({"webhook.secretReferenceCheckExempt": "{system:serviceaccount:gitops:applier}",
                         "gateway.serviceAccount.name": "mcp"})
    assert _settings(docs, tmp_path).webhook.secret_reference_check_exempt == [
        "system:serviceaccount:agent-clusters:mcp", "system:serviceaccount:gitops:applier"]
    docs = chart.render({"gateway.enabled": "false"})
    assert _settings(docs, tmp_path).webhook.secret_reference_check_exempt == []


def test_gateway_existing_secrets_are_the_operators() -> None:
    docs = chart.render(chart.ALTERNATIVE)
    assert _env(docs, GATEWAY)["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "pg-credentials", "key": "uri"}
    assert _env(docs, GATEWAY)["REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "redis-credentials", "key": "REDIS_URL"}


def test_gateway_rbac_is_exactly_what_the_gateway_uses() -> None:
    docs = chart.render()
    assert chart.rules(chart.one(docs, "ClusterRole", GATEWAY)) == chart.expected_gateway_rules()
    assert chart.rules(chart.one(docs, "ClusterRole", f"{GATEWAY}-auth")) == chart.expected_gateway_auth_rules()
    for name in (GATEWAY, f"{GATEWAY}-auth"):
        binding = chart.one(docs, "ClusterRoleBinding", name)
        assert binding["roleRef"]["name"] == name
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": GATEWAY, "namespace": "agent-clusters"}]
    # The operator's roles are unchanged by the gateway (separate accounts, separate roles).
    assert chart.rules(chart.one(docs, "ClusterRole", OPERATOR)) == chart.expected_namespaced_rules()


def test_gateway_disabled_renders_no_gateway_object() -> None:
    docs = chart.render({"gateway.enabled": "false", "gateway.ingress.enabled": "true"})
    assert _gateway_objects(docs) == set()
    assert not [d for d in docs if GATEWAY in d["metadata"]["name"]]
    assert {d["kind"] for d in docs} >= {"Deployment", "ClusterRole", "ServiceAccount"}  # the operator's
    assert "--public-url" not in chart.template_text({"gateway.enabled": "false"})


def test_gateway_values_reach_the_objects() -> None:
    docs = chart.render({
        "gateway.replicaCount": "3",
        "gateway.image.repository": "registry.example/gateway",
        "gateway.image.tag": "9.9",
        "gateway.port": "9000",
        "gateway.service.type": "NodePort",
        "gateway.service.port": "80",
        "gateway.defaultNamespace": "team-a",
        "gateway.rateLimitPerMinute": "30",
        "gateway.scaleTimeoutSeconds": "300",
        "gateway.webhookMaxBodyBytes": "65536",
        "gateway.webhookRateLimitPerMinute": "60",
        "gateway.tokenAudience": "mcp.example.com",
        "gateway.serviceAccount.name": "mcp",
        "gateway.readinessProbe.enabled": "false",
        "gateway.livenessProbe.enabled": "false",
    })
    assert chart.one(docs, "Deployment", GATEWAY)["spec"]["replicas"] == 3
    container = _container(docs, GATEWAY)
    assert container["image"] == "registry.example/gateway:9.9"
    assert "readinessProbe" not in container and "livenessProbe" not in container
    loaded = _gateway_settings(docs)
    assert loaded.port == 9000
    assert loaded.mcp_url == f"http://{GATEWAY}.agent-clusters.svc:80/mcp"
    assert (loaded.default_namespace, loaded.rate_limit_per_minute) == ("team-a", 30)
    assert (loaded.scale_timeout_seconds, loaded.webhook_max_body_bytes) == (300.0, 65536)
    assert (loaded.webhook_rate_limit_per_minute, loaded.token_audience) == (60, "mcp.example.com")
    service = chart.one(docs, "Service", GATEWAY)
    assert service["spec"]["type"] == "NodePort"
    assert service["spec"]["ports"][0]["port"] == 80 and service["spec"]["ports"][0]["targetPort"] == "http"
    assert chart.one(docs, "ServiceAccount", "mcp")
    assert chart.one(docs, "Deployment", GATEWAY)["spec"]["template"]["spec"]["serviceAccountName"] == "mcp"
    for name in (GATEWAY, f"{GATEWAY}-auth"):
        assert chart.one(docs, "ClusterRoleBinding", name)["subjects"][0]["name"] == "mcp"
    # Without gateway.image the operator's image is used.
    assert _container(chart.render(), GATEWAY)["image"] == "ghcr.io/agent-clusters/agent-clusters:0.1.0"


def test_gateway_runs_two_replicas_that_a_drain_cannot_evict_at_once() -> None:
    docs = chart.render()
    deployment = chart.one(docs, "Deployment", GATEWAY)
    assert deployment["spec"]["replicas"] == 2
    budget = chart.one(docs, "PodDisruptionBudget", GATEWAY)
    assert budget["apiVersion"] == "policy/v1"
    assert budget["spec"]["maxUnavailable"] == 1 and "minAvailable" not in budget["spec"]
    # It selects the gateway's pods and no other (not the operator's).
    selector = budget["spec"]["selector"]["matchLabels"]
    assert selector == deployment["spec"]["selector"]["matchLabels"]
    operator_pod = chart.one(docs, "Deployment", OPERATOR)["spec"]["template"]["metadata"]["labels"]
    assert not selector.items() <= operator_pod.items()


def test_gateway_disruption_budget_is_configurable() -> None:
    budget = chart.one(chart.render({"gateway.podDisruptionBudget.maxUnavailable": "2"}),
                       "PodDisruptionBudget", GATEWAY)
    assert budget["spec"]["maxUnavailable"] == 2
    budget = chart.one(chart.render({"gateway.podDisruptionBudget.maxUnavailable": "50%"}),
                       "PodDisruptionBudget", GATEWAY)
    assert budget["spec"]["maxUnavailable"] == "50%"
    docs = chart.render({"gateway.podDisruptionBudget.enabled": "false"})
    assert not [d for d in docs if d["kind"] == "PodDisruptionBudget" and d["metadata"]["name"] == GATEWAY]


def test_log_format_is_json_for_the_operator_and_the_gateway_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTCLUSTERS_LOG_FORMAT", raising=False)
    for values, expected in (({}, "json"), ({"logFormat": "text"}, "text")):
        docs = chart.render(values)
        assert _env(docs)["AGENTCLUSTERS_LOG_FORMAT"]["value"] == expected  # read by the operator's flag
        assert _gateway_settings(docs).log_format == expected


def test_gateway_ingress_is_optional_and_sets_the_public_url() -> None:
    docs = chart.render({"gateway.ingress.enabled": "true", "gateway.ingress.className": "nginx",
                         "gateway.ingress.host": "mcp.example.com",
                         "gateway.ingress.tls[0].secretName": "mcp-tls",
                         "gateway.ingress.tls[0].hosts[0]": "mcp.example.com"})
    ingress = chart.one(docs, "Ingress", GATEWAY)
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"secretName": "mcp-tls", "hosts": ["mcp.example.com"]}]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "mcp.example.com"
    assert rule["http"]["paths"] == [{"path": "/", "pathType": "Prefix", "backend": {
        "service": {"name": GATEWAY, "port": {"name": "http"}}}}]
    assert _gateway_settings(docs).mcp_url == "https://mcp.example.com/mcp"
    # publicUrl wins over everything (e.g. a gateway behind a proxy the chart does not manage).
    docs = chart.render({"gateway.publicUrl": "https://agents.example.org/", "gateway.ingress.enabled": "true",
                         "gateway.ingress.host": "mcp.example.com"})
    assert _gateway_settings(docs).mcp_url == "https://agents.example.org/mcp"


@pytest.mark.parametrize(("values", "message"), [
    ({"replicaCount": "-1"}, "/replicaCount"),
    ({"operator.leaderElection.renewDeadlineSeconds": "20"},
     "operator.leaderElection needs retryPeriodSeconds < renewDeadlineSeconds < leaseDurationSeconds"),
    ({"tiers.tiers.big.slots": "1", "tiers.tiers.big.cpu": "lots"}, "/tiers/tiers/big/cpu"),
    ({"tiers.tiers.nothing.cpu": "1"}, "missing property 'slots'"),
    ({"tiers.tiers.standard.allowedImages": "{ghcr.io/acme}"}, "/tiers/tiers/standard/allowedImages/0"),
    ({"webhook.secretReferenceCheckExempt": "someone"}, "/webhook/secretReferenceCheckExempt"),
    ({"unknownKey": "1"}, "additional properties 'unknownKey' not allowed"),
    ({"webhook.port": "70000"}, "/webhook/port"),
    ({"gateway.replicaCount": "0"}, "/gateway/replicaCount"),
    ({"logFormat": "xml"}, "/logFormat"),
    ({"gateway.podDisruptionBudget.maxUnavailable": "0"}, "/gateway/podDisruptionBudget/maxUnavailable"),
    ({"gateway.service.port": "0"}, "/gateway/service/port"),
    ({"gateway.service.type": "ExternalName"}, "/gateway/service/type"),
    ({"gateway.rateLimitPerMinute": "0"}, "/gateway/rateLimitPerMinute"),
    ({"gateway.publicUrl": "mcp.example.com"}, "/gateway/publicUrl"),
    ({"gateway.defaultNamespace": "Team_A"}, "/gateway/defaultNamespace"),
    ({"gateway.ingress.hosts": "x"}, "additional properties 'hosts' not allowed"),
    ({"tiers.defaultTier": "gold"}, 'tiers.defaultTier "gold" is not one of tiers.tiers (standard)'),
    ({"webhook.certManager.enabled": "true", "webhook.existingSecret": "x"},
     "webhook.certManager.enabled and webhook.existingSecret are exclusive"),
])
def test_bad_values_are_refused_with_a_clear_message(values: dict[str, str], message: str) -> None:
    result = chart.helm("template", "ac", str(chart.CHART), *chart.set_args(values), check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_operator_and_gateway_share_a_generated_replica_auth_key() -> None:
    docs = chart.render()
    secret = chart.one(docs, "Secret", "ac-agent-clusters-replica-auth")
    assert len(base64.b64decode(secret["data"]["key"])) >= replica_auth.MIN_MASTER_KEY_LENGTH
    for name in (OPERATOR, GATEWAY):
        assert _env(docs, name)[replica_auth.MASTER_KEY_ENV]["valueFrom"]["secretKeyRef"] == {
            "name": "ac-agent-clusters-replica-auth", "key": "key"}, name


def test_an_existing_replica_auth_secret_replaces_the_generated_one() -> None:
    docs = chart.render({"replicaAuth.existingSecret": "platform-keys", "replicaAuth.existingSecretKey": "replicas"})
    assert not [d for d in docs if d["metadata"]["name"] == "ac-agent-clusters-replica-auth"]
    for name in (OPERATOR, GATEWAY):
        assert _env(docs, name)[replica_auth.MASTER_KEY_ENV]["valueFrom"]["secretKeyRef"] == {
            "name": "platform-keys", "key": "replicas"}, name


def test_one_operator_gets_no_disruption_budget_and_leader_election_settings_reach_it(tmp_path: Path) -> None:
    docs = chart.render({"replicaCount": "1", "operator.leaderElection.leaseName": "ops-lease",
                         "operator.leaderElection.leaseDurationSeconds": "30"})
    assert not [d for d in docs if d["kind"] == "PodDisruptionBudget" and d["metadata"]["name"] == OPERATOR]
    election = _settings(docs, tmp_path).leader_election
    assert (election.enabled, election.lease_name, election.lease_namespace) == (True, "ops-lease", "agent-clusters")
    assert (election.lease_duration_seconds, election.renew_deadline_seconds,
            election.retry_period_seconds) == (30, 10, 2)
    role = chart.one(docs, "Role", f"{OPERATOR}-leader-election")
    assert chart.rules(role) == chart.expected_leader_election_rules("ops-lease")


def test_operator_and_gateway_serve_metrics_on_the_ports_their_metrics_services_target(tmp_path: Path) -> None:
    docs = chart.render({**chart.URLS, "metrics.operatorPort": "9100", "metrics.gatewayPort": "9101"})
    operator = _settings(docs, tmp_path)
    assert operator.metrics_port == 9100 and operator.metrics_host == "0.0.0.0"
    assert {"name": "metrics", "containerPort": 9100, "protocol": "TCP"} in _container(docs)["ports"]
    assert _gateway_settings(docs).metrics_port == 9101
    assert {"name": "metrics", "containerPort": 9101, "protocol": "TCP"} in _container(docs, GATEWAY)["ports"]
    for service, port in (("ac-agent-clusters-metrics", 9100), (f"{GATEWAY}-metrics", 9101)):
        assert chart.one(docs, "Service", service)["spec"]["ports"] == [
            {"name": "metrics", "port": port, "targetPort": "metrics", "protocol": "TCP"}]
