"""`statePolicy.whenDeleted`: what happens to a cluster's stored state when it is deleted.

`Retain` (default) needs no finalizer, so deleting an AgentCluster never waits for the
operator: pods go through their ownerReferences and the state stays in PostgreSQL. `Delete`
puts the `agentclusters.io/state-policy` finalizer on the object; the operator removes the
state and then the finalizer. With the operator down, remove the finalizer by hand
(docs/operations.md) and the deletion completes with the state retained.
"""

from __future__ import annotations

import logging
from typing import Any

from agent_api import constants, models
from agent_api.db import cluster_store
from agent_operator.context import Context

log = logging.getLogger(__name__)


async def sync_finalizer(ctx: Context, obj: dict[str, Any], spec: models.AgentClusterSpec) -> dict[str, Any]:
    """Have the finalizer exactly when the policy is Delete; returns the object as updated."""
    meta = obj["metadata"]
    finalizers = list(meta.get("finalizers") or [])
    want = spec.state_policy.when_deleted == "Delete"
    if want == (constants.FINALIZER in finalizers):
        return obj
    if want:
        finalizers.append(constants.FINALIZER)
    else:
        finalizers.remove(constants.FINALIZER)
    updated = await ctx.kube.patch_cluster_finalizers(
        meta["namespace"], meta["name"], finalizers, meta["resourceVersion"]
    )
    return updated or obj


async def finish(ctx: Context, obj: dict[str, Any]) -> None:
    """The object is being deleted: apply the policy, then let it go."""
    meta = obj["metadata"]
    finalizers = list(meta.get("finalizers") or [])
    if constants.FINALIZER not in finalizers:
        return
    await cluster_store.delete_cluster_data(ctx.db, meta["namespace"], meta["name"])
    await ctx.kube.create_event(obj, "Normal", "StateDeleted",
                                "statePolicy.whenDeleted=Delete: stored state and history removed")
    finalizers.remove(constants.FINALIZER)
    await ctx.kube.patch_cluster_finalizers(meta["namespace"], meta["name"], finalizers, meta["resourceVersion"])


async def archive_gone(ctx: Context, namespace: str, name: str) -> None:
    """The AgentCluster no longer exists: its members' state is kept, read-only, as archived.

    Level-based: runs whenever a key is reconciled and the object is gone (its DELETED event,
    or the resync finding live members of a cluster deleted while the operator was down).
    With statePolicy Delete the finalizer removed the rows already, so nothing is left here."""
    archived = await cluster_store.archive_cluster(ctx.db, namespace, name)
    if archived:
        log.info("archived %s of deleted cluster %s/%s", ", ".join(archived), namespace, name)
