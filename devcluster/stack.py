"""The background development stack behind `make dev-up` / `make dev-down`.

Everything lives in `.dev/` of the working directory: the control plane's state, the
PostgreSQL and Redis data, logs, `.dev/kubeconfig` and a shell-sourceable `.dev/env` (with
`KUBECONFIG`, `PATH` led by the devcluster's `kubectl` and the virtualenv's `agentclusters`,
`GATEWAY_URL`, the MCP endpoint, `GATEWAY_TOKEN`, a ServiceAccount token for the gateway's
audience allowed on agentclusters in `default`, and the stack's replica auth key). The
processes outlive the command that started them; `down` finds them again through
`.dev/stack.json`.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from agent_api import replica_auth
from devcluster import gateway_process, operator_process, ports, processes, services
from devcluster.cluster import DevCluster
from devcluster.kubelet import logs


@dataclass
class Stack:
    root: Path

    @property
    def record(self) -> Path:
        return self.root / "stack.json"

    @property
    def env_file(self) -> Path:
        return self.root / "env"

    def postgres(self, port: int) -> services.Postgres:
        return services.Postgres(self.root / "postgres", port)

    def redis(self, port: int) -> services.Redis:
        return services.Redis(self.root / "redis", port)

    def up(self) -> dict[str, str]:
        if self.record.exists():
            state = json.loads(self.record.read_text())
            if all(_alive(pid) for pid in state["pids"].values()):
                return state["env"]
            self.down()
        self.root.mkdir(parents=True, exist_ok=True)
        postgres = self.postgres(ports.free_port()).start()
        redis = self.redis(ports.free_port()).start()
        cluster = DevCluster(self.root / "cluster")
        started: list[processes.Process] = []
        try:
            cluster.start()
            kubeconfig = self.root / "kubeconfig"
            kubeconfig.write_text(cluster.kubeconfig.read_text())
            kubeconfig.chmod(0o600)
            replica_auth_key = operator_process.new_replica_auth_key()
            operator = operator_process.start(self.root / "cluster", cluster.bin_dir / "kubectl", kubeconfig,
                                              postgres.url, redis.url, replica_auth_key)
            started.append(operator)
            gateway = gateway_process.start(self.root / "cluster", kubeconfig, postgres.url, redis.url,
                                            replica_auth_key)
            started.append(gateway.process)
            token = gateway_process.issue_caller_token(cluster.bin_dir / "kubectl", kubeconfig, "default")
        except BaseException:
            for process in reversed(started):
                process.stop()
            cluster.stop()
            postgres.stop()
            redis.stop()
            raise
        env = {
            "KUBECONFIG": str(kubeconfig.resolve()),
            "DATABASE_URL": postgres.url,
            "REDIS_URL": redis.url,
            "DEVCLUSTER_BIN": str(cluster.bin_dir),
            "GATEWAY_URL": gateway.mcp_url,
            "GATEWAY_TOKEN": token,
            # For a second gateway of your own (`agentclusters gateway`) against this stack.
            replica_auth.MASTER_KEY_ENV: replica_auth_key,
        }
        self._write(env, {**cluster.pids(), "operator": operator.pid, "gateway": gateway.process.pid},
                    postgres.port, redis.port)
        return env

    def down(self) -> None:
        if not self.record.exists():
            return
        state = json.loads(self.record.read_text())
        # Gateway and operator, then kubelet (it stops every pod process), then the control plane.
        order = ["gateway", "operator", "kubelet", "kube-scheduler", "kube-controller-manager", "kube-apiserver",
                 "etcd"]
        for name in sorted(state["pids"], key=lambda n: order.index(n) if n in order else -1):
            processes.stop_group(state["pids"][name])
        self.postgres(state["postgres_port"]).stop()
        self.redis(state["redis_port"]).stop()
        self.record.unlink()
        self.env_file.unlink(missing_ok=True)

    def status(self) -> dict[str, bool]:
        if not self.record.exists():
            return {}
        state = json.loads(self.record.read_text())
        result = {name: _alive(pid) for name, pid in state["pids"].items()}
        result["postgres"] = ports.port_open(state["postgres_port"])
        result["redis"] = ports.port_open(state["redis_port"])
        return result

    def log_path(self, target: str, container: str | None = None) -> Path | None:
        """A component's log (`kube-apiserver`, `kubelet`, `operator`, ...) or, for
        `NAMESPACE/POD`, the log of one of the pod's containers."""
        cluster_dir = self.root / "cluster"
        if "/" not in target:
            return cluster_dir / "logs" / f"{target}.log"
        namespace, pod = target.split("/", 1)
        pod_dir = logs.container_log_path(cluster_dir / "kubelet", namespace, pod, "x").parent
        if container is None:
            found = sorted(pod_dir.glob("*.log"))
            return found[0] if found else None
        return logs.container_log_path(cluster_dir / "kubelet", namespace, pod, container)

    def _write(self, env: dict[str, str], pids: dict[str, int], pg_port: int, redis_port: int) -> None:
        # The devcluster's kubectl (the control plane's version, ahead of any other kubectl on the
        # machine) and the virtualenv running this (`agentclusters`), so the README's commands
        # after `make dev-up` work as written once this file is sourced.
        path = [env["DEVCLUSTER_BIN"], str(Path(sys.executable).parent)]
        self.env_file.write_text(
            "".join(f"export {key}={shlex.quote(value)}\n" for key, value in env.items())
            + f'export PATH={shlex.quote(":".join(path))}"${{PATH:+:$PATH}}"\n'
        )
        self.record.write_text(json.dumps(
            {"env": env, "pids": pids, "postgres_port": pg_port, "redis_port": redis_port},
            indent=2,
        ))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
