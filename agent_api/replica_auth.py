"""The credential a replica's HTTP endpoints demand: one token per AgentCluster.

Why: a replica listens on its pod IP, which any pod in the cluster can reach (NetworkPolicies
help only where the CNI enforces them). `/run`, `/chat`, `/metrics` and `/hooks` answer only a
caller that presents `Authorization: Bearer <token>`, and only the gateway and the cluster's
own pods know the token.

The token is HMAC-SHA256(master key, "<namespace>/<cluster>") in hex. The master key is a
setting shared by the operator and the gateway (`AGENTCLUSTERS_REPLICA_AUTH_KEY`; the Helm
chart generates it once). So:

- the gateway computes any cluster's token itself and reads no Secret;
- the operator writes each cluster's token into the namespace's Secret `SECRET_NAME`, under
  the cluster's name as the key, which the cluster's pods read as `AGENT_REPLICA_TOKEN`
  (`secretKeyRef`). One Secret of a fixed name per namespace, like the runtime Secret, so the
  operator's RBAC can name it (`resourceNames`) and it reads no other Secret;
- knowing one cluster's token tells nothing about another's (HMAC is a PRF), so a tenant who
  can read its own namespace's Secrets still cannot call another namespace's replicas.

Rotating the master key changes every token; the operator rewrites the Secrets and the pods
roll (the key's fingerprint is part of the pod template hash).
"""

from __future__ import annotations

import hashlib
import hmac

MASTER_KEY_ENV = "AGENTCLUSTERS_REPLICA_AUTH_KEY"
TOKEN_ENV = "AGENT_REPLICA_TOKEN"
SECRET_NAME = "agentclusters-replica-tokens"
"""The Secret in each namespace with AgentClusters: one key per cluster (its name), the token."""
MIN_MASTER_KEY_LENGTH = 32


class MissingMasterKey(ValueError):
    """The master key is not set or too short; the message says how to set it."""


def token(master_key: bytes, namespace: str, cluster: str) -> str:
    """The bearer token of the replicas of `namespace`/`cluster`."""
    return hmac.new(master_key, f"{namespace}/{cluster}".encode(), hashlib.sha256).hexdigest()


def fingerprint(master_key: bytes) -> str:
    """A short, non-secret name for the master key (changes when the key does)."""
    return hashlib.sha256(b"agentclusters-replica-auth-fingerprint:" + master_key).hexdigest()[:12]


def master_key(value: str | None, *, who: str) -> bytes:
    """The master key (`AGENTCLUSTERS_REPLICA_AUTH_KEY`), or MissingMasterKey explaining how to
    set one."""
    value = value or ""
    if len(value) < MIN_MASTER_KEY_LENGTH:
        problem = "is not set" if not value else f"is {len(value)} characters long"
        raise MissingMasterKey(
            f"{who}: {MASTER_KEY_ENV} {problem}; it must hold at least {MIN_MASTER_KEY_LENGTH} random "
            "characters, the same for the operator and the gateway (each agent's replica "
            "credential is derived from it). The Helm chart generates one into the Secret "
            "<release>-replica-auth; by hand: export "
            f"{MASTER_KEY_ENV}=$(openssl rand -hex 32)")
    return value.encode()
