"""The Pod of one member: a pure function of the AgentCluster, the member and the settings.

No API calls here (unit-tested on its own). A hash of the pod-shaping inputs goes into an
annotation, so the reconcile can tell which pods a spec change requires it to roll.

Every pod passes Pod Security `restricted` (a namespace may enforce it): RuntimeDefault
seccomp and a non-root user for the pod, no privilege escalation and no capabilities for the
container, and a read-only root filesystem with a small writable `/tmp`. None of these is in
the template hash: an operator upgrade that adds one does not restart running replicas, the
pods it creates from then on carry it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from agent_api import constants, models, replica_auth, secret_env, tiers
from agent_operator.settings import OperatorSettings

RUNTIME_CONTAINER = "runtime"
TMP_VOLUME = "tmp"
# Python and the libraries the runtime loads may write temporary files; the root filesystem is
# read-only. Counted against the node's ephemeral storage; a pod that exceeds it is evicted.
TMP_SIZE_LIMIT = "64Mi"


def template_hash(image: str, tier: tiers.Tier, settings: OperatorSettings,
                  spec: models.AgentClusterSpec | None = None,
                  credentials_version: str = "") -> str:
    """Changes to any of these need a new process; everything else is hot-reloaded.

    The Secret references of the spec shape the pod's environment, so they are in; the
    Secrets' values are not (a rotated value needs a restart the user asks for, like any
    Kubernetes Deployment). The runtime Secret is the operator's own: its credentials version
    (an opaque token that changes with them, never derived from them) is in, so issuing new
    credentials rolls the pods. `imagePullSecrets` are not in: a running pod has its image
    already, and the pods created from then on (a lost pod, a rollout) carry the new list.
    """
    shaping = [image, tier.cpu, tier.memory, settings.runtime_command, settings.runtime_port,
               settings.runtime_secret_name, settings.termination_grace_period_seconds,
               # A rotated master key means new replica tokens: the pods must read theirs again.
               replica_auth.fingerprint(settings.replica_auth_key.encode())]
    if settings.runtime_database_pooling != "session":
        shaping.append({"pooling": settings.runtime_database_pooling})
    if credentials_version:
        shaping.append({"credentials": credentials_version})
    if spec is not None:
        refs = secret_env_vars(spec)
        if refs["env"] or refs["envFrom"]:
            shaping.append(refs)
    return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]


def secret_env_vars(spec: models.AgentClusterSpec) -> dict[str, list[dict[str, Any]]]:
    """The env and envFrom entries that hand the spec's Secrets to the runtime
    (names in agent_api.secret_env). Values never pass through the spec or PostgreSQL."""
    env: list[dict[str, Any]] = []
    env_from: list[dict[str, Any]] = []

    def key_ref(ref: models.SecretKeyRef) -> dict[str, Any]:
        return {"secretKeyRef": {"name": ref.name, "key": ref.key}}

    if spec.ai is not None and spec.ai.api_key_secret_ref is not None:
        env.append({"name": secret_env.AI_API_KEY, "valueFrom": key_ref(spec.ai.api_key_secret_ref)})
    for channel in spec.channels:
        env.append({"name": secret_env.channel_url(channel.name),
                    "valueFrom": key_ref(channel.url_secret_ref)})
    for server in spec.mcp_servers:
        if server.headers_secret_ref is not None:
            # Every key of the Secret becomes one header, named after the key.
            env_from.append({"prefix": secret_env.mcp_header_prefix(server.name),
                             "secretRef": {"name": server.headers_secret_ref.name}})
    for function in spec.functions:
        if function.http is not None:
            for header in function.http.headers:
                env.append({"name": secret_env.http_header(function.name, header.name),
                            "valueFrom": key_ref(header.secret_key_ref)})
    for webhook in spec.webhooks:
        # The replica verifies the deliveries' signatures itself; the gateway holds no secret.
        env.append({"name": secret_env.webhook_secret(webhook.name), "valueFrom": key_ref(webhook.secret_ref)})
    return {"env": env, "envFrom": env_from}


def build(
    cluster: dict[str, Any], member: models.Member, tier: tiers.Tier, settings: OperatorSettings,
    credentials_version: str = "",
) -> dict[str, Any]:
    meta = cluster["metadata"]
    spec = models.AgentClusterSpec.model_validate(cluster.get("spec") or {})
    image = spec.image or settings.image
    resources = {"cpu": tier.cpu, "memory": tier.memory}
    secret = settings.runtime_secret_name
    secret_env_entries = secret_env_vars(spec)

    def from_secret(key: str) -> dict[str, Any]:
        return {"secretKeyRef": {"name": secret, "key": key}}

    def field(path: str) -> dict[str, Any]:
        return {"fieldRef": {"fieldPath": path}}

    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": member.pod,
            "namespace": meta["namespace"],
            "labels": {
                constants.LABEL_CLUSTER: meta["name"],
                constants.LABEL_REPLICA: member.name,
                constants.LABEL_ORDINAL: str(member.ordinal),
                "app.kubernetes.io/name": "agent-clusters",
                "app.kubernetes.io/component": "agent-replica",
                "app.kubernetes.io/managed-by": "agent-clusters",
            },
            "annotations": {
                constants.ANNOTATION_POD_TEMPLATE_HASH: template_hash(image, tier, settings, spec,
                                                                      credentials_version),
                constants.ANNOTATION_SPEC_GENERATION: str(meta.get("generation", 0)),
            },
            "ownerReferences": [{
                "apiVersion": constants.API_VERSION, "kind": constants.KIND,
                "name": meta["name"], "uid": meta["uid"],
                "controller": True, "blockOwnerDeletion": True,
            }],
        },
        "spec": {
            # Agent replicas never talk to the Kubernetes API.
            "automountServiceAccountToken": False,
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": settings.termination_grace_period_seconds,
            "enableServiceLinks": False,
            "securityContext": {
                # The image's user must be numeric and not 0 (the project's image: 10001).
                "runAsNonRoot": True,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            **({"imagePullSecrets": [{"name": s.name} for s in spec.image_pull_secrets]}
               if spec.image_pull_secrets else {}),
            "volumes": [{"name": TMP_VOLUME, "emptyDir": {"sizeLimit": TMP_SIZE_LIMIT}}],
            "containers": [{
                "name": RUNTIME_CONTAINER,
                "image": image,
                "command": list(settings.runtime_command),
                "env": [
                    {"name": "AGENT_NAMESPACE", "valueFrom": field("metadata.namespace")},
                    {"name": "AGENT_CLUSTER", "value": meta["name"]},
                    {"name": "AGENT_REPLICA", "value": member.name},
                    {"name": "AGENT_ORDINAL", "value": str(member.ordinal)},
                    {"name": "POD_IP", "valueFrom": field("status.podIP")},
                    {"name": "AGENT_HTTP_PORT", "value": str(settings.runtime_port)},
                    {"name": "AGENT_SHUTDOWN_GRACE_SECONDS",
                     "value": str(max(1, settings.termination_grace_period_seconds - 5))},
                    {"name": "DATABASE_URL", "valueFrom": from_secret("DATABASE_URL")},
                    {"name": "AGENT_DATABASE_POOLING", "value": settings.runtime_database_pooling},
                    {"name": "REDIS_URL", "valueFrom": from_secret("REDIS_URL")},
                    {"name": secret_env.REPLICA_TOKEN, "valueFrom": {"secretKeyRef": {
                        "name": replica_auth.SECRET_NAME, "key": meta["name"]}}},
                    *secret_env_entries["env"],
                ],
                **({"envFrom": secret_env_entries["envFrom"]} if secret_env_entries["envFrom"] else {}),
                "ports": [{"name": "http", "containerPort": settings.runtime_port}],
                "resources": {"requests": resources, "limits": resources},
                "readinessProbe": {
                    "httpGet": {"path": "/readyz", "port": "http"},
                    "periodSeconds": 2, "failureThreshold": 3,
                },
                "livenessProbe": {
                    "httpGet": {"path": "/healthz", "port": "http"},
                    "initialDelaySeconds": 10, "periodSeconds": 10, "failureThreshold": 6,
                },
                "securityContext": {
                    "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                    "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": [{"name": TMP_VOLUME, "mountPath": "/tmp"}],
            }],
        },
    }
