"""The whole devcluster: the control plane plus one process kubelet, started and stopped as one.

Layout under `state_dir`: the control plane's files (pki/, etcd/, kubeconfigs), `logs/`
(one log per component, including `kubelet.log`) and `kubelet/` (the kubelet's state, with
pod logs under `kubelet/pods/<namespace>_<pod>/<container>.log`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from devcluster import binaries, ports
from devcluster.controlplane import ControlPlane
from devcluster.kubelet.containers import kill_registered
from devcluster.processes import Process

NODE_NAME = "devcluster-node"


@dataclass
class DevCluster:
    state_dir: Path
    node_name: str = NODE_NAME
    control_plane: ControlPlane | None = None
    kubelet: Process | None = None
    measurements: dict[str, float] = field(default_factory=dict)

    @property
    def kubeconfig(self) -> Path:
        """Admin (system:masters) credentials."""
        return self._cp.admin_kubeconfig

    @property
    def bin_dir(self) -> Path:
        return self._cp.bin_dir

    @property
    def kubelet_dir(self) -> Path:
        return self.state_dir / "kubelet"

    @property
    def _cp(self) -> ControlPlane:
        assert self.control_plane is not None, "DevCluster.start() was not called"
        return self.control_plane

    def start(self) -> DevCluster:
        self.state_dir = self.state_dir.resolve()
        bin_dir = binaries.ensure()
        begin = time.monotonic()
        self.control_plane = ControlPlane(self.state_dir, bin_dir)
        try:
            self.control_plane.start()
            self.measurements["control_plane_start_s"] = time.monotonic() - begin
            credentials = self.control_plane.issue_node_credentials(self.node_name)
            self.kubelet = Process(
                "kubelet",
                [sys.executable, "-m", "devcluster.kubelet", f"--kubeconfig={credentials}",
                 f"--node-name={self.node_name}", f"--state-dir={self.kubelet_dir}"],
                self.state_dir / "logs" / "kubelet.log",
            ).start()
            node_begin = time.monotonic()
            ports.wait_until(self._node_ready, timeout=60, what=f"node {self.node_name}",
                             interval=0.2)
            self.measurements["node_ready_s"] = time.monotonic() - node_begin
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Kubelet first (it stops every pod process), then the control plane."""
        if self.kubelet is not None:
            peak = _peak_rss_mib(self.kubelet.pid)
            if peak is not None:
                self.measurements["kubelet_peak_rss_mib"] = peak
            self.kubelet.stop(grace=15)
            self.kubelet = None
            (self.state_dir / "measurements.json").write_text(
                json.dumps(self.measurements, indent=2))
        kill_registered(self.kubelet_dir / "run")  # only matters if the kubelet was killed
        if self.control_plane is not None:
            self.control_plane.stop()

    def pids(self) -> dict[str, int]:
        pids = {p.name: p.pid for p in self._cp.processes}
        if self.kubelet is not None:
            pids["kubelet"] = self.kubelet.pid
        return pids

    def kubectl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True, text=True, timeout=timeout, check=False,
        )

    def _node_ready(self) -> bool:
        assert self.kubelet is not None
        self.kubelet.check_alive()
        node = self._cp.get(f"/api/v1/nodes/{self.node_name}")
        ready = any(c["type"] == "Ready" and c["status"] == "True"
                    for c in node.get("status", {}).get("conditions", []))
        blocked = any(t["key"] in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
                      for t in node.get("spec", {}).get("taints") or [])
        return ready and not blocked


def _peak_rss_mib(pid: int) -> float | None:
    """The high-water mark of a process's resident memory (VmHWM), in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None
