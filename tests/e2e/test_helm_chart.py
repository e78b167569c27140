"""The Helm chart against a real kube-apiserver (a private devcluster control plane, no
kubelet): lint, server-side dry runs of the rendered manifests, `helm install`/`upgrade`/
`uninstall`, and the operator's and the MCP gateway's ServiceAccounts' effective rights checked
with `kubectl auth can-i` impersonation (and, for the gateway, real TokenReviews and
SubjectAccessReviews made as its ServiceAccount).
"""

from __future__ import annotations

import asyncio
import base64
import json
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from agent_api import replica_auth
from agent_gateway import auth, errors, kube, settings
from devcluster import crd_wait
from tests.e2e import helpers
from tests.unit import chart

pytestmark = pytest.mark.e2e

NAMESPACE = "agent-clusters"
RELEASE = "ac"
FULLNAME = f"{RELEASE}-agent-clusters"
SERVICE_ACCOUNT = f"system:serviceaccount:{NAMESPACE}:{FULLNAME}"
WEBHOOK_CONFIGURATION = f"{FULLNAME}.agentclusters.io"
GATEWAY = f"{FULLNAME}-gateway"
GATEWAY_ACCOUNT = f"system:serviceaccount:{NAMESPACE}:{GATEWAY}"
# Further releases in a cluster leave the cluster-wide, release-less objects (the CRD, the
# aggregated ClusterRoles) to the first one.
SECOND_RELEASE = ["--set", "crds.enabled=false", "--set", "rbac.aggregateToDefaultRoles=false"]


@dataclass
class Cluster:
    kubectl_binary: Path
    kubeconfig: Path

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.kubectl_binary), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin, text=True, capture_output=True, timeout=60,
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        result = self.kubectl(*args, stdin=stdin)
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
        return result.stdout

    def get(self, *args: str) -> dict:
        return json.loads(self.ok("get", "-o", "json", *args))

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return chart.helm(*args, kubeconfig=self.kubeconfig, check=check)

    def can_i(self, verb: str, resource: str, *, namespace: str | None = "team-a",
              subresource: str | None = None, account: str = SERVICE_ACCOUNT) -> bool:
        args = ["auth", "can-i", verb, resource, f"--as={account}"]
        args += [f"--namespace={namespace}"] if namespace else ["--all-namespaces"]
        if subresource:
            args.append(f"--subresource={subresource}")
        result = self.kubectl(*args)
        assert result.stdout.strip() in ("yes", "no"), result.stderr
        return result.stdout.strip() == "yes"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    from devcluster import binaries, controlplane

    bin_dir = binaries.ensure()
    plane = controlplane.ControlPlane(tmp_path_factory.mktemp("helm-apiserver"), bin_dir).start()
    try:
        yield Cluster(bin_dir / "kubectl", plane.admin_kubeconfig)
    finally:
        plane.stop()


@pytest.fixture(scope="module")
def installed(cluster: Cluster) -> Cluster:
    """The chart installed (the CRD and the aggregated ClusterRoles included) with URLs as values."""
    cluster.helm("install", RELEASE, str(chart.CHART), "--namespace", NAMESPACE, "--create-namespace",
                 *chart.set_args(chart.URLS))
    waited = crd_wait.wait_established(
        [str(cluster.kubectl_binary), "--kubeconfig", str(cluster.kubeconfig)],
        "crd/agentclusters.agentclusters.io")
    assert waited.returncode == 0, waited.stderr
    return cluster


def _namespace(cluster: Cluster, name: str) -> None:
    cluster.ok("apply", "-f", "-", stdin=json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))


def _dry_run(cluster: Cluster, docs: list[dict]) -> str:
    return cluster.ok("apply", "--dry-run=server", "-f", "-",
                      stdin=yaml.safe_dump_all(docs, sort_keys=False))


# The gateway with every optional part: Ingress with TLS, several replicas, NodePort, own account name.
GATEWAY_VARIANT = {
    "gateway.replicaCount": "3",
    "gateway.service.type": "NodePort",
    "gateway.service.port": "80",
    "gateway.serviceAccount.name": "mcp-gateway",
    "gateway.ingress.enabled": "true",
    "gateway.ingress.className": "nginx",
    "gateway.ingress.host": "mcp.example.com",
    "gateway.ingress.tls[0].secretName": "mcp-tls",
    "gateway.ingress.tls[0].hosts[0]": "mcp.example.com",
}


