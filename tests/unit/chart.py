"""Rendering the Helm chart in tests: `helm template` with the project's helm binary.

Shared by tests/unit/test_chart_values.py and tests/e2e/test_helm_chart.py.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "agent-clusters"
CRD_FILE = "agentclusters.agentclusters.io.yaml"

# Alternative values: existing Secrets for PostgreSQL and Redis, cert-manager for the webhook.
ALTERNATIVE = {
    "database.existingSecret": "pg-credentials",
    "database.existingSecretKey": "uri",
    "redis.existingSecret": "redis-credentials",
    "webhook.certManager.enabled": "true",
}
# URLs given as values (rendered into the release's own Secret).
URLS = {
    "database.url": "postgresql://agents:secret@postgres:5432/agents",
    "redis.url": "redis://redis:6379/0",
}


@functools.cache
def helm_binary() -> Path:
    from devcluster import binaries

    return binaries.ensure() / "helm"


def helm(*args: str, kubeconfig: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    command = [str(helm_binary()), *args]
    if args and args[0] == "template" and "--kube-version" not in args:
        from devcluster import binaries

        # Without a cluster, helm checks Chart.yaml's kubeVersion against the version compiled
        # into it, which the devcluster's build of helm leaves at helm's v1.20 default.
        command += ["--kube-version", binaries.K8S_VERSION]
    if kubeconfig is not None:
        command += ["--kubeconfig", str(kubeconfig)]
    result = subprocess.run(command, text=True, capture_output=True, timeout=120)
    if check:
        assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout}\n{result.stderr}"
    return result


def set_args(values: dict[str, str]) -> list[str]:
    return [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]


def template_text(values: dict[str, str] | None = None, *, release: str = "ac",
                  namespace: str = "agent-clusters", extra: tuple[str, ...] = ()) -> str:
    return helm("template", release, str(CHART), "--namespace", namespace,
                *set_args(values or {}), *extra).stdout


def render(values: dict[str, str] | None = None, *, release: str = "ac",
           namespace: str = "agent-clusters", extra: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The rendered manifests, the CRD (templates/crd.yaml) included; `extra`: more helm
    arguments (e.g. --values FILE)."""
    text = template_text(values, release=release, namespace=namespace, extra=extra)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {[d['metadata']['name'] for d in found]}"
    return found[0]


def rules(cluster_role: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    """A ClusterRole's grants as (apiGroup, resource, resourceName or '*', verb) tuples."""
    return {
        (group, resource, name, verb)
        for rule in cluster_role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for name in rule.get("resourceNames") or ["*"]
        for verb in rule["verbs"]
    }


def expected_namespaced_rules(runtime_secret: str = "agentclusters-runtime") -> set[tuple[str, str, str, str]]:
    """Everything the operator does inside a namespace (agent_operator/kube.py plus kopf)."""
    return {
        # kopf watches AgentClusters; reconcile gets and lists them, patches finalizers.
        *{("agentclusters.io", "agentclusters", "*", verb) for verb in ("get", "list", "watch", "patch")},
        ("agentclusters.io", "agentclusters/status", "*", "patch"),
        # blockOwnerDeletion on the replica pods' ownerReference.
        ("agentclusters.io", "agentclusters/finalizers", "*", "update"),
        *{("", "pods", "*", verb) for verb in ("list", "watch", "create", "delete")},
        ("", "secrets", "*", "create"),
        ("", "secrets", runtime_secret, "get"),
        ("", "secrets", runtime_secret, "patch"),
        # Each namespace's replica token Secret (agent_api/replica_auth.py), by name only.
        ("", "secrets", "agentclusters-replica-tokens", "get"),
        ("", "secrets", "agentclusters-replica-tokens", "patch"),
        ("", "events", "*", "create"),
        # Each AgentCluster's PodDisruptionBudget (agent_operator/disruption.py), read from kopf's
        # watch (agent_operator/cache.py).
        *{("policy", "poddisruptionbudgets", "*", verb) for verb in ("list", "watch", "create", "patch", "delete")},
    }


def expected_cluster_rules(webhook_configuration: str | None) -> set[tuple[str, str, str, str]]:
    """The cluster-scoped part: namespace labels, kopf's CRD scanning, the webhook configuration."""
    expected = {
        # Tier labels, read from kopf's watch (agent_operator/cache.py); admission gets one.
        ("", "namespaces", "*", "get"), ("", "namespaces", "*", "list"), ("", "namespaces", "*", "watch"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "*", "list"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "*", "watch"),
    }
    if webhook_configuration is not None:
        expected |= {
            ("admissionregistration.k8s.io", "validatingwebhookconfigurations", "*", "create"),
            ("admissionregistration.k8s.io", "validatingwebhookconfigurations", webhook_configuration, "patch"),
            # The webhook asks whether the requesting user may get each Secret a spec newly references.
            ("authorization.k8s.io", "subjectaccessreviews", "*", "create"),
        }
    return expected


def expected_leader_election_rules(lease: str = "agentclusters-operator") -> set[tuple[str, str, str, str]]:
    """The operator's Role in its own namespace: its Lease (agent_operator/leadership.py)."""
    return {
        ("coordination.k8s.io", "leases", "*", "create"),
        ("coordination.k8s.io", "leases", lease, "get"),
        ("coordination.k8s.io", "leases", lease, "update"),
    }


def expected_gateway_rules() -> set[tuple[str, str, str, str]]:
    """What the gateway does inside a namespace (agent_gateway/kube.py)."""
    return {
        # The AgentCluster cache lists and watches; tools get (after a conflict), create, patch, delete.
        *{("agentclusters.io", "agentclusters", "*", verb)
          for verb in ("get", "list", "watch", "create", "patch", "delete")},
        # scale_agent.
        ("agentclusters.io", "agentclusters/scale", "*", "patch"),
        # No Secrets: a referenced Secret is authorized for the caller (SubjectAccessReview), never read.
        # Routing checks a replica's address in Redis against its pod, from a watch of the replica pods.
        *{("", "pods", "*", verb) for verb in ("get", "list", "watch")},
    }


def expected_gateway_auth_rules() -> set[tuple[str, str, str, str]]:
    """The gateway's cluster-scoped part: authenticate callers, check their RBAC."""
    return {
        ("authentication.k8s.io", "tokenreviews", "*", "create"),
        ("authorization.k8s.io", "subjectaccessreviews", "*", "create"),
    }
