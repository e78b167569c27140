"""Runs the real operator (`agentclusters operator`) against a devcluster.

Shared by the e2e tests, `make dev-up` and `make demo`: the CRD is applied, the operator
starts as its own process with its admission webhook on a loopback port, and replica pods
run the runtime from this checkout's virtualenv (the process kubelet ignores images).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from agent_api import replica_auth
from devcluster import crd_wait, ports
from devcluster.processes import Process

REPO = Path(__file__).resolve().parent.parent
CRDS = REPO / "crds"

# The identity a gateway writes AgentClusters with: the operator's webhook trusts it to have
# checked its caller's right to each referenced Secret (tests impersonate it).
SECRET_CHECK_EXEMPT_USER = "system:serviceaccount:agentclusters-dev:gateway"

# Images: the process kubelet ignores them, so each tier's list only exercises the policy:
# standard allows the dev tags (agent-clusters:v1, ...), pro one registry path, free nothing
# but the operator's own image.
DEFAULT_TIERS: dict[str, Any] = {
    "defaultTier": "standard",
    "tiers": {
        "standard": {"slots": 60, "cpu": "250m", "memory": "256Mi", "minScheduleIntervalSeconds": 1,
                     "allowedImages": ["agent-clusters:"]},
        "pro": {"slots": 5, "cpu": "500m", "memory": "512Mi", "minScheduleIntervalSeconds": 1,
                "allowedImages": ["registry.example/approved/"]},
        "free": {"slots": 2, "cpu": "100m", "memory": "128Mi", "minScheduleIntervalSeconds": 60,
                 "allowedImages": []},
    },
}


def apply_crds(kubectl: Path, kubeconfig: Path) -> None:
    base = [str(kubectl), f"--kubeconfig={kubeconfig}"]
    command = ["apply", "--server-side", "--force-conflicts", "-f", str(CRDS)]
    result = subprocess.run([*base, *command], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(command)} failed: {result.stderr.strip()}")
    result = crd_wait.wait_established(base, "-f", str(CRDS))
    if result.returncode != 0:
        raise RuntimeError(f"kubectl wait for the CRDs failed: {result.stderr.strip()}")


def write_settings(path: Path, database_url: str, redis_url: str, *, webhook_port: int,
                   grace_seconds: int = 10, tiers: dict[str, Any] | None = None, metrics_port: int = 0) -> Path:
    settings = {
        "image": "agent-clusters:dev",
        # Images are ignored by the process kubelet; the command must exist on this machine.
        "runtimeCommand": [sys.executable, "-m", "agentclusters", "runtime"],
        "databaseUrl": database_url,
        "redisUrl": redis_url,
        "terminationGracePeriodSeconds": grace_seconds,
        "resyncSeconds": 5,
        "metricsHost": "127.0.0.1",
        "metricsPort": metrics_port,
        "tiers": tiers or DEFAULT_TIERS,
        "webhook": {"host": "127.0.0.1", "listen": "127.0.0.1", "port": webhook_port,
                    "certDir": str(path.parent / "webhook-tls"),
                    "configurationName": "agentclusters.io",
                    "secretReferenceCheckExempt": [SECRET_CHECK_EXEMPT_USER]},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


def new_replica_auth_key() -> str:
    """A master key for replica tokens; the operator and the gateway of one stack share it."""
    return secrets.token_hex(32)


def start(state_dir: Path, kubectl: Path, kubeconfig: Path, database_url: str, redis_url: str,
          replica_auth_key: str, **settings: Any) -> Process:
    """Apply the CRDs and start the operator; returns once its webhook answers."""
    apply_crds(kubectl, kubeconfig)
    port = ports.free_port()
    settings.setdefault("metrics_port", ports.free_port())  # `metrics_url(state_dir)` reads it back
    config = write_settings(state_dir / "operator.yaml", database_url, redis_url, webhook_port=port, **settings)
    process = Process(
        "operator",
        [sys.executable, "-m", "agentclusters", "operator", f"--kubeconfig={kubeconfig}", f"--config={config}"],
        state_dir / "logs" / "operator.log",
        env={**os.environ, replica_auth.MASTER_KEY_ENV: replica_auth_key},
    ).start()
    try:
        ports.wait_until(lambda: process.check_alive() or ports.port_open(port), timeout=60,
                         what="the operator's admission webhook")
    except BaseException:
        process.stop()
        raise
    return process


def metrics_url(state_dir: Path) -> str:
    """Where the operator started in `state_dir` serves Prometheus metrics."""
    settings = yaml.safe_load((state_dir / "operator.yaml").read_text())
    return f"http://{settings['metricsHost']}:{settings['metricsPort']}/metrics"