# --- offline checks ------------------------------------------------------------------------

def test_helm_lint_is_clean_with_default_and_alternative_values() -> None:
    for values in ({}, chart.ALTERNATIVE, chart.URLS, {"webhook.existingSecret": "tls", "webhook.enabled": "true"},
                   GATEWAY_VARIANT, {"gateway.enabled": "false"}):
        result = chart.helm("lint", "--strict", str(chart.CHART), *chart.set_args(values))
        assert "0 chart(s) failed" in result.stdout, result.stdout
        assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


# --- against the API server ----------------------------------------------------------------

def test_default_rendering_passes_server_side_dry_run(installed: Cluster) -> None:
    _namespace(installed, "dry-default")
    docs = chart.render(release="dry", namespace="dry-default")
    out = _dry_run(installed, docs)
    assert out.count("(server dry run)") == len(docs), out


def test_alternative_rendering_passes_server_side_dry_run(installed: Cluster) -> None:
    """Existing Secrets, cert-manager and a namespace list. The API server has no cert-manager
    CRDs, so exactly the Issuer and Certificate are left out here (tests/unit checks them)."""
    for name in ("dry-alt", "team-x", "team-y"):
        _namespace(installed, name)
    docs = chart.render({**chart.ALTERNATIVE, "operator.watchNamespaces": "{team-x,team-y}"},
                        release="alt", namespace="dry-alt")
    skipped = [d for d in docs if d["apiVersion"].startswith("cert-manager.io/")]
    assert sorted((d["apiVersion"], d["kind"]) for d in skipped) == [
        ("cert-manager.io/v1", "Certificate"), ("cert-manager.io/v1", "Issuer")]
    rest = [d for d in docs if d not in skipped]
    assert {"Deployment", "RoleBinding", "ValidatingWebhookConfiguration"} <= {d["kind"] for d in rest}
    out = _dry_run(installed, rest)
    assert out.count("(server dry run)") == len(rest), out


def test_gateway_renderings_pass_server_side_dry_run(installed: Cluster) -> None:
    """Every optional gateway part on (Ingress included), scoped to namespaces; and the gateway off."""
    for name in ("dry-gw", "team-g"):
        _namespace(installed, name)
    docs = chart.render({**chart.URLS, **GATEWAY_VARIANT, "operator.watchNamespaces": "{team-g}"},
                        release="gw", namespace="dry-gw")
    assert {"Ingress", "RoleBinding"} <= {d["kind"] for d in docs}
    out = _dry_run(installed, docs)
    assert out.count("(server dry run)") == len(docs), out
    assert "ingress.networking.k8s.io/gw-agent-clusters-gateway created (server dry run)" in out
    docs = chart.render({"gateway.enabled": "false"}, release="nogw", namespace="dry-gw")
    assert not [d for d in docs if "gateway" in d["metadata"]["name"]]
    out = _dry_run(installed, docs)
    assert out.count("(server dry run)") == len(docs), out


RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted",
              "pod-security.kubernetes.io/enforce-version": "latest",
              "pod-security.kubernetes.io/warn": "restricted",
              "pod-security.kubernetes.io/warn-version": "latest"}


def _restricted_namespace(cluster: Cluster, name: str) -> None:
    cluster.ok("apply", "-f", "-", stdin=json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": RESTRICTED}}))


def test_the_operator_and_gateway_pods_are_admitted_under_restricted_pod_security(cluster: Cluster) -> None:
    """Pod Security enforces on pods, not on Deployments: each Deployment's pod template, as a
    Pod, through a server-side dry run in a namespace enforcing `restricted`."""
    _restricted_namespace(cluster, "dry-restricted")
    docs = chart.render({**chart.URLS, "gateway.enabled": "true"}, release="psa", namespace="dry-restricted")
    # The pods name their ServiceAccounts, which must exist for the pods to be admitted at all.
    cluster.ok("apply", "-f", "-", stdin=yaml.safe_dump_all([d for d in docs if d["kind"] == "ServiceAccount"]))
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    assert len(deployments) == 2, [d["metadata"]["name"] for d in deployments]
    for deployment in deployments:
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": deployment["metadata"]["name"], "namespace": "dry-restricted"},
               "spec": deployment["spec"]["template"]["spec"]}
        result = cluster.kubectl("apply", "--dry-run=server", "-f", "-", stdin=json.dumps(pod))

        assert result.returncode == 0, result.stderr
        assert "created (server dry run)" in result.stdout


