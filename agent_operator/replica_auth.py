"""Each AgentCluster's replica token, in its namespace's token Secret.

The replicas read it as `AGENT_REPLICA_TOKEN` (pods.py: `secretKeyRef` to the Secret
`agentclusters-replica-tokens`, key = the cluster's name) and demand it from every caller of
`/run`, `/chat`, `/metrics` and `/hooks`; the gateway derives the same token from the master
key (agent_api.replica_auth) and reads no Secret.

One Secret of a fixed name per namespace, not one per cluster: the operator's RBAC can then
name it (`resourceNames`), as it names the runtime Secret, and the operator can read no other
Secret. A cluster's key is checked at most once per resync interval and rewritten when it is
missing, was edited, or the master key was rotated (the pods roll then: the key's fingerprint
is in their template hash). A deleted cluster's key stays: it is the token a cluster of that
name would get again, and no replica answers with it.
"""

from __future__ import annotations

import base64
import math
import time
from typing import Any

from agent_api import replica_auth
from agent_operator.context import Context

EVENT_REWRITTEN = "ReplicaTokenRewritten"


async def ensure_token(ctx: Context, obj: dict[str, Any]) -> None:
    """The namespace's token Secret holds this cluster's current token."""
    meta = obj["metadata"]
    namespace, cluster = meta["namespace"], meta["name"]
    checked = (namespace, cluster, meta["uid"])
    now = time.monotonic()
    if now - ctx.replica_secrets_checked.get(checked, -math.inf) < ctx.settings.resync_seconds:
        return
    want = replica_auth.token(ctx.settings.replica_auth_key.encode(), namespace, cluster)
    current = await ctx.kube.read_secret(namespace, replica_auth.SECRET_NAME)
    stored = ((current or {}).get("data") or {}).get(cluster)
    if stored is None or base64.b64decode(stored).decode() != want:
        # Only this cluster's key is written (the others stay), with the resourceVersion it
        # was read at: two clusters of the namespace reconciled at once conflict, and the
        # loser is simply reconciled again.
        version = None if current is None else current["metadata"]["resourceVersion"]
        await ctx.kube.write_secret(namespace, replica_auth.SECRET_NAME, {cluster: want}, {}, version)
        if stored is not None:
            await ctx.kube.create_event(
                obj, "Normal", EVENT_REWRITTEN,
                f"Secret {replica_auth.SECRET_NAME} held another token under key {cluster!r} (edited, or the "
                "operator's key was rotated); rewrote it")
    ctx.replica_secrets_checked[checked] = now
