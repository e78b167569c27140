"""Runs the real operator (`agentclusters operator`) against a devcluster.

Shared by the e2e tests, `make dev-up` and `make demo`: the CRD is applied, the operator
starts as its own process with its admission webhook on a loopback port, and replica pods
run the runtime from this checkout's virtualenv (the process kubelet ignores images).

`start_many` runs several operators as a Deployment with replicas > 1 would: one settings
file, so one Lease (leader election) and one webhook address. kopf listens with SO_REUSEPORT,
so every process binds the same loopback port and the kernel spreads the API server's
connections over them, as a Service spreads them over the operator pods.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes import config as config_loader

from agent_api import constants, replica_auth
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


# client-go's defaults (15s, 10s, 2s) scaled down, so a test waits seconds for a takeover,
# with room for a loaded 2-core machine: a renewal may be late three times before the leader
# gives up, and the others wait two more seconds after that.
TEST_LEADER_ELECTION: dict[str, Any] = {
    "leaseName": "agentclusters-operator",
    # Explicit: run inside a pod, the operator would otherwise pick that pod's namespace,
    # which the devcluster does not have.
    "leaseNamespace": "default",
    "leaseDurationSeconds": 6,
    "renewDeadlineSeconds": 4,
    "retryPeriodSeconds": 1,
}


def write_settings(path: Path, database_url: str, redis_url: str, *, webhook_port: int,
                   grace_seconds: int = 10, tiers: dict[str, Any] | None = None,
                   leader_election: dict[str, Any] | None = None, metrics_port: int = 0) -> Path:
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
        "leaderElection": {**TEST_LEADER_ELECTION, **(leader_election or {})},
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
    return start_many(1, state_dir, kubectl, kubeconfig, database_url, redis_url, replica_auth_key,
                      **settings)[0]


def start_many(count: int, state_dir: Path, kubectl: Path, kubeconfig: Path, database_url: str,
               redis_url: str, replica_auth_key: str, **settings: Any) -> list[Process]:
    """Apply the CRDs and start `count` operators with the same settings (one Lease, one
    webhook port) but each its own metrics port (a plain listener: no SO_REUSEPORT); returns
    once every one of them serves the webhook. Settings and logs: operator.yaml and
    logs/operator.log, then operator-2.yaml and logs/operator-2.log, ..."""
    apply_crds(kubectl, kubeconfig)
    port = ports.free_port()
    metrics_port = settings.pop("metrics_port", None)
    started: list[Process] = []
    try:
        for index in range(count):
            config = write_settings(  # `metrics_url(state_dir)` reads the first one back
                settings_path(state_dir, index), database_url, redis_url, webhook_port=port,
                metrics_port=metrics_port if index == 0 and metrics_port is not None else ports.free_port(),
                **settings)
            # One after the other: the first writes the shared self-signed certificate.
            started.append(launch(state_dir, kubeconfig, config, replica_auth_key, index))
    except BaseException:
        for process in started:
            process.stop()
        raise
    return started


def launch(state_dir: Path, kubeconfig: Path, config: Path, replica_auth_key: str, index: int = 0) -> Process:
    """Start one operator with an existing settings file; returns once its webhook serves."""
    name = _name(index)
    log = state_dir / "logs" / f"{name}.log"
    offset = log.stat().st_size if log.exists() else 0
    process = Process(
        name,
        [sys.executable, "-m", "agentclusters", "operator", f"--kubeconfig={kubeconfig}", f"--config={config}"],
        log,
        env={**os.environ, replica_auth.MASTER_KEY_ENV: replica_auth_key},
    ).start()
    try:
        # kopf logs this once its webhook server listens (the port alone cannot tell: with
        # SO_REUSEPORT another operator may already hold it).
        ports.wait_until(lambda: process.check_alive() or WEBHOOK_SERVING in _read_from(log, offset),
                         timeout=60, what=f"the admission webhook of {name}")
        # kopf logs that line before it patches the webhooks into the configuration (which it
        # creates empty first): after the configuration was deleted, the patch may still be
        # on its way.
        _wait_for_configured_webhooks(kubeconfig, config, process)
    except BaseException:
        process.stop()
        raise
    return process


WEBHOOK_SERVING = "Reconfiguring the validating webhook"


def _wait_for_configured_webhooks(kubeconfig: Path, config: Path, process: Process) -> None:
    name = yaml.safe_load(config.read_text())["webhook"]["configurationName"]
    admission = client.AdmissionregistrationV1Api(config_loader.new_client_from_config(config_file=str(kubeconfig)))

    def configured() -> bool:
        process.check_alive()
        try:
            return bool(admission.read_validating_webhook_configuration(name).webhooks)
        except client.exceptions.ApiException as exc:
            if exc.status == 404:
                return False
            raise

    ports.wait_until(configured, timeout=60, interval=0.1,
                     what=f"the webhooks in the configuration {name}")


def _name(index: int) -> str:
    return "operator" if index == 0 else f"operator-{index + 1}"


def _read_from(log: Path, offset: int) -> str:
    with log.open("rb") as handle:
        handle.seek(offset)
        return handle.read().decode(errors="replace")


def settings_path(state_dir: Path, index: int = 0) -> Path:
    """The settings file of operator `index` started in `state_dir`."""
    return state_dir / f"{_name(index)}.yaml"


def metrics_url(state_dir: Path, index: int = 0) -> str:
    """Where operator `index` started in `state_dir` serves Prometheus metrics."""
    settings = yaml.safe_load(settings_path(state_dir, index).read_text())
    return f"http://{settings['metricsHost']}:{settings['metricsPort']}/metrics"


BAD_CRON_REFUSAL = "is not a valid cron expression"


def wait_for_admission(kubeconfig: Path, timeout: float = 60) -> None:
    """Until the API server reaches a live admission webhook. An operator (re)started after
    others writes its own port into the webhook configuration, and the API server follows from
    its watch a moment later: until then a create is refused with "failed calling webhook" (the
    old port). Probed with a server-side dry run, in `default`, of a spec only the webhook
    refuses."""
    api = client.CustomObjectsApi(config_loader.new_client_from_config(config_file=str(kubeconfig)))
    bad = {"apiVersion": constants.API_VERSION, "kind": constants.KIND, "metadata": {"name": "admission-probe"},
           "spec": {"replicas": 0,
                    "functions": [{"name": "f", "python": {"entrypoint": "agent_runtime.builtins:echo"}}],
                    "schedules": [{"name": "s", "function": "f", "cron": "61 * * * *"}]}}

    def refused_by_the_webhook() -> bool:
        try:
            api.create_namespaced_custom_object(constants.GROUP, constants.VERSION, "default",
                                                constants.PLURAL, bad, dry_run="All")
        except client.exceptions.ApiException as refused:
            return BAD_CRON_REFUSAL in (refused.body or "")
        raise RuntimeError("the admission webhook admitted a spec with a bad cron")

    ports.wait_until(refused_by_the_webhook, timeout=timeout, interval=0.2,
                     what="the API server reaching the operator's admission webhook")

