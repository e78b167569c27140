"""The Node object: registration, status, and the Lease heartbeat in `kube-node-lease`.

The node lifecycle controller treats a node as healthy while its Lease is renewed (every
`LEASE_RENEW_SECONDS`) and its Ready condition is True; the status (with fresh heartbeat
times) is re-posted every `STATUS_SECONDS` as well.
"""

from __future__ import annotations

import logging
import platform
import threading
from datetime import UTC, datetime
from pathlib import Path

from devcluster.kubelet.api import ApiError, Client

log = logging.getLogger(__name__)

KUBELET_VERSION = "v1.34.4"
LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_SECONDS = 40
LEASE_RENEW_SECONDS = 10
STATUS_SECONDS = 20
DEFAULT_CAPACITY = {"cpu": "32", "memory": "128Gi", "pods": "250", "ephemeral-storage": "100Gi"}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now_micro() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _read(path: str, default: str = "") -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return default


def _os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return platform.platform()


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


def node_info() -> dict:
    machine_id = _read("/etc/machine-id", "devcluster")
    return {
        "machineID": machine_id,
        "systemUUID": machine_id,
        "bootID": _read("/proc/sys/kernel/random/boot_id"),
        "kernelVersion": platform.release(),
        "osImage": _os_image(),
        "containerRuntimeVersion": "process://devcluster-kubelet",
        "kubeletVersion": KUBELET_VERSION,
        "kubeProxyVersion": "",
        "operatingSystem": "linux",
        "architecture": _arch(),
    }


def node_conditions(now: str, since: str) -> list[dict]:
    def condition(kind: str, status: str, reason: str, message: str) -> dict:
        return {"type": kind, "status": status, "reason": reason, "message": message,
                "lastHeartbeatTime": now, "lastTransitionTime": since}

    return [
        condition("MemoryPressure", "False", "KubeletHasSufficientMemory",
                  "kubelet has sufficient memory available"),
        condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    ]


def node_status(node_name: str, capacity: dict[str, str], host_ip: str, now: str,
                since: str) -> dict:
    return {
        "capacity": dict(capacity),
        "allocatable": dict(capacity),
        "conditions": node_conditions(now, since),
        "addresses": [{"type": "InternalIP", "address": host_ip},
                      {"type": "Hostname", "address": node_name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
        "nodeInfo": node_info(),
    }


class NodeAgent:
    def __init__(self, client: Client, node_name: str, *, capacity: dict[str, str] | None = None,
                 host_ip: str = "127.0.0.1") -> None:
        self.client = client
        self.node_name = node_name
        self.capacity = dict(capacity or DEFAULT_CAPACITY)
        self.host_ip = host_ip
        self.since = _now()
        self.node_uid = ""
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="node-heartbeat", daemon=True)

    @property
    def _lease_path(self) -> str:
        return (f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/"
                f"{self.node_name}")

    def register(self) -> None:
        """Create the Node (or take over an existing one) and post a Ready status."""
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": {
                    "kubernetes.io/hostname": self.node_name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": _arch(),
                    "beta.kubernetes.io/os": "linux",
                    "beta.kubernetes.io/arch": _arch(),
                },
            },
            "spec": {},
            "status": node_status(self.node_name, self.capacity, self.host_ip, _now(), self.since),
        }
        try:
            node = self.client.post("/api/v1/nodes", body)
            log.info("registered node %s", self.node_name)
        except ApiError as exc:
            if exc.status != 409:
                raise
            node = self.client.get(f"/api/v1/nodes/{self.node_name}")
            log.info("node %s already registered; updating it", self.node_name)
        self.node_uid = node["metadata"]["uid"]
        self.post_status()
        self.renew_lease()

    def post_status(self) -> None:
        self.client.patch(f"/api/v1/nodes/{self.node_name}/status", {
            "status": node_status(self.node_name, self.capacity, self.host_ip, _now(), self.since)})

    def renew_lease(self) -> None:
        try:
            lease = self.client.get(self._lease_path)
        except ApiError as exc:
            if exc.status != 404:
                raise
            self.client.post(
                f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases",
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {
                        "name": self.node_name,
                        "namespace": LEASE_NAMESPACE,
                        "ownerReferences": [{"apiVersion": "v1", "kind": "Node",
                                             "name": self.node_name, "uid": self.node_uid}],
                    },
                    "spec": {"holderIdentity": self.node_name,
                             "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                             "renewTime": _now_micro()},
                },
            )
            return
        lease["spec"]["holderIdentity"] = self.node_name
        lease["spec"]["leaseDurationSeconds"] = LEASE_DURATION_SECONDS
        lease["spec"]["renewTime"] = _now_micro()
        self.client.put(self._lease_path, lease)

    def start(self) -> NodeAgent:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        ticks = 0
        while not self._stop.wait(LEASE_RENEW_SECONDS):
            ticks += 1
            try:
                self.renew_lease()
                if ticks * LEASE_RENEW_SECONDS % STATUS_SECONDS == 0:
                    self.post_status()
            except Exception as exc:  # keep heartbeating through API hiccups
                log.warning("node heartbeat failed: %s", exc)
                if isinstance(exc, ApiError) and exc.status == 404 and "nodes" in str(exc.body):
                    self._reregister()

    def _reregister(self) -> None:
        try:
            self.register()
        except Exception as exc:
            log.warning("re-registering node %s failed: %s", self.node_name, exc)
