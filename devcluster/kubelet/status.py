"""Pod status from container statuses: phase and conditions, computed like the kubelet's
`getPhase` and `generateAPIPodStatus` (pure functions over API-shaped dicts)."""

from __future__ import annotations

from collections.abc import Iterable


def _by_name(statuses: Iterable[dict]) -> dict[str, dict]:
    return {s["name"]: s for s in statuses}


def is_sidecar(container: dict) -> bool:
    """A restartable init container (`restartPolicy: Always` on an init container)."""
    return container.get("restartPolicy") == "Always"


def pod_phase(pod: dict, init_statuses: list[dict], statuses: list[dict],
              terminal: bool = False) -> str:
    """Pending, Running, Succeeded or Failed (kubelet `getPhase`).

    `terminal`: the pod is being torn down (deleted), so containers won't be restarted
    whatever the restart policy says."""
    spec = pod.get("spec", {})
    policy = spec.get("restartPolicy") or "Always"
    init_by_name = _by_name(init_statuses)
    pending_init = pending_sidecars = failed_init = 0
    for container in spec.get("initContainers") or []:
        status = init_by_name.get(container["name"])
        if is_sidecar(container):
            if status is None or not status.get("started"):
                pending_sidecars += 1
            continue
        if status is None:
            pending_init += 1
            continue
        state, last = status.get("state") or {}, status.get("lastState") or {}
        if "running" in state:
            pending_init += 1
        elif "terminated" in state:
            if state["terminated"].get("exitCode") != 0:
                failed_init += 1
        elif "terminated" in last:
            if last["terminated"].get("exitCode") != 0:
                failed_init += 1
        else:
            pending_init += 1

    by_name = _by_name(statuses)
    unknown = running = waiting = stopped = succeeded = 0
    for container in spec.get("containers") or []:
        status = by_name.get(container["name"])
        if status is None:
            unknown += 1
            continue
        state, last = status.get("state") or {}, status.get("lastState") or {}
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            if state["terminated"].get("exitCode") == 0:
                succeeded += 1
        elif "waiting" in state:
            if "terminated" in last:
                stopped += 1
            else:
                waiting += 1
        else:
            unknown += 1

    if failed_init and policy == "Never":
        return "Failed"
    if pending_init or (pending_sidecars and running == 0 and stopped == 0):
        return "Pending"
    if waiting:
        return "Pending"
    if running and not unknown:
        return "Running"
    if not running and stopped and not unknown:
        if terminal:
            return "Succeeded" if stopped == succeeded else "Failed"
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def _condition(kind: str, ok: bool, reason: str = "", message: str = "") -> dict:
    # reason/message are always present (null when not applicable) so that a strategic
    # merge patch clears what an earlier False status had set.
    return {"type": kind, "status": "True" if ok else "False", "lastProbeTime": None,
            "reason": reason if not ok and reason else None,
            "message": message if not ok and message else None}


def pod_conditions(pod: dict, init_statuses: list[dict], statuses: list[dict], phase: str,
                   sandbox_ready: bool) -> list[dict]:
    """PodReadyToStartContainers, Initialized, ContainersReady and Ready (without times)."""
    spec = pod.get("spec", {})
    init_by_name = _by_name(init_statuses)
    incomplete = []
    for container in spec.get("initContainers") or []:
        status = init_by_name.get(container["name"], {})
        if is_sidecar(container):
            done = bool(status.get("started"))
        else:
            done = status.get("state", {}).get("terminated", {}).get("exitCode") == 0
        if not done:
            incomplete.append(container["name"])
    initialized = not incomplete

    by_name = _by_name(statuses)
    unready = [c["name"] for c in spec.get("containers") or []
               if not by_name.get(c["name"], {}).get("ready")]
    unready += [c["name"] for c in spec.get("initContainers") or []
                if is_sidecar(c) and not init_by_name.get(c["name"], {}).get("ready")]
    existing = {c.get("type"): c for c in (pod.get("status") or {}).get("conditions") or []}
    gates_unready = [g["conditionType"] for g in spec.get("readinessGates") or []
                     if existing.get(g["conditionType"], {}).get("status") != "True"]

    conditions = [_condition("PodReadyToStartContainers", sandbox_ready)]
    conditions.append(_condition(
        "Initialized", initialized, "ContainersNotInitialized",
        f"containers with incomplete status: [{' '.join(incomplete)}]"))
    if phase in ("Succeeded", "Failed"):
        conditions.append(_condition("ContainersReady", False, "PodCompleted"))
        conditions.append(_condition("Ready", False, "PodCompleted"))
        return conditions
    containers_ready = not unready and initialized
    conditions.append(_condition(
        "ContainersReady", containers_ready, "ContainersNotReady",
        f"containers with unready status: [{' '.join(unready)}]"))
    if not containers_ready:
        conditions.append(_condition(
            "Ready", False, "ContainersNotReady",
            f"containers with unready status: [{' '.join(unready)}]"))
    elif gates_unready:
        conditions.append(_condition(
            "Ready", False, "ReadinessGatesNotReady",
            f"corresponding condition of pod readiness gate \"{gates_unready[0]}\" does not exist."
            if gates_unready[0] not in existing else
            f"the status of pod readiness gate \"{gates_unready[0]}\" is not \"True\""))
    else:
        conditions.append(_condition("Ready", True))
    return conditions


def with_transition_times(conditions: list[dict], previous: list[dict], now: str) -> list[dict]:
    """Stamp `lastTransitionTime`: kept from `previous` while a condition's status is unchanged."""
    before = {c.get("type"): c for c in previous or []}
    stamped = []
    for condition in conditions:
        old = before.get(condition["type"])
        same = old is not None and old.get("status") == condition["status"]
        stamped.append({**condition,
                        "lastTransitionTime": old.get("lastTransitionTime") if same and old else now})
    return stamped


def build_status(pod: dict, *, init_statuses: list[dict], statuses: list[dict], pod_ip: str,
                 host_ip: str, start_time: str, now: str, terminal: bool = False,
                 previous_conditions: list[dict] | None = None) -> dict:
    """The `status` the kubelet reports for `pod`."""
    phase = pod_phase(pod, init_statuses, statuses, terminal)
    conditions = pod_conditions(pod, init_statuses, statuses, phase, sandbox_ready=not terminal)
    status = {
        "phase": phase,
        "conditions": with_transition_times(
            conditions,
            previous_conditions if previous_conditions is not None
            else (pod.get("status") or {}).get("conditions") or [],
            now),
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": start_time,
        "containerStatuses": statuses,
    }
    if pod.get("spec", {}).get("initContainers"):
        status["initContainerStatuses"] = init_statuses
    return status
