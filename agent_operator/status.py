"""The AgentCluster's status: member phases from their pods, counts and conditions.

Computed in one place from what the reconcile observed; written with a resourceVersion
precondition (see `kube.Kube.patch_cluster_status`) so two writers never silently overwrite
each other.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from agent_api import constants, models
from agent_operator import membership

# Degraded reason (and Warning event) when a PodDisruptionBudget of the cluster's name is not
# the cluster's own (agent_operator.disruption).
BUDGET_CONFLICT = "DisruptionBudgetConflict"

# Member phase while a live member's pod is being deleted; a new pod under the same name follows.
REPLACING = "Replacing"


@dataclass
class Observation:
    """What one reconcile pass saw and decided, the input to the conditions."""

    generation: int
    desired: int
    quota_message: str | None = None
    rolling: list[str] = field(default_factory=list)
    failing: dict[str, str] = field(default_factory=dict)  # member -> why
    refused: dict[str, str] = field(default_factory=dict)  # member -> the API server's refusal
    config_error: str | None = None
    budget_error: str | None = None


def member_from_pod(member: models.Member, pod: dict[str, Any] | None) -> models.Member:
    """The member as its pod shows it now (phase and readiness)."""
    if member.phase == membership.TERMINATING:
        return member.model_copy(update={"ready": False})
    if pod is None:
        return member
    status = pod.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions") or [])
    # Not membership.TERMINATING: that phase marks a member chosen for scale-down, and a live
    # member whose pod is being deleted (by a user, an eviction or a rollout) keeps its identity.
    phase = REPLACING if pod["metadata"].get("deletionTimestamp") else status.get("phase", "Pending")
    return member.model_copy(update={"phase": phase, "ready": ready})


def failure_of(pod: dict[str, Any] | None) -> str | None:
    """Why a member's pod is failing, in words a user can act on, or None."""
    if pod is None:
        return None
    status = pod.get("status") or {}
    if status.get("phase") == "Failed":
        return f"pod failed: {status.get('reason') or ''} {status.get('message') or ''}".strip()
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in {"CrashLoopBackOff", "RunContainerError", "CreateContainerError",
                                     "CreateContainerConfigError",
                                     "ErrImagePull", "ImagePullBackOff"}:
            return f"{waiting['reason']}: {waiting.get('message', '')}".strip(": ")
    return None


def conditions(
    previous: list[models.Condition], members: list[models.Member], seen: Observation, now: dt.datetime
) -> list[models.Condition]:
    alive = membership.live(members)
    ready = sum(1 for m in alive if m.ready)
    terminating = [m.name for m in members if m.phase == membership.TERMINATING]
    allocated = len(alive)
    want = seen.desired

    if seen.quota_message:
        quota = ("True", "SlotsExhausted", seen.quota_message)
    else:
        quota = ("False", "WithinQuota", "the namespace has room for every requested replica")

    if terminating:
        progressing = ("True", "ScalingDown", f"stopping {', '.join(sorted(terminating))}")
    elif allocated < want:
        progressing = ("True", "ScalingUp", f"{allocated}/{want} replicas allocated")
    elif seen.rolling:
        progressing = ("True", "RollingUpdate", f"replacing {', '.join(seen.rolling)} one at a time")
    elif ready < allocated:
        progressing = ("True", "WaitingForReady", f"{ready}/{allocated} replicas ready")
    else:
        progressing = ("False", "Reconciled", f"{allocated} replicas, all ready")

    if seen.refused:
        # First: no pod exists for these members, and only a change of the namespace (its
        # labels, quota, limits or webhooks) or of the spec can change that.
        details = "; ".join(refused_message(name, why) for name, why in sorted(seen.refused.items()))
        degraded = ("True", constants.EVENT_POD_CREATE_REFUSED, details)
    elif seen.failing:
        details = "; ".join(f"{name}: {why}" for name, why in sorted(seen.failing.items()))
        degraded = ("True", "ReplicaFailing", details)
    elif seen.budget_error:
        degraded = ("True", BUDGET_CONFLICT, seen.budget_error)
    elif seen.config_error:
        degraded = ("True", "ConfigNotStored", seen.config_error)
    else:
        degraded = ("False", "AsExpected", "no replica is failing")

    # Ready is what `kubectl get agc` shows (a printer column): a Degraded or QuotaExceeded
    # cluster is never Ready, even when the pods it has are (a refused spec with no members,
    # a cluster held below its replicas by the namespace's slots), and the reason says why.
    if degraded[0] == "True":
        ready_condition = ("False", degraded[1], f"{ready}/{want} replicas ready; {degraded[2]}")
    elif seen.quota_message:
        ready_condition = ("False", "QuotaExceeded", f"{ready}/{want} replicas ready; {seen.quota_message}")
    elif ready == want and allocated == want and not terminating:
        ready_condition = ("True", "AllReplicasReady", f"{ready}/{want} replicas ready")
    else:
        ready_condition = ("False", "ReplicasNotReady", f"{ready}/{want} replicas ready")

    wanted = {
        constants.CONDITION_READY: ready_condition,
        constants.CONDITION_PROGRESSING: progressing,
        constants.CONDITION_DEGRADED: degraded,
        constants.CONDITION_QUOTA_EXCEEDED: quota,
    }
    before = {c.type: c for c in previous}
    result = []
    for kind, (value, reason, message) in wanted.items():
        old = before.get(kind)
        changed_at = old.last_transition_time if old is not None and old.status == value else now
        result.append(models.Condition(
            type=kind, status=value, reason=reason, message=message,
            last_transition_time=changed_at, observed_generation=seen.generation,
        ))
    return result


def refused_message(member: str, why: str) -> str:
    """How a refused pod reads, in the Degraded condition and in its Warning event."""
    return f"the API server refused the pod of replica {member}: {why}"


def selector(cluster: str) -> str:
    """The label selector of the scale subresource (what an HPA counts)."""
    return f"{constants.LABEL_CLUSTER}={cluster}"


def dump(status: models.AgentClusterStatus) -> dict[str, Any]:
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)
