"""A real Kubernetes control plane on one machine: etcd, kube-apiserver,
kube-controller-manager and kube-scheduler, with TLS, RBAC and the Node authorizer.

Everything lives under one state directory (certificates, kubeconfigs, etcd data, logs), on
free loopback ports, so several control planes can run side by side and `stop()` leaves no
process behind.
"""

from __future__ import annotations

import json
import ssl
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from devcluster import pki, ports
from devcluster.processes import Process

SERVICE_CIDR = "10.96.0.0/16"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"


@dataclass
class ControlPlane:
    state_dir: Path
    bin_dir: Path
    processes: list[Process] = field(default_factory=list)
    api_port: int = 0

    # --- paths -----------------------------------------------------------------------------
    @property
    def pki_dir(self) -> Path:
        return self.state_dir / "pki"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    def kubeconfig_for(self, identity: str) -> Path:
        return self.state_dir / f"{identity}.kubeconfig"

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> ControlPlane:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        ca = pki.CertificateAuthority(self.pki_dir)
        sa = pki.service_account_keys(self.pki_dir)
        serving = ca.issue(
            "apiserver", "kube-apiserver", client=False,
            server_names=("127.0.0.1", "localhost", "kubernetes", "kubernetes.default",
                          "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
                          "10.96.0.1"),
        )
        self.api_port = ports.free_port()
        self._write_kubeconfig("kubeconfig", ca.issue("admin", "admin", organization="system:masters"))
        self._write_kubeconfig(
            "kube-controller-manager.kubeconfig",
            ca.issue("kube-controller-manager", "system:kube-controller-manager"),
        )
        self._write_kubeconfig(
            "kube-scheduler.kubeconfig", ca.issue("kube-scheduler", "system:kube-scheduler")
        )

        etcd_client, etcd_peer = ports.free_port(), ports.free_port()
        self._spawn(
            "etcd",
            [
                "--name=devcluster", f"--data-dir={self.state_dir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_client}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_client}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=devcluster=http://127.0.0.1:{etcd_peer}",
                "--listen-metrics-urls=", "--unsafe-no-fsync", "--log-level=warn",
            ],
        )
        ports.wait_until(lambda: self._check_alive() or ports.port_open(etcd_client),
                         timeout=60, what="etcd")

        self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers=http://127.0.0.1:{etcd_client}",
                "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
                f"--secure-port={self.api_port}",
                f"--cert-dir={self.pki_dir}",
                f"--tls-cert-file={serving.cert}", f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={ca.pair.cert}",
                f"--service-account-key-file={sa.cert}",
                f"--service-account-signing-key-file={sa.key}",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--api-audiences={SERVICE_ACCOUNT_ISSUER}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                # Pods get loopback addresses and no kube-proxy runs, so the Service
                # endpoints reconciler has nothing sensible to publish.
                "--endpoint-reconciler-type=none",
                "--allow-privileged=true",
                "--profiling=false",
            ],
        )
        ports.wait_until(self._apiserver_ready, timeout=120, what="kube-apiserver", interval=0.3)

        self._spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={self.kubeconfig_for('kube-controller-manager')}",
                f"--authentication-kubeconfig={self.kubeconfig_for('kube-controller-manager')}",
                f"--authorization-kubeconfig={self.kubeconfig_for('kube-controller-manager')}",
                "--bind-address=127.0.0.1", f"--secure-port={ports.free_port()}",
                "--leader-elect=false",
                f"--service-account-private-key-file={sa.key}",
                f"--root-ca-file={ca.pair.cert}",
                f"--cluster-signing-cert-file={ca.pair.cert}",
                f"--cluster-signing-key-file={ca.pair.key}",
                "--use-service-account-credentials=true",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--controllers=*",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                f"--kubeconfig={self.kubeconfig_for('kube-scheduler')}",
                f"--authentication-kubeconfig={self.kubeconfig_for('kube-scheduler')}",
                f"--authorization-kubeconfig={self.kubeconfig_for('kube-scheduler')}",
                "--bind-address=127.0.0.1", f"--secure-port={ports.free_port()}",
                "--leader-elect=false",
            ],
        )
        ports.wait_until(self._default_service_account_exists, timeout=120,
                         what="the controller-manager (default ServiceAccount)", interval=0.3)
        self._record()
        return self

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()

    def issue_node_credentials(self, node_name: str) -> Path:
        """A kubeconfig for a kubelet on `node_name` (identity system:node:<name>)."""
        ca = pki.CertificateAuthority(self.pki_dir)
        pair = ca.issue(f"node-{node_name}", f"system:node:{node_name}", organization="system:nodes")
        return self._write_kubeconfig(f"node-{node_name}.kubeconfig", pair)

    def issue_user_credentials(self, user: str, groups: tuple[str, ...] = ()) -> Path:
        """A kubeconfig for a plain user (no permissions until RBAC grants some)."""
        ca = pki.CertificateAuthority(self.pki_dir)
        pair = ca.issue(f"user-{user}", user, organization=",".join(groups) or None)
        return self._write_kubeconfig(f"user-{user}.kubeconfig", pair)

    # --- internals -------------------------------------------------------------------------
    def _spawn(self, binary: str, args: list[str]) -> None:
        process = Process(binary, [str(self.bin_dir / binary), *args], self.log_dir / f"{binary}.log")
        self.processes.append(process.start())

    def _check_alive(self) -> bool:
        for process in self.processes:
            process.check_alive()
        return False

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki_dir / "ca.crt"))
        context.load_cert_chain(self.pki_dir / "admin.crt", self.pki_dir / "admin.key")
        return context

    def get(self, path: str) -> dict:
        """GET an API path as the cluster admin (used for readiness checks)."""
        context = self._ssl_context()
        with urllib.request.urlopen(self.server + path, context=context, timeout=5) as response:
            return json.loads(response.read())

    def _apiserver_ready(self) -> bool:
        self._check_alive()
        context = self._ssl_context()
        with urllib.request.urlopen(self.server + "/readyz", context=context, timeout=5) as response:
            return response.status == 200

    def _default_service_account_exists(self) -> bool:
        self._check_alive()
        self.get("/api/v1/namespaces/default/serviceaccounts/default")
        return True

    def _write_kubeconfig(self, filename: str, pair: pki.KeyPair) -> Path:
        path = self.state_dir / filename
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "devcluster", "cluster": {
                "server": self.server, "certificate-authority": str(self.pki_dir / "ca.crt")}}],
            "users": [{"name": "user", "user": {
                "client-certificate": str(pair.cert), "client-key": str(pair.key)}}],
            "contexts": [{"name": "devcluster", "context": {"cluster": "devcluster", "user": "user"}}],
            "current-context": "devcluster",
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)
        return path

    def _record(self) -> None:
        """Write the pids so `agentclusters dev down` can stop a control plane it did not start."""
        (self.state_dir / "controlplane.json").write_text(json.dumps({
            "server": self.server,
            "pids": {p.name: p.pid for p in self.processes},
        }, indent=2))
