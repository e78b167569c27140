"""The faults the soak injects, each done for real and logged with when and to whom.

Replica faults act on one replica pod's runtime process (the process kubelet runs each
container as its own process group; `containerID: process://<pid>`): SIGKILL (the kubelet
restarts it in the same pod), SIGSTOP then SIGCONT (a frozen process: no renewals, no
answers, sockets left open), a pod deleted through the API (graceful: SIGTERM, the operator
recreates the pod under the same name), and a scale of the AgentCluster. System faults act
once: PostgreSQL restarted (`pg_ctl stop -m fast`), Redis restarted, the operator SIGKILLed
and started again, and every replica's PostgreSQL connection blackholed by the proxy
(half-open: nothing forwarded, no close) for longer than the lease.

A `Fault` is the log line: kind, target (the replica name; for a scale-down, the members
that were to go), start and end (wall clock; equal for instant faults).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException

from agent_api import constants
from bench.chaos.stack import Stack

# Faults whose effect is on every replica at once: a re-execution during one is explained.
SYSTEM_WIDE = ("restart_postgres", "blackhole_postgres")
REPLICA_FAULTS = ("sigkill", "sigstop", "delete_pod", "scale")


@dataclass
class Fault:
    kind: str
    start: float
    end: float
    targets: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Target:
    """A replica pod whose runtime is running: its member name and process group."""

    replica: str
    pod: str
    pid: int


class Injector:
    def __init__(self, stack: Stack, namespace: str, cluster: str) -> None:
        self.stack = stack
        self.namespace = namespace
        self.cluster = cluster
        self.stopped: dict[int, str] = {}  # pid → replica, frozen right now

    def running_targets(self) -> list[Target]:
        pods = self.stack.core().list_namespaced_pod(
            self.namespace, label_selector=f"{constants.LABEL_CLUSTER}={self.cluster}").items
        found = []
        for pod in pods:
            if pod.metadata.deletion_timestamp is not None or pod.status is None:
                continue
            for status in pod.status.container_statuses or []:
                if status.state and status.state.running and status.container_id:
                    pid = int(status.container_id.removeprefix("process://"))
                    if pid not in self.stopped:
                        found.append(Target(_replica_of(pod), pod.metadata.name, pid))
        return sorted(found, key=lambda t: t.replica)

    def sigkill(self, target: Target) -> Fault:
        now = time.time()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(target.pid, signal.SIGKILL)
        return Fault("sigkill", now, now, [target.replica], {"pid": target.pid})

    def sigstop(self, target: Target) -> float:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(target.pid, signal.SIGSTOP)
            self.stopped[target.pid] = target.replica
        return time.time()

    def sigcont(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGCONT)
        self.stopped.pop(pid, None)

    def thaw_all(self) -> None:
        for pid in list(self.stopped):
            self.sigcont(pid)

    def delete_pod(self, target: Target) -> Fault:
        now = time.time()
        with contextlib.suppress(ApiException):
            self.stack.core().delete_namespaced_pod(target.pod, self.namespace)
        return Fault("delete_pod", now, now, [target.replica], {"pod": target.pod})

    def scale(self, replicas: int, members: list[dict[str, Any]]) -> Fault:
        """Scale to `replicas`; a scale-down's victims are the newest members (LIFO)."""
        now = time.time()
        live = sorted((m for m in members if m.get("phase") != "Terminating"),
                      key=lambda m: m["ordinal"])
        victims = [m["name"] for m in live[replicas:]]
        self.stack.custom().patch_namespaced_custom_object_scale(
            constants.GROUP, constants.VERSION, self.namespace, constants.PLURAL, self.cluster,
            {"spec": {"replicas": replicas}})
        return Fault("scale", now, now, victims, {"from": len(live), "to": replicas})

    def restart_postgres(self, down_seconds: float) -> Fault:
        start = time.time()
        self.stack.restart_postgres(down_seconds)
        return Fault("restart_postgres", start, time.time(), [], {"down_seconds": down_seconds})

    def restart_redis(self, down_seconds: float) -> Fault:
        start = time.time()
        self.stack.restart_redis(down_seconds)
        return Fault("restart_redis", start, time.time(), [], {"down_seconds": down_seconds})

    def restart_operator(self) -> Fault:
        start = time.time()
        self.stack.restart_operator()
        return Fault("restart_operator", start, time.time(), [], {})

    def blackhole(self, seconds: float) -> Fault:
        assert self.stack.proxy is not None
        start = time.time()
        self.stack.proxy.stall()
        try:
            time.sleep(seconds)
        finally:
            self.stack.proxy.resume()
        return Fault("blackhole_postgres", start, time.time(), [], {"seconds": seconds})


def _replica_of(pod: Any) -> str:
    return (pod.metadata.labels or {}).get(constants.LABEL_REPLICA, pod.metadata.name)
