"""The PodDisruptionBudget of an AgentCluster: a node drain cannot evict every replica at once.

A cluster of 2 or more replicas (`spec.replicas`) has one budget, named after the cluster and
owned by it (the garbage collector deletes it with the cluster), allowing
`spec.disruption.maxUnavailable` replicas (1 by default) to be unavailable at once; below 2
replicas it is deleted (a budget over one replica would block every drain of its node, or
protect nothing). The kube-controller-manager's disruption controller counts the pods: for
`maxUnavailable` it reads the expected count from the AgentCluster's scale subresource.

The budget only limits *evictions* (drains, the descheduler, `kubectl drain`); the operator's
own scale-down and rollouts delete pods directly and are not held by it.

`build` is pure; `ensure` reads the budget from the operator's watch-fed cache (`cache.py`: no
request), and writes only when something changes (or, at most once per reconcile, to make the
disruption controller retry a failed budget).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from agent_api import constants, models
from agent_operator.context import Context

Obj = dict[str, Any]

API_VERSION = "policy/v1"
MIN_REPLICAS = 2
# A crash-looping replica protects nothing; letting a drain evict it (instead of blocking the
# drain until the budget is healthy, the default IfHealthyBudget) is what a platform team wants.
UNHEALTHY_POD_EVICTION_POLICY = "AlwaysAllow"

# Written to ask the disruption controller to compute a budget again (see `sync_failed`).
ANNOTATION_RESYNC = f"{constants.GROUP}/resync-requested"
RESYNC_NUDGE_SECONDS = 10.0
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

EVENT_CREATED = "DisruptionBudgetCreated"
EVENT_DELETED = "DisruptionBudgetDeleted"


class ForeignBudget(Exception):
    """A PodDisruptionBudget of the cluster's name exists and is not the cluster's own."""


def build(cluster: Obj, spec: models.AgentClusterSpec) -> Obj | None:
    """The budget the cluster should have, or None for fewer than MIN_REPLICAS replicas."""
    if spec.replicas < MIN_REPLICAS:
        return None
    meta = cluster["metadata"]
    disruption = spec.disruption or models.Disruption()
    return {
        "apiVersion": API_VERSION,
        "kind": "PodDisruptionBudget",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "labels": {constants.LABEL_CLUSTER: meta["name"],
                       "app.kubernetes.io/managed-by": "agent-clusters"},
            "ownerReferences": [{
                "apiVersion": constants.API_VERSION, "kind": constants.KIND,
                "name": meta["name"], "uid": meta["uid"],
                "controller": True, "blockOwnerDeletion": True,
            }],
        },
        "spec": {
            "maxUnavailable": disruption.max_unavailable,
            # The replica pods' labels, as the scale subresource's selector.
            "selector": {"matchLabels": {constants.LABEL_CLUSTER: meta["name"]}},
            "unhealthyPodEvictionPolicy": UNHEALTHY_POD_EVICTION_POLICY,
        },
    }


def owned_by(budget: Obj, uid: str) -> bool:
    return any(ref.get("controller") and ref.get("uid") == uid
               for ref in budget["metadata"].get("ownerReferences") or [])


async def ensure(ctx: Context, obj: Obj, spec: models.AgentClusterSpec) -> None:
    """Create, update or delete the cluster's budget to match the spec. Raises ForeignBudget
    (leaving it alone) when a budget of that name belongs to someone else."""
    meta = obj["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    want = build(obj, spec)
    have = await ctx.kube.get_budget(namespace, name)
    if have is not None and not owned_by(have, meta["uid"]):
        if want is None:
            return  # not ours, and none wanted: nothing to say
        raise ForeignBudget(
            f"PodDisruptionBudget {namespace}/{name} exists and is not owned by this AgentCluster, "
            "so the operator leaves it alone and this cluster has no budget of its own; "
            "rename or delete that budget")
    if want is None:
        if have is not None:
            await ctx.kube.delete_budget(namespace, name, have["metadata"]["uid"],
                                        have["metadata"].get("resourceVersion"))
            await ctx.kube.create_event(obj, "Normal", EVENT_DELETED,
                                        f"deleted PodDisruptionBudget {name}: fewer than {MIN_REPLICAS} replicas")
        return
    if have is None:
        await ctx.kube.create_budget(namespace, want)
        await ctx.kube.create_event(
            obj, "Normal", EVENT_CREATED,
            f"created PodDisruptionBudget {name}: maxUnavailable {want['spec']['maxUnavailable']}")
        return
    version = have["metadata"]["resourceVersion"]
    if any(have["spec"].get(key) != value for key, value in want["spec"].items()):
        await ctx.kube.patch_budget(namespace, name, {"spec": want["spec"]}, version)
    elif sync_failed(have) and _nudge_due(have):
        # Any update makes the disruption controller look again.
        now = dt.datetime.now(dt.UTC).strftime(TIME_FORMAT)
        await ctx.kube.patch_budget(namespace, name, {"metadata": {"annotations": {ANNOTATION_RESYNC: now}}},
                                    version)


def sync_failed(budget: Obj) -> bool:
    """The disruption controller could not compute the budget (its SyncFailed condition).

    It then allows no disruption (fail-safe) and does not retry until the budget or one of its
    pods changes: a budget created within 30 s of the CRD's installation finds the
    controller-manager's cached discovery without the AgentCluster kind ("no matches for
    kind"), and would block every eviction of a quiet cluster for good.
    """
    status = budget.get("status") or {}
    return any(c.get("type") == "DisruptionAllowed" and c.get("reason") == "SyncFailed"
               for c in status.get("conditions") or [])


def _nudge_due(budget: Obj) -> bool:
    """At most one nudge per RESYNC_NUDGE_SECONDS (the reconcile of a scaling cluster runs every
    2 s; the controller-manager refreshes its discovery every 30 s)."""
    last = (budget["metadata"].get("annotations") or {}).get(ANNOTATION_RESYNC)
    if last is None:
        return True
    try:
        when = dt.datetime.strptime(last, TIME_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        return True
    return (dt.datetime.now(dt.UTC) - when).total_seconds() >= RESYNC_NUDGE_SECONDS