def test_the_chart_deployments_draw_no_pod_security_warning(cluster: Cluster) -> None:
    _restricted_namespace(cluster, "dry-restricted-warn")
    docs = chart.render({**chart.URLS, "gateway.enabled": "true"}, release="psa",
                        namespace="dry-restricted-warn")
    deployments = [d for d in docs if d["kind"] == "Deployment"]

    result = cluster.kubectl("apply", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump_all(deployments))

    assert result.returncode == 0, result.stderr
    assert "PodSecurity" not in result.stderr, result.stderr


def test_install_creates_the_operator_objects(installed: Cluster) -> None:
    deployment = installed.get("deployment", FULLNAME, "-n", NAMESPACE)
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert installed.get("poddisruptionbudget", FULLNAME, "-n", NAMESPACE)["spec"]["maxUnavailable"] == 1
    assert pod["serviceAccountName"] == FULLNAME
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": f"{FULLNAME}-connections", "key": "DATABASE_URL"}
    settings = yaml.safe_load(installed.get("configmap", FULLNAME, "-n", NAMESPACE)["data"]["operator.yaml"])
    assert settings["webhook"]["host"] == f"{FULLNAME}-webhook.{NAMESPACE}.svc"
    service = installed.get("service", f"{FULLNAME}-webhook", "-n", NAMESPACE)
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(9443, "webhook")]
    installed.get("serviceaccount", FULLNAME, "-n", NAMESPACE)
    installed.get("secret", f"{FULLNAME}-connections", "-n", NAMESPACE)
    installed.get("clusterrolebinding", FULLNAME)
    installed.get("clusterrolebinding", f"{FULLNAME}-cluster")
    assert installed.get("validatingwebhookconfiguration", WEBHOOK_CONFIGURATION).get("webhooks") is None
    # The live roles hold exactly the expected grants (nothing added or lost by the server).
    assert chart.rules(installed.get("clusterrole", FULLNAME)) == chart.expected_namespaced_rules()
    assert chart.rules(installed.get("clusterrole", f"{FULLNAME}-cluster")) == \
        chart.expected_cluster_rules(WEBHOOK_CONFIGURATION)
    status = installed.helm("status", RELEASE, "--namespace", NAMESPACE, "-o", "json")
    assert json.loads(status.stdout)["info"]["status"] == "deployed"


