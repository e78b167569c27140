"""The system under test: a devcluster with the real operator, replica pods, PostgreSQL and
Redis, and a TCP proxy between the replicas and PostgreSQL.

The soak restarts PostgreSQL, Redis and the operator, so it owns its own instances of all
three (never a server a test session or `make dev-up` shares). The operator's
`runtimeDatabaseUrl` points the replicas' runtime Secret at the proxy (the operator itself
connects directly), so the driver can blackhole every replica's database connection at once
without touching the operator's. A devcluster can be handed in (the e2e test reuses its
session's) or started here (`make chaos`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import yaml
from kubernetes import client, config
from kubernetes.client import ApiClient

from devcluster import operator_process, ports, services
from devcluster.cluster import DevCluster
from devcluster.processes import Process
from tests.support import tcp_proxy

DATABASE = "agentclusters_chaos"
OPERATOR_GRACE_SECONDS = 5  # the pods' terminationGracePeriodSeconds


@dataclass
class Stack:
    work_dir: Path
    devcluster: DevCluster | None = None  # None: start one of our own
    owns_devcluster: bool = False
    postgres: services.Postgres | None = None
    redis: services.Redis | None = None
    proxy: tcp_proxy.TcpProxy | None = None
    operator: Process | None = None
    api: ApiClient | None = None
    _operator_config: Path | None = None
    _replica_auth_key: str = field(default_factory=operator_process.new_replica_auth_key)

    @property
    def database_url(self) -> str:
        """The operator's (privileged) view of the soak's database, straight to the server."""
        assert self.postgres is not None
        return self.postgres.url_for(DATABASE)

    def start(self) -> Stack:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        try:
            if self.devcluster is None:
                self.devcluster = DevCluster(self.work_dir / "cluster").start()
                self.owns_devcluster = True
            # Not under the work dir when that is pytest's basetemp (0700 for the postgres user).
            self.postgres = services.Postgres(Path(tempfile.mkdtemp(prefix="agentclusters-chaos-pg-")),
                                              ports.free_port()).start()
            self.redis = services.Redis(self.work_dir / "redis", ports.free_port()).start()
            _create_database(self.postgres.url, DATABASE)
            self.proxy = tcp_proxy.TcpProxy(self.postgres.port).start()
            self.api = config.new_client_from_config(config_file=str(self.devcluster.kubeconfig))
            self._start_operator()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_operator(self) -> None:
        assert self.devcluster and self.postgres and self.redis and self.proxy
        operator_process.apply_crds(self.devcluster.bin_dir / "kubectl", self.devcluster.kubeconfig)
        state_dir = self.work_dir / "operator"
        path = operator_process.write_settings(
            operator_process.settings_path(state_dir), self.database_url, self.redis.url,
            webhook_port=ports.free_port(), metrics_port=ports.free_port(),
            grace_seconds=OPERATOR_GRACE_SECONDS)
        settings = yaml.safe_load(path.read_text())
        # The replicas reach PostgreSQL through the proxy; the operator does not.
        settings["runtimeDatabaseUrl"] = self.proxy.url(self.database_url)
        path.write_text(yaml.safe_dump(settings, sort_keys=False))
        self._operator_config = path
        self.operator = operator_process.launch(state_dir, self.devcluster.kubeconfig, path,
                                                self._replica_auth_key)
        # In the e2e tier another operator served the webhook a moment ago, on another port.
        operator_process.wait_for_admission(self.devcluster.kubeconfig)

    def restart_operator(self) -> None:
        """SIGKILL the operator (no cleanup, its Lease not released) and start it again."""
        assert self.operator is not None and self.devcluster is not None
        if self.operator.alive():
            os.killpg(self.operator.pid, signal.SIGKILL)
            self.operator.popen.wait(timeout=10)
        self.operator = operator_process.launch(self.work_dir / "operator", self.devcluster.kubeconfig,
                                                self._operator_config, self._replica_auth_key)
        operator_process.wait_for_admission(self.devcluster.kubeconfig)

    def restart_postgres(self, down_seconds: float) -> None:
        """`pg_ctl stop -m fast` (every session ends), down for a while, started again."""
        assert self.postgres is not None
        self.postgres.stop()
        time.sleep(down_seconds)
        self.postgres.start()

    def restart_redis(self, down_seconds: float) -> None:
        """Redis stopped (no persistence: the registry and the ACL users are gone), started again."""
        assert self.redis is not None
        self.redis.stop()
        time.sleep(down_seconds)
        self.redis.start()

    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    def stop(self) -> None:
        if self.operator is not None:
            self.operator.stop()
        if self.api is not None:
            self.api.close()
        if self.proxy is not None:
            self.proxy.stop()
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()
            shutil.rmtree(self.postgres.data_dir, ignore_errors=True)
        if self.owns_devcluster and self.devcluster is not None:
            self.devcluster.stop()


def _create_database(admin_url: str, name: str) -> None:
    async def create() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
