"""Runs the real gateway (`agentclusters gateway`) against a devcluster, and issues callers'
tokens for it.

Shared by the e2e tests, `make dev-up` and `make demo`. The gateway runs with the admin
kubeconfig (it needs TokenReview and SubjectAccessReview, and to patch AgentClusters) and the
operator's replica auth key. A caller is a ServiceAccount bound to a Role on agentclusters in
one namespace; its token comes from the TokenRequest API (`kubectl create token --audience
agentclusters-gateway`), exactly as a real client's would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from agent_api import replica_auth
from devcluster import ports
from devcluster.processes import Process

# The gateway's default token audience (agent_gateway.settings.DEFAULT_AUDIENCE; devcluster
# imports agent_api only).
AUDIENCE = "agentclusters-gateway"
CALLER_ROLE_RULES = [
    {"apiGroups": ["agentclusters.io"], "resources": ["agentclusters", "agentclusters/scale", "agentclusters/status"],
     "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
]


@dataclass
class RunningGateway:
    process: Process
    url: str
    """Base URL, e.g. http://127.0.0.1:41234; MCP is at `mcp_url`."""
    metrics_url: str = ""
    """Where Prometheus scrapes it (a port of its own, as in the chart)."""

    @property
    def mcp_url(self) -> str:
        return f"{self.url}/mcp"

    def stop(self) -> None:
        self.process.stop()


def start(state_dir: Path, kubeconfig: Path, database_url: str, redis_url: str, replica_auth_key: str, *,
          default_namespace: str = "default", rate_limit_per_minute: int = 600,
          name: str = "gateway", wait_ready: bool = True) -> RunningGateway:
    """Start the gateway on a free loopback port; returns once it listens and, with
    `wait_ready`, once `/readyz` answers 200 (its caches have synced). The replica auth key
    must be the operator's. `name` names the process and its log (`logs/<name>.log`),
    so several gateways of one stack (as a Deployment with replicas would run) keep apart."""
    port, metrics_port = ports.free_port(), ports.free_port()
    process = Process(
        name,
        [sys.executable, "-m", "agentclusters", "gateway", f"--kubeconfig={kubeconfig}",
         f"--database-url={database_url}", f"--redis-url={redis_url}", "--host=127.0.0.1", f"--port={port}",
         f"--default-namespace={default_namespace}", f"--rate-limit-per-minute={rate_limit_per_minute}",
         f"--metrics-port={metrics_port}"],
        state_dir / "logs" / f"{name}.log",
        env={**os.environ, replica_auth.MASTER_KEY_ENV: replica_auth_key},
    ).start()
    try:
        ports.wait_until(lambda: process.check_alive() or ports.port_open(port), timeout=60, what="the gateway")
        if wait_ready:
            ports.wait_until(lambda: process.check_alive() or _ready(port), timeout=60, what="the gateway's caches")
    except BaseException:
        process.stop()
        raise
    return RunningGateway(process, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics")


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def issue_caller_token(kubectl: Path, kubeconfig: Path, namespace: str, name: str = "mcp-caller",
                       duration: str = "24h", audience: str = AUDIENCE) -> str:
    """A ServiceAccount allowed to manage agentclusters in `namespace` only, and a token for it
    minted for the gateway's audience."""
    manifests = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": name, "namespace": namespace}, "rules": CALLER_ROLE_RULES},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": name, "namespace": namespace},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]},
    ]
    _kubectl(kubectl, kubeconfig, ["apply", "-f", "-"], yaml.safe_dump_all(manifests))
    return _kubectl(kubectl, kubeconfig, ["create", "token", name, "-n", namespace, f"--duration={duration}",
                                          f"--audience={audience}"]).strip()


def _kubectl(kubectl: Path, kubeconfig: Path, args: list[str], stdin: str | None = None) -> str:
    result = subprocess.run([str(kubectl), f"--kubeconfig={kubeconfig}", *args], input=stdin,
                            capture_output=True, text=True, check=False, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout
