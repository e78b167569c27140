"""Who the members are: allocating names on scale-up, choosing victims on scale-down.

Pure functions over `status.members`; the reconcile records their answer in status *before*
acting on it, so a crash between the two never yields a second name or an orphan pod.
"""

from __future__ import annotations

from collections.abc import Iterable

from agent_api import models, names

# Member phases the operator itself sets (the others mirror the pod's phase).
ALLOCATED = "Allocated"  # name recorded, pod not created yet
TERMINATING = "Terminating"  # chosen for scale-down, pod being stopped


def live(members: Iterable[models.Member]) -> list[models.Member]:
    """Members that count towards replicas: everything not being scaled down."""
    return [m for m in members if m.phase != TERMINATING]


def member_names(clusters: Iterable[dict]) -> set[str]:
    """Every current member name (live or Terminating) of these AgentClusters.

    Archived names are deliberately not read from status: it keeps only the newest few. Every
    name the namespace ever had is in PostgreSQL (`cluster_store.names_taken`), which the
    allocation adds to these."""
    return {m["name"] for obj in clusters for m in (obj.get("status") or {}).get("members") or []}


def scale_up(
    cluster: str, status: models.AgentClusterStatus, desired: int, taken: set[str]
) -> list[models.Member]:
    """New members (with the next ordinals) to reach `desired` live members."""
    missing = desired - len(live(status.members))
    if missing <= 0:
        return []
    chosen = names.allocate(cluster, missing, taken)
    return [
        models.Member(name=name, ordinal=status.next_ordinal + i, pod=pod_name(cluster, name),
                      phase=ALLOCATED, ready=False)
        for i, name in enumerate(chosen)
    ]


def scale_down(members: list[models.Member], desired: int) -> list[models.Member]:
    """The live members to remove: the newest (highest ordinal) first."""
    alive = sorted(live(members), key=lambda m: m.ordinal)
    return alive[desired:] if len(alive) > desired else []


def pod_name(cluster: str, replica: str) -> str:
    return f"{cluster}-{replica}"
