"""Several operator processes sharing one Lease and one webhook port, as a Deployment with
replicas > 1 runs them, and the faults the HA tests inject into them (real signals)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devcluster import operator_process
from devcluster.processes import Process
from tests.e2e.helpers import eventually, pid_alive

LEASE = operator_process.TEST_LEADER_ELECTION
LEASE_NAME, LEASE_NAMESPACE = LEASE["leaseName"], LEASE["leaseNamespace"]
LEASE_SECONDS = float(LEASE["leaseDurationSeconds"])
RETRY_SECONDS = float(LEASE["retryPeriodSeconds"])
# A takeover may take the lease duration after the follower last saw the record change (up to
# one retry period after the leader's last renewal), plus one retry to notice and one to write;
# the rest is room for a loaded 2-core machine.
TAKEOVER_SECONDS = LEASE_SECONDS + 2 * RETRY_SECONDS + 3
FIELD_MANAGER_PREFIX = "agentclusters-operator@"


@dataclass
class OperatorGroup:
    processes: list[Process]
    coordination: client.CoordinationV1Api
    state_dir: Path
    kubeconfig: Path
    replica_auth_key: str

    def start_again(self, index: int) -> Process:
        """Start operator `index` anew (same settings, log and webhook port) after it stopped."""
        process = operator_process.launch(self.state_dir, self.kubeconfig,
                                          operator_process.settings_path(self.state_dir, index),
                                          self.replica_auth_key, index)
        self.processes[index] = process
        return process

    @staticmethod
    def identity(process: Process) -> str:
        """The Lease holder identity of a devcluster operator (hostname and pid)."""
        return f"{socket.gethostname()}_{process.pid}"

    def leader_gauge(self, process: Process) -> float:
        """`agentclusters_operator_leader` as `process` serves it."""
        url = operator_process.metrics_url(self.state_dir, self.processes.index(process))
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        [value] = [line.split()[-1] for line in text.splitlines()
                   if line.startswith("agentclusters_operator_leader ")]
        return float(value)

    def field_manager(self, process: Process) -> str:
        return f"{FIELD_MANAGER_PREFIX}{self.identity(process)}"

    def lease(self) -> dict[str, Any] | None:
        try:
            lease = self.coordination.read_namespaced_lease(LEASE_NAME, LEASE_NAMESPACE)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return {"holder": lease.spec.holder_identity, "transitions": lease.spec.lease_transitions}

    def holder(self) -> Process | None:
        """The process named in the Lease (None: no holder, or someone else)."""
        lease = self.lease()
        holder = lease and lease["holder"]
        return next((p for p in self.processes if self.identity(p) == holder), None)

    def leader(self, *, other_than: Process | None = None, timeout: float = 60) -> Process:
        """The live process holding the Lease (waits for one)."""
        def check() -> Process | None:
            process = self.holder()
            if process is not None and process is not other_than and process.alive():
                return process
            return None

        return eventually(check, timeout=timeout, interval=0.1, what="a live operator to hold the Lease")

    def others(self, process: Process) -> list[Process]:
        return [p for p in self.processes if p is not process]

    @staticmethod
    def log(process: Process) -> str:
        return process.log.read_text(errors="replace")

    @staticmethod
    def kill(process: Process) -> None:
        """SIGKILL: no cleanup runs, the Lease is not released."""
        os.killpg(process.pid, signal.SIGKILL)
        assert process.popen is not None
        process.popen.wait(timeout=10)
        eventually(lambda: not pid_alive(process.pid), timeout=10, what="the operator to die")

    @staticmethod
    def freeze(process: Process) -> None:
        """SIGSTOP: the process holds its sockets and state but runs nothing (cannot renew)."""
        os.killpg(process.pid, signal.SIGSTOP)

    @staticmethod
    def thaw(process: Process) -> None:
        os.killpg(process.pid, signal.SIGCONT)

    def stop_all(self) -> None:
        for process in self.processes:
            if process.alive():
                self.thaw(process)  # a stopped process cannot handle SIGTERM
            process.stop()


def operator_writes(managed_fields: Iterable[Any]) -> list[tuple[str, dt.datetime]]:
    """(manager, last write time) of every operator replica in an object's managedFields."""
    found = []
    for entry in managed_fields or []:
        if not isinstance(entry, dict):
            entry = entry.to_dict()
        manager, when = entry.get("manager") or "", entry.get("time")
        if manager.startswith(FIELD_MANAGER_PREFIX):
            if isinstance(when, str):
                when = dt.datetime.fromisoformat(when.replace("Z", "+00:00"))
            found.append((manager, when))
    return found


def wait_seconds(seconds: float) -> None:
    """A deliberate observation window (not a wait for a condition): nothing may happen in it."""
    time.sleep(seconds)