def test_install_creates_the_gateway_objects(installed: Cluster) -> None:
    deployment = installed.get("deployment", GATEWAY, "-n", NAMESPACE)
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    budget = installed.get("poddisruptionbudget", GATEWAY, "-n", NAMESPACE)
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert pod["serviceAccountName"] == GATEWAY
    (container,) = pod["containers"]
    assert container["command"] == ["agentclusters", "gateway"]
    assert "--host=0.0.0.0" in container["args"]
    assert f"--public-url=http://{GATEWAY}.{NAMESPACE}.svc:8090" in container["args"]
    env = {e["name"]: e for e in container["env"]}
    for variable in ("DATABASE_URL", "REDIS_URL"):  # the operator's Secret
        assert env[variable]["valueFrom"]["secretKeyRef"] == {"name": f"{FULLNAME}-connections", "key": variable}
    service = installed.get("service", GATEWAY, "-n", NAMESPACE)
    assert [(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [("http", 8090, "http")]
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "gateway"
    installed.get("serviceaccount", GATEWAY, "-n", NAMESPACE)
    assert chart.rules(installed.get("clusterrole", GATEWAY)) == chart.expected_gateway_rules()
    assert chart.rules(installed.get("clusterrole", f"{GATEWAY}-auth")) == chart.expected_gateway_auth_rules()
    for name in (GATEWAY, f"{GATEWAY}-auth"):
        binding = installed.get("clusterrolebinding", name)
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": GATEWAY, "namespace": NAMESPACE}]
    assert installed.kubectl("get", "ingress", GATEWAY, "-n", NAMESPACE).returncode != 0  # off by default


# Every call the gateway makes (agent_gateway/kube.py, its caches' list and watch in
# agent_gateway/informer.py). Not status.
GATEWAY_ALLOWED = [
    ("get", "agentclusters.agentclusters.io", None),
    ("list", "agentclusters.agentclusters.io", None),
    ("watch", "agentclusters.agentclusters.io", None),
    ("create", "agentclusters.agentclusters.io", None),
    ("patch", "agentclusters.agentclusters.io", None),
    ("delete", "agentclusters.agentclusters.io", None),
    ("patch", "agentclusters.agentclusters.io", "scale"),
    ("get", "pods", None),  # routing checks a replica's address against its pod,
    ("list", "pods", None),  # from a watch of the replica pods
    ("watch", "pods", None),
]
GATEWAY_ALLOWED_CLUSTER = [
    ("list", "pods"),  # the default binding is cluster-wide: one watch for every namespace
    ("watch", "agentclusters.agentclusters.io"),
    ("create", "tokenreviews.authentication.k8s.io"),
    ("create", "subjectaccessreviews.authorization.k8s.io"),
]
GATEWAY_DENIED = [
    # No Secret at all: the gateway authorizes a caller's Secret references, it never reads one.
    ("get", "secrets/webhook-signing-key", None),
    ("get", "secrets/agentclusters-runtime", None),
    ("list", "secrets", None),
    ("watch", "secrets", None),
    ("create", "secrets", None),
    ("patch", "secrets/webhook-signing-key", None),
    ("delete", "secrets/webhook-signing-key", None),
    ("create", "pods", None),
    ("delete", "pods", None),
    ("create", "pods", "exec"),
    ("update", "agentclusters.agentclusters.io", None),
    ("deletecollection", "agentclusters.agentclusters.io", None),
    ("patch", "agentclusters.agentclusters.io", "status"),
    ("update", "agentclusters.agentclusters.io", "finalizers"),
    ("update", "agentclusters.agentclusters.io", "scale"),
    ("get", "configmaps", None),
    ("create", "events", None),
    ("create", "serviceaccounts", "token"),
    ("create", "rolebindings.rbac.authorization.k8s.io", None),
    ("create", "deployments.apps", None),
]
GATEWAY_DENIED_CLUSTER = [
    ("delete", "namespaces/team-a"),
    ("get", "namespaces/team-a"),
    ("list", "secrets"),
    ("get", "nodes"),
    ("impersonate", "users"),
    ("impersonate", "serviceaccounts"),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("create", "certificatesigningrequests.certificates.k8s.io"),
    ("list", "customresourcedefinitions.apiextensions.k8s.io"),
    ("*", "*"),
]


def test_gateway_account_can_do_what_the_gateway_does(installed: Cluster) -> None:
    missing = [(verb, res, sub) for verb, res, sub in GATEWAY_ALLOWED
               if not installed.can_i(verb, res, subresource=sub, account=GATEWAY_ACCOUNT)]
    missing += [(verb, res, None) for verb, res in GATEWAY_ALLOWED_CLUSTER
                if not installed.can_i(verb, res, namespace=None, account=GATEWAY_ACCOUNT)]
    assert not missing, f"the gateway's ServiceAccount lacks {missing}"
    # Agents in every namespace (the default watches all of them).
    assert installed.can_i("patch", "agentclusters.agentclusters.io", namespace="any-other-namespace",
                           subresource="scale", account=GATEWAY_ACCOUNT)


def test_gateway_account_can_do_nothing_more(installed: Cluster) -> None:
    excess = [(verb, res, sub) for verb, res, sub in GATEWAY_DENIED
              if installed.can_i(verb, res, subresource=sub, account=GATEWAY_ACCOUNT)]
    excess += [(verb, res, None) for verb, res in GATEWAY_DENIED_CLUSTER
               if installed.can_i(verb, res, namespace=None, account=GATEWAY_ACCOUNT)]
    assert not excess, f"the gateway's ServiceAccount may also {excess}"
    # And the operator's account cannot authenticate tokens (its webhook reviews access, below).
    assert not installed.can_i("create", "tokenreviews.authentication.k8s.io", namespace=None)


def _notes_commands(notes: str, prefix: str) -> list[list[str]]:
    """The shell commands NOTES.txt prints (continuation lines joined) that start with `prefix`."""
    joined = notes.replace("\\\n", " ")
    return [shlex.split(line.strip()) for line in joined.splitlines() if line.strip().startswith(prefix)]


def test_notes_caller_recipe_works_against_the_gateways_reviews(installed: Cluster) -> None:
    """NOTES.txt says how to reach /mcp and how to get a token. Run its commands, then do what
    the gateway does with the token, as the gateway's ServiceAccount: a TokenReview, and a
    SubjectAccessReview per tool (both from agent_gateway.auth)."""
    notes = installed.helm("get", "notes", RELEASE, "--namespace", NAMESPACE).stdout
    assert f"http://{GATEWAY}.{NAMESPACE}.svc:8090/mcp" in notes
    assert f"kubectl -n {NAMESPACE} port-forward service/{GATEWAY} 8090:8090" in notes
    commands = _notes_commands(notes, "kubectl -n team-a ")
    assert [c[3:5] for c in commands] == [["create", k] for k in ("serviceaccount", "role", "rolebinding", "token")]
    _namespace(installed, "team-a")
    _namespace(installed, "team-b")
    token = ""
    for command in commands:
        token = installed.ok(*command[1:]).strip()
    # The gateway's own review code (agent_gateway.auth), with the gateway's ServiceAccount.
    api = config.new_client_from_config(config_file=str(installed.kubeconfig))
    api.set_default_header("Impersonate-User", GATEWAY_ACCOUNT)
    try:
        asyncio.run(_review_as_the_gateway(kube.Kube(api), token))
    finally:
        api.close()


async def _review_as_the_gateway(api: kube.Kube, token: str) -> None:
    verifier = auth.KubeTokenVerifier(api, cache_seconds=0, audience=settings.DEFAULT_AUDIENCE)
    access = await verifier.verify_token(token)
    assert access is not None and access.subject == "system:serviceaccount:team-a:mcp-caller"
    assert await verifier.verify_token("not-a-token") is None
    caller = auth.Caller(username=access.subject, groups=tuple(access.claims["groups"]), uid=access.claims["uid"])
    authorizer = auth.Authorizer(api, cache_seconds=0)
    for verb in ("get", "list", "create", "patch", "delete"):
        await authorizer.require(caller, "team-a", verb)
    await authorizer.require(caller, "team-a", "patch", "scale")
    for namespace, verb, subresource in (("team-b", "get", ""), ("team-b", "patch", "scale")):
        with pytest.raises(errors.GatewayError, match="may not"):  # the Role binds in team-a only
            await authorizer.require(caller, namespace, verb, subresource)


# Every call the operator makes (agent_operator/kube.py) and kopf's own (watches, events,
# CRD scanning, the managed webhook configuration).
ALLOWED = [
    ("get", "agentclusters.agentclusters.io", None),
    ("list", "agentclusters.agentclusters.io", None),
    ("watch", "agentclusters.agentclusters.io", None),
    ("patch", "agentclusters.agentclusters.io", None),
    ("patch", "agentclusters.agentclusters.io", "status"),
    ("update", "agentclusters.agentclusters.io", "finalizers"),
    ("list", "pods", None),
    ("watch", "pods", None),
    ("create", "pods", None),
    ("delete", "pods", None),
    ("create", "secrets", None),
    ("patch", "secrets/agentclusters-runtime", None),
    ("get", "secrets/agentclusters-runtime", None),
    ("patch", "secrets/agentclusters-replica-tokens", None),
    ("get", "secrets/agentclusters-replica-tokens", None),
    ("create", "events", None),
    # The PodDisruptionBudget of each AgentCluster of 2+ replicas (agent_operator/disruption.py),
    # read from kopf's watch (agent_operator/cache.py).
    ("list", "poddisruptionbudgets.policy", None),
    ("watch", "poddisruptionbudgets.policy", None),
    ("create", "poddisruptionbudgets.policy", None),
    ("patch", "poddisruptionbudgets.policy", None),
    ("delete", "poddisruptionbudgets.policy", None),
]
ALLOWED_CLUSTER = [
    ("get", "namespaces/team-a"),
    ("list", "namespaces"),  # tier labels, read from kopf's watch (agent_operator/cache.py)
    ("watch", "namespaces"),
    ("list", "customresourcedefinitions.apiextensions.k8s.io"),
    ("watch", "customresourcedefinitions.apiextensions.k8s.io"),
    ("create", "validatingwebhookconfigurations.admissionregistration.k8s.io"),
    ("patch", f"validatingwebhookconfigurations.admissionregistration.k8s.io/{WEBHOOK_CONFIGURATION}"),
    ("create", "subjectaccessreviews.authorization.k8s.io"),  # who may reference which Secret
]
DENIED = [
    ("get", "secrets", None),  # the operator reads only its own runtime Secret
    ("list", "secrets", None),
    ("delete", "secrets", None),
    ("patch", "secrets/someone-elses", None),
    ("update", "pods", None),
    ("patch", "pods", None),
    ("create", "pods", "exec"),
    ("create", "agentclusters.agentclusters.io", None),
    ("delete", "agentclusters.agentclusters.io", None),
    ("update", "agentclusters.agentclusters.io", None),
    ("update", "agentclusters.agentclusters.io", "status"),
    ("create", "deployments.apps", None),
    ("create", "roles.rbac.authorization.k8s.io", None),
    ("delete", "events", None),
    ("create", "serviceaccounts", "token"),
    ("create", "pods", "eviction"),
]
DENIED_CLUSTER = [
    ("delete", "namespaces/team-a"),
    ("patch", "namespaces/team-a"),
    ("create", "customresourcedefinitions.apiextensions.k8s.io"),
    ("delete", f"validatingwebhookconfigurations.admissionregistration.k8s.io/{WEBHOOK_CONFIGURATION}"),
    ("patch", "validatingwebhookconfigurations.admissionregistration.k8s.io/another-webhook"),
    ("create", "mutatingwebhookconfigurations.admissionregistration.k8s.io"),
    ("create", "clusterroles.rbac.authorization.k8s.io"),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("*", "*"),
]


def test_service_account_can_do_what_the_operator_does(installed: Cluster) -> None:
    missing = [(verb, res, sub) for verb, res, sub in ALLOWED
               if not installed.can_i(verb, res, subresource=sub)]
    missing += [(verb, res, None) for verb, res in ALLOWED_CLUSTER
                if not installed.can_i(verb, res, namespace=None)]
    assert not missing, f"the operator's ServiceAccount lacks {missing}"
    # Namespaced rights hold in every namespace (the default watches all of them).
    assert installed.can_i("create", "pods", namespace="any-other-namespace")


def test_service_account_holds_its_lease_and_no_other(installed: Cluster) -> None:
    """Leader election: get, update its own Lease (create: any name, in its namespace only)."""
    lease = "leases.coordination.k8s.io/agentclusters-operator"
    assert installed.can_i("get", lease, namespace=NAMESPACE)
    assert installed.can_i("update", lease, namespace=NAMESPACE)
    assert installed.can_i("create", "leases.coordination.k8s.io", namespace=NAMESPACE)
    assert not installed.can_i("update", "leases.coordination.k8s.io/someone-elses", namespace=NAMESPACE)
    assert not installed.can_i("delete", lease, namespace=NAMESPACE)
    assert not installed.can_i("update", lease, namespace="team-a")
    assert not installed.can_i("create", "leases.coordination.k8s.io", namespace="team-a")


def test_service_account_can_do_nothing_more(installed: Cluster) -> None:
    excess = [(verb, res, sub) for verb, res, sub in DENIED
              if installed.can_i(verb, res, subresource=sub)]
    excess += [(verb, res, None) for verb, res in DENIED_CLUSTER
               if installed.can_i(verb, res, namespace=None)]
    assert not excess, f"the operator's ServiceAccount may also {excess}"


def test_watch_namespaces_limits_namespaced_rights(cluster: Cluster) -> None:
    release, namespace = "scoped", "scoped-operator"
    for name in ("team-p", "team-q"):
        _namespace(cluster, name)
    cluster.helm("install", release, str(chart.CHART), "--namespace", namespace, "--create-namespace",
                 "--set", "operator.watchNamespaces={team-p,team-q}", "--set", "webhook.enabled=false",
                 *SECOND_RELEASE)
    try:
        account = f"system:serviceaccount:{namespace}:{release}-agent-clusters"

        def can(*args: str) -> bool:
            return cluster.kubectl("auth", "can-i", *args, f"--as={account}").stdout.strip() == "yes"

        assert can("create", "pods", "-n", "team-p") and can("create", "pods", "-n", "team-q")
        assert not can("create", "pods", "-n", "team-r")
        assert not can("create", "pods", "-n", "default")
        assert can("list", "namespaces") and can("watch", "namespaces")  # kopf follows the list
        assert not can("create", "validatingwebhookconfigurations.admissionregistration.k8s.io")
        # The gateway's namespaced rights (AgentClusters) follow the same list; Secrets nowhere.
        gateway = f"system:serviceaccount:{namespace}:{release}-agent-clusters-gateway"

        def gateway_can(*args: str) -> bool:
            return cluster.kubectl("auth", "can-i", *args, f"--as={gateway}").stdout.strip() == "yes"

        assert gateway_can("patch", "agentclusters.agentclusters.io", "--subresource=scale", "-n", "team-q")
        assert not gateway_can("get", "secrets/hook-key", "-n", "team-p")
        for other in ("team-r", "kube-system", namespace):
            assert not gateway_can("get", "secrets/hook-key", "-n", other), other
            assert not gateway_can("get", "agentclusters.agentclusters.io", "-n", other), other
        assert gateway_can("create", "tokenreviews.authentication.k8s.io")
        assert gateway_can("create", "subjectaccessreviews.authorization.k8s.io")
    finally:
        cluster.helm("uninstall", release, "--namespace", namespace)


def test_upgrade_keeps_the_operators_webhooks_and_uninstall_removes_them(cluster: Cluster) -> None:
    release, namespace = "cycle", "cycle-operator"
    fullname = f"{release}-agent-clusters"
    configuration = f"{fullname}.agentclusters.io"
    cluster.helm("install", release, str(chart.CHART), "--namespace", namespace, "--create-namespace",
                 *SECOND_RELEASE)
    # What kopf does at start-up, done as the operator's own ServiceAccount.
    webhook = {
        "name": f"spec.{configuration}",
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "failurePolicy": "Ignore",
        "clientConfig": {"url": f"https://{fullname}-webhook.{namespace}.svc:9443/spec"},
        "rules": [{"apiGroups": ["agentclusters.io"], "apiVersions": ["v1alpha1"],
                   "operations": ["CREATE", "UPDATE"], "resources": ["agentclusters"]}],
    }
    # (a bare PATCH, as kopf sends it: `kubectl patch` would GET first, which kopf never does)
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        api.set_default_header("Impersonate-User", f"system:serviceaccount:{namespace}:{fullname}")
        client.AdmissionregistrationV1Api(api).patch_validating_webhook_configuration(
            configuration, {"webhooks": [webhook]})
    finally:
        api.close()
    cluster.helm("upgrade", release, str(chart.CHART), "--namespace", namespace,
                 "--reuse-values", "--set", "operator.workers=6")
    live = cluster.get("validatingwebhookconfiguration", configuration)
    assert [w["name"] for w in live["webhooks"]] == [webhook["name"]]
    settings = yaml.safe_load(cluster.get("configmap", fullname, "-n", namespace)["data"]["operator.yaml"])
    assert settings["workers"] == 6
    cluster.helm("uninstall", release, "--namespace", namespace)
    gone = cluster.kubectl("get", "validatingwebhookconfiguration", configuration)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
    assert cluster.kubectl("get", "clusterrole", fullname).returncode != 0
    # The first release's CRD is untouched by a second release's life.
    cluster.ok("get", "crd", "agentclusters.agentclusters.io")


def test_upgrade_keeps_the_replica_auth_key(cluster: Cluster) -> None:
    """Replica tokens derive from the key: an upgrade must not change it, or every agent's
    replicas would refuse the gateway until they restart."""
    release, namespace = "keyed", "keyed-operator"
    secret = f"{release}-agent-clusters-replica-auth"
    cluster.helm("install", release, str(chart.CHART), "--namespace", namespace, "--create-namespace",
                 *SECOND_RELEASE)
    try:
        before = cluster.get("secret", secret, "-n", namespace)["data"]["key"]
        cluster.helm("upgrade", release, str(chart.CHART), "--namespace", namespace,
                     "--reuse-values", "--set", "operator.workers=6")
        after = cluster.get("secret", secret, "-n", namespace)["data"]["key"]
    finally:
        cluster.helm("uninstall", release, "--namespace", namespace)
    assert before == after
    assert len(base64.b64decode(before)) >= replica_auth.MIN_MASTER_KEY_LENGTH


# --- aggregated ClusterRoles: the default view/edit roles carry AgentCluster rights ------------

MINIMAL_AGENT = {"apiVersion": "agentclusters.io/v1alpha1", "kind": "AgentCluster",
                 "metadata": {"name": "hello"}, "spec": {"replicas": 1}}


def _bind_default_role(cluster: Cluster, namespace: str, user: str, role: str) -> None:
    """What a namespace admin does: a RoleBinding to one of Kubernetes' own ClusterRoles."""
    cluster.ok("create", "rolebinding", f"{user}-{role}", f"--clusterrole={role}", f"--user={user}",
               "-n", namespace)


def _user_can(cluster: Cluster, user: str, namespace: str, verb: str, subresource: str | None = None) -> bool:
    return cluster.can_i(verb, "agentclusters.agentclusters.io", namespace=namespace,
                         subresource=subresource, account=user)


def test_a_user_bound_to_the_default_edit_role_creates_and_scales_agentclusters(installed: Cluster) -> None:
    _namespace(installed, "team-edit")
    _bind_default_role(installed, "team-edit", "alice", "edit")
    # The controller-manager folds agentclusters-edit into edit; wait for it.
    helpers.eventually(lambda: _user_can(installed, "alice", "team-edit", "create"),
                       what="edit to aggregate agentclusters-edit")
    created = installed.kubectl("create", "-n", "team-edit", "--as=alice", "-f", "-",
                                stdin=json.dumps(MINIMAL_AGENT))
    assert created.returncode == 0, created.stderr
    scaled = installed.kubectl("scale", "agc/hello", "--replicas=2", "-n", "team-edit", "--as=alice")
    assert scaled.returncode == 0, scaled.stderr
    assert installed.get("agc", "hello", "-n", "team-edit")["spec"]["replicas"] == 2
    # Never the operator's status, and nothing outside the bound namespace.
    assert not _user_can(installed, "alice", "team-edit", "patch", "status")
    assert not _user_can(installed, "alice", "team-a", "create")


def test_a_user_bound_to_the_default_view_role_reads_but_cannot_create(installed: Cluster) -> None:
    _namespace(installed, "team-view")
    installed.ok("create", "-n", "team-view", "-f", "-", stdin=json.dumps(MINIMAL_AGENT))
    _bind_default_role(installed, "team-view", "bob", "view")
    helpers.eventually(lambda: _user_can(installed, "bob", "team-view", "get"),
                       what="view to aggregate agentclusters-view")
    read = installed.kubectl("get", "agc", "hello", "-n", "team-view", "--as=bob")
    assert read.returncode == 0, read.stderr
    created = installed.kubectl("create", "-n", "team-view", "--as=bob", "-f", "-",
                                stdin=json.dumps({**MINIMAL_AGENT, "metadata": {"name": "other"}}))
    assert created.returncode != 0 and "forbidden" in created.stderr, created.stderr
    for verb, subresource in (("create", None), ("patch", None), ("delete", None), ("patch", "scale")):
        assert not _user_can(installed, "bob", "team-view", verb, subresource), (verb, subresource)


def test_the_default_admin_role_carries_the_edit_rights(installed: Cluster) -> None:
    _namespace(installed, "team-admin")
    _bind_default_role(installed, "team-admin", "carol", "admin")
    helpers.eventually(lambda: _user_can(installed, "carol", "team-admin", "create"),
                       what="admin to aggregate agentclusters-admin")
    for verb, subresource in (("delete", None), ("patch", "scale"), ("list", None)):
        assert _user_can(installed, "carol", "team-admin", verb, subresource), (verb, subresource)


def test_helm_test_creates_the_smoke_check_pod_as_a_test_hook(installed: Cluster) -> None:
    """The hook is registered with the release and `helm test` creates its Pod. This control plane
    has no kubelet, so the Pod never runs here (helm test times out waiting); its command is run
    against real processes in tests/e2e/gateway/test_helm_smoke_check.py."""
    hooks = [d for d in yaml.safe_load_all(installed.helm("get", "hooks", RELEASE, "-n", NAMESPACE).stdout) if d]
    (pod,) = [d for d in hooks if d["kind"] == "Pod"]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    result = installed.helm("test", RELEASE, "-n", NAMESPACE, "--timeout", "5s", check=False)
    assert result.returncode != 0  # nothing runs it
    live = installed.get("pod", pod["metadata"]["name"], "-n", NAMESPACE)
    assert live["spec"]["containers"][0]["args"] == pod["spec"]["containers"][0]["args"]
    installed.ok("get", "configmap", f"{FULLNAME}-smoke-check", "-n", NAMESPACE)
