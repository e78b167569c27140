"""The one reconcile: observe an AgentCluster and its pods, then converge, step by step.

Level-based and idempotent: it reads everything it needs each time (AgentClusters, pods,
budgets and namespace labels from the watch-fed cache, `cache.py`: a settled pass sends no read
request) and treats "already done" as success, so AgentCluster events, pod events, the
periodic resync and a restarted operator all simply call it again. Each step is one line in
`reconcile()`; the order matters:

1. names are chosen and written to `status.members` before any pod exists for them;
2. scaled-down members are marked Terminating in status before their pods are deleted;
3. a member leaves `status.members` only after its pod is gone and its state is archived in
   PostgreSQL; `status.archived` then shows the newest archived members (the full record is in
   PostgreSQL).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import pydantic

from agent_api import constants, models, tiers
from agent_api.db import cluster_store
from agent_operator import (
    credentials,
    deletion,
    disruption,
    kube,
    membership,
    pods,
    quota,
    replica_auth,
    status,
)
from agent_operator.context import Context

log = logging.getLogger(__name__)

Obj = dict[str, Any]

# While something is in motion, look again soon even if no event arrives.
BUSY_REQUEUE_SECONDS = 2.0
# A refused pod stays refused until someone changes the namespace (its Pod Security labels, a
# ResourceQuota, a LimitRange, a webhook), none of which sends the operator an event: look
# again, but not at the busy pace, which would be one refused API call every 2 s.
REFUSED_REQUEUE_SECONDS = 10.0
# Pod creates and deletes in flight at once for one cluster (the StatefulSet controller's
# Parallel policy sends a burst of 30, then 20 a second): a scale-up of 50 is ~4 rounds of API
# latency, not 50 round trips in a row. Half of `kube.API_THREADS`, so one cluster's scale-up
# never leaves the admission webhook's calls or another cluster's waiting for a thread.
POD_CALLS_AT_ONCE = 16


async def reconcile(ctx: Context, namespace: str, name: str) -> float | None:
    """Converge one AgentCluster; returns seconds until it wants another look (None: resync)."""
    obj = await ctx.kube.get_cluster(namespace, name)
    if obj is None:
        # The watch-fed cache says it is gone; archiving is not undone, so ask the API server
        # (one GET per deleted cluster, none per settled pass).
        obj = await ctx.kube.get_cluster(namespace, name, fresh=True)
    if obj is None:
        await deletion.archive_gone(ctx, namespace, name)
        return None
    if obj["metadata"].get("deletionTimestamp"):
        await deletion.finish(ctx, obj)
        return None
    try:
        spec = models.AgentClusterSpec.model_validate(obj.get("spec") or {})
    except pydantic.ValidationError as error:
        await _report_invalid_spec(ctx, obj, _validation_message(error))
        return None
    obj = await deletion.sync_finalizer(ctx, obj, spec)
    credentials_version = await credentials.ensure(ctx, obj)
    await replica_auth.ensure_token(ctx, obj)
    seen = status.Observation(generation=obj["metadata"]["generation"], desired=spec.replicas)

    try:
        tier = ctx.settings.tiers.for_namespace(await ctx.kube.namespace_labels(namespace))
    except tiers.UnknownTierError as error:
        await ctx.kube.create_event(obj, "Warning", "UnknownTier", str(error))
        seen.failing["(namespace)"] = str(error)
        await _write_status(ctx, obj, _status_of(obj), seen, {})
        return None
    # An image the tier does not allow (admitted before the policy, in a namespace that changed
    # tier, or with the webhook off) starts no pod; pods already running are left alone.
    if refused := tiers.image_refusal(tier, spec.image, ctx.settings.image, namespace):
        await _report_invalid_spec(ctx, obj, refused)
        return None
    seen.config_error = await _store_config(ctx, obj)

    obj = await _plan_membership(ctx, obj, spec, tier, seen)
    current = _status_of(obj)
    cluster_pods = {p["metadata"]["name"]: p for p in await ctx.kube.list_pods(namespace, name)}

    current = await _retire_scaled_down(ctx, obj, current, cluster_pods)
    await _ensure_member_pods(ctx, obj, current, cluster_pods, tier, credentials_version, seen)
    await _roll_outdated_pod(ctx, obj, current, cluster_pods, tier, spec, credentials_version, seen)
    await _ensure_disruption_budget(ctx, obj, spec, current, seen)
    final = await _write_status(ctx, obj, current, seen, cluster_pods)

    settled = (
        final.ready_replicas == spec.replicas
        and len(final.members) == spec.replicas
        and not seen.rolling
        and seen.config_error is None
    )
    if seen.refused:
        return REFUSED_REQUEUE_SECONDS
    return None if settled else BUSY_REQUEUE_SECONDS


# --- steps -----------------------------------------------------------------------------------
async def _plan_membership(
    ctx: Context, obj: Obj, spec: models.AgentClusterSpec, tier: tiers.Tier, seen: status.Observation
) -> Obj:
    """Allocate names for scale-up and pick scale-down victims; record both in status first."""
    meta = obj["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    # Names and slots are namespace-wide: one allocation at a time per namespace.
    async with ctx.namespace_locks[namespace]:
        current = _status_of(obj)
        others = [c for c in await ctx.kube.list_clusters(namespace) if c["metadata"]["name"] != name]
        alive = len(membership.live(current.members))
        target, seen.quota_message = quota.target(
            tier, quota.claimed_by(others), spec.replicas, alive, namespace
        )
        added = []
        if target > alive:  # names are only looked up when some are needed
            # PostgreSQL holds every name the namespace ever had (statuses keep only the newest
            # archived members); the statuses add this cluster's own live members.
            taken = membership.member_names([*others, obj]) | await cluster_store.names_taken(ctx.db, namespace, name)
            current.next_ordinal = await cluster_store.next_ordinal(ctx.db, namespace, name, current.next_ordinal)
            added = membership.scale_up(name, current, target, taken)
        victims = membership.scale_down(current.members, target)
        if not added and not victims:
            if seen.quota_message:
                await _warn_quota_once(ctx, obj, current, seen.quota_message)
            return obj
        # One statement for the whole batch (50 new members: one round trip, not 50), all or
        # none; a name another allocation registered meanwhile refuses the batch (NamesTaken)
        # and the retried pass allocates around it.
        await cluster_store.register_members(ctx.db, namespace, name, [(m.name, m.ordinal) for m in added])
        leaving = {m.name for m in victims}
        current.members = [
            m.model_copy(update={"phase": membership.TERMINATING, "ready": False}) if m.name in leaving else m
            for m in current.members
        ] + added
        current.next_ordinal += len(added)
        obj = await ctx.kube.patch_cluster_status(namespace, name, status.dump(current),
                                                  meta["resourceVersion"])
    if added:
        await ctx.kube.create_event(
            obj, "Normal", constants.EVENT_SCALED_UP,
            f"scaling {alive} -> {alive + len(added)} replicas: added "
            + ", ".join(m.name for m in added),
        )
    if victims:
        await ctx.kube.create_event(
            obj, "Normal", constants.EVENT_SCALED_DOWN,
            f"scaling {alive} -> {alive - len(victims)} replicas: stopping "
            + ", ".join(m.name for m in victims) + " (newest first)",
        )
    if seen.quota_message:
        await ctx.kube.create_event(obj, "Warning", constants.EVENT_QUOTA_EXCEEDED, seen.quota_message)
    return obj


async def _retire_scaled_down(
    ctx: Context, obj: Obj, current: models.AgentClusterStatus, cluster_pods: dict[str, Obj]
) -> models.AgentClusterStatus:
    """Stop the pods of Terminating members; archive those whose pods are gone."""
    meta = obj["metadata"]
    gone: set[str] = set()
    stopping = []
    for member in current.members:
        if member.phase != membership.TERMINATING:
            continue
        pod = cluster_pods.get(member.pod)
        if pod is None:
            gone.add(member.name)
        elif not pod["metadata"].get("deletionTimestamp"):
            stopping.append(functools.partial(ctx.kube.delete_pod, meta["namespace"], member.pod,
                                              pod["metadata"]["uid"]))
    await _concurrently(stopping)
    if not gone:
        return current
    # Every member whose pod is gone, in one transaction (not one per member); they leave
    # status only after it commits.
    await cluster_store.archive_members(ctx.db, meta["namespace"], meta["name"], sorted(gone))
    current.members = [m for m in current.members if m.name not in gone]
    # Status keeps the newest few and the count; PostgreSQL, just written, has them all.
    newest, current.archived_count = await cluster_store.newest_archived(
        ctx.db, meta["namespace"], meta["name"], models.ARCHIVED_IN_STATUS)
    current.archived = [models.ArchivedMember(name=a.replica, ordinal=a.ordinal, archived_at=a.archived_at)
                        for a in newest]
    await ctx.kube.create_event(
        obj, "Normal", "ReplicaArchived",
        "archived " + ", ".join(sorted(gone)) + ": state kept read-only in PostgreSQL",
    )
    return current


async def _ensure_member_pods(
    ctx: Context, obj: Obj, current: models.AgentClusterStatus, cluster_pods: dict[str, Obj],
    tier: tiers.Tier, credentials_version: str, seen: status.Observation,
) -> None:
    """One pod per live member; a lost or failed pod comes back under the same name. Missing
    pods are created concurrently (a scale-up of 50 is 50 creates, not 50 round trips in a
    row; the StatefulSet controller's Parallel policy does the same)."""
    namespace = obj["metadata"]["namespace"]
    missing = []
    for member in membership.live(current.members):
        pod = cluster_pods.get(member.pod)
        if pod is not None and (pod.get("status") or {}).get("phase") == "Failed":
            if not pod["metadata"].get("deletionTimestamp"):
                await ctx.kube.delete_pod(namespace, member.pod, pod["metadata"]["uid"])
            seen.failing[member.name] = status.failure_of(pod) or "pod failed"
        elif pod is None:
            missing.append(member)
        elif why := status.failure_of(pod):
            seen.failing[member.name] = why

    async def create(member: models.Member) -> None:
        try:
            created = await ctx.kube.create_pod(
                namespace, pods.build(obj, member, tier, ctx.settings, credentials_version))
        except kube.Refused as refused:
            seen.refused[member.name] = str(refused)
            await _warn_refused_once(ctx, obj, current, member.name, str(refused))
            return
        if created and member.phase != membership.ALLOCATED:
            await ctx.kube.create_event(
                obj, "Normal", constants.EVENT_REPLICA_RECREATED,
                f"pod {member.pod} of replica {member.name} was gone; recreated it with the same identity",
            )

    await _concurrently(functools.partial(create, member) for member in missing)


async def _roll_outdated_pod(
    ctx: Context, obj: Obj, current: models.AgentClusterStatus, cluster_pods: dict[str, Obj],
    tier: tiers.Tier, spec: models.AgentClusterSpec, credentials_version: str,
    seen: status.Observation,
) -> None:
    """Image, resource, Secret-reference or credentials changes: replace one outdated pod at a
    time, only when all are Ready."""
    want = pods.template_hash(spec.image or ctx.settings.image, tier, ctx.settings, spec,
                              credentials_version)
    alive = membership.live(current.members)
    outdated = []
    for member in sorted(alive, key=lambda m: -m.ordinal):
        pod = cluster_pods.get(member.pod)
        if pod is not None and pod["metadata"].get("annotations", {}).get(
            constants.ANNOTATION_POD_TEMPLATE_HASH
        ) != want:
            outdated.append((member, pod))
    seen.rolling = [m.name for m, _ in outdated]
    if not outdated:
        return
    all_ready = all(
        (p := cluster_pods.get(m.pod)) is not None
        and not p["metadata"].get("deletionTimestamp")
        and status.member_from_pod(m, p).ready
        for m in alive
    )
    if not all_ready or len(alive) != len(current.members):
        return
    member, pod = outdated[0]
    await ctx.kube.delete_pod(obj["metadata"]["namespace"], member.pod, pod["metadata"]["uid"])
    await ctx.kube.create_event(
        obj, "Normal", "RollingUpdate",
        f"replacing the pod of {member.name} (image, resources or credentials changed); "
        f"{len(outdated) - 1} more after it is Ready",
    )


async def _ensure_disruption_budget(
    ctx: Context, obj: Obj, spec: models.AgentClusterSpec, current: models.AgentClusterStatus,
    seen: status.Observation,
) -> None:
    """2+ replicas: a PodDisruptionBudget owned by the cluster; fewer: none."""
    try:
        await disruption.ensure(ctx, obj, spec)
    except disruption.ForeignBudget as error:
        seen.budget_error = str(error)
        before = next((c for c in current.conditions if c.type == constants.CONDITION_DEGRADED), None)
        if before is None or before.message != seen.budget_error:
            await ctx.kube.create_event(obj, "Warning", status.BUDGET_CONFLICT, seen.budget_error)


async def _write_status(
    ctx: Context, obj: Obj, current: models.AgentClusterStatus, seen: status.Observation,
    cluster_pods: dict[str, Obj],
) -> models.AgentClusterStatus:
    meta = obj["metadata"]
    members = [status.member_from_pod(m, cluster_pods.get(m.pod)) for m in current.members]
    alive = membership.live(members)
    final = current.model_copy(update={
        "members": members,
        "replicas": len(alive),
        "ready_replicas": sum(1 for m in alive if m.ready),
        "selector": status.selector(meta["name"]),
        "observed_generation": seen.generation,
        "conditions": status.conditions(current.conditions, members, seen, dt.datetime.now(dt.UTC)),
    })
    if status.dump(final) != (obj.get("status") or {}):
        await ctx.kube.patch_cluster_status(meta["namespace"], meta["name"], status.dump(final),
                                            meta["resourceVersion"])
    return final


# --- helpers ---------------------------------------------------------------------------------
async def _concurrently(calls: Iterable[Callable[[], Awaitable[object]]]) -> None:
    """Run pod creates or deletes POD_CALLS_AT_ONCE at a time; the first error cancels the rest
    (the next pass does what is left: each call is idempotent). Each call's coroutine is made
    only once it may run, so a call cancelled before its turn leaves no coroutine behind."""
    limit = asyncio.Semaphore(POD_CALLS_AT_ONCE)

    async def bounded(call: Callable[[], Awaitable[object]]) -> None:
        async with limit:
            await call()

    async with asyncio.TaskGroup() as group:
        for call in calls:
            group.create_task(bounded(call))


def _status_of(obj: Obj) -> models.AgentClusterStatus:
    return models.AgentClusterStatus.model_validate(obj.get("status") or {})


async def _store_config(ctx: Context, obj: Obj) -> str | None:
    """Hand the spec to the runtimes (PostgreSQL); they apply it without a restart."""
    meta = obj["metadata"]
    key = (meta["namespace"], meta["name"])
    if ctx.stored_generation.get(key) == meta["generation"]:
        return None
    try:
        await cluster_store.write_config(ctx.db, *key, meta["generation"], obj.get("spec") or {})
    except OSError as error:
        return f"could not store the configuration in PostgreSQL: {error}"
    ctx.stored_generation[key] = meta["generation"]
    return None


async def _warn_quota_once(ctx: Context, obj: Obj, current: models.AgentClusterStatus, message: str) -> None:
    """One QuotaExceeded event per change of the message, not one per resync."""
    before = next((c for c in current.conditions if c.type == constants.CONDITION_QUOTA_EXCEEDED), None)
    if before is None or before.status != "True" or before.message != message:
        await ctx.kube.create_event(obj, "Warning", constants.EVENT_QUOTA_EXCEEDED, message)


async def _warn_refused_once(ctx: Context, obj: Obj, current: models.AgentClusterStatus,
                             member: str, why: str) -> None:
    """One PodCreateRefused event per refusal the Degraded condition does not show yet, not
    one per retry."""
    message = status.refused_message(member, why)
    before = next((c for c in current.conditions if c.type == constants.CONDITION_DEGRADED), None)
    if before is None or message not in (before.message or ""):
        await ctx.kube.create_event(obj, "Warning", constants.EVENT_POD_CREATE_REFUSED, message)


def _validation_message(error: pydantic.ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())


async def _report_invalid_spec(ctx: Context, obj: Obj, message: str) -> None:
    """A spec the API server let through but the operator refuses (the models reject it, e.g.
    a CRD older than the operator; or the tier does not allow its image): say so on the object
    and do nothing else."""
    message = message[:2000]
    meta = obj["metadata"]
    current = _status_of(obj)
    seen = status.Observation(generation=meta["generation"], desired=len(membership.live(current.members)))
    seen.config_error = f"spec rejected: {message}"
    # One event per change of the message, not one per resync: such an object may stay refused
    # for a long time (an image policy tightened under running clusters).
    before = next((c for c in current.conditions if c.type == constants.CONDITION_DEGRADED), None)
    if before is None or before.message != seen.config_error:
        await ctx.kube.create_event(obj, "Warning", "InvalidSpec", message)
    await _write_status(ctx, obj, current, seen, {})
