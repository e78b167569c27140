"""The operator's configuration (Helm values end up here), validated at start-up."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from agent_api import replica_auth
from agent_api import tiers as tier_config
from agent_api.db import tenants

ENV_CONFIG_FILE = "AGENTCLUSTERS_OPERATOR_CONFIG"


class WebhookSettings(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    host: str = "127.0.0.1"
    """Address the API server calls (a Service DNS name in a cluster)."""
    listen: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 9443
    cert_dir: str = ""
    """Holds webhook.crt and webhook.key; generated self-signed when they are missing."""
    configuration_name: str = "agentclusters.io"
    """Name of the ValidatingWebhookConfiguration the operator keeps up to date."""
    secret_reference_check_exempt: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    """Users whose writes skip the check that they may get every Secret a spec newly references,
    because they check it for the people they act for (the MCP gateway's ServiceAccount)."""


class LeaderElectionSettings(BaseModel):
    """Leader election on a coordination.k8s.io Lease (agent_operator/leadership.py): every
    replica serves the admission webhook, only the Lease holder reconciles. The defaults are
    client-go's; tests scale them down."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    enabled: bool = True
    """False: this process reconciles unconditionally (one operator, and nothing else ever
    runs one against the same cluster)."""
    lease_name: Annotated[str, Field(min_length=1, max_length=253,
                                     pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")] = "agentclusters-operator"
    lease_namespace: str = ""
    """Empty: the operator's own namespace (POD_NAMESPACE, else its service account's, else
    `default` outside a cluster)."""
    lease_duration_seconds: Annotated[float, Field(gt=0, le=3600)] = 15.0
    """A candidate takes the Lease over once its record has not changed for this long."""
    renew_deadline_seconds: Annotated[float, Field(gt=0, le=3600)] = 10.0
    """A leader that could not renew for this long stops reconciling (before any other
    replica may take over: it must be shorter than leaseDurationSeconds)."""
    retry_period_seconds: Annotated[float, Field(gt=0, le=3600)] = 2.0
    """Pause between two attempts to acquire or renew."""

    @model_validator(mode="after")
    def _ordered(self) -> LeaderElectionSettings:
        if not self.retry_period_seconds < self.renew_deadline_seconds < self.lease_duration_seconds:
            raise ValueError(
                "leaderElection needs retryPeriodSeconds < renewDeadlineSeconds < leaseDurationSeconds "
                f"(got {self.retry_period_seconds}, {self.renew_deadline_seconds}, "
                f"{self.lease_duration_seconds}): a leader must stop before another replica may "
                "consider its Lease expired, and must try to renew more than once before it gives up")
        return self


def load(path: str | Path | None = None) -> OperatorSettings:
    """Settings from a YAML file (`AGENTCLUSTERS_OPERATOR_CONFIG`), with DATABASE_URL and
    REDIS_URL from the environment when the file leaves them empty, and the replica auth key
    from the environment only (the file is a ConfigMap)."""
    path = path or os.environ.get(ENV_CONFIG_FILE)
    data = yaml.safe_load(Path(path).read_text("utf-8")) if path else {}
    if "replicaAuthKey" in (data or {}) or "replica_auth_key" in (data or {}):
        raise ValueError(f"the settings file {path} holds the replica auth key: remove it (the file is a "
                         f"ConfigMap) and set {replica_auth.MASTER_KEY_ENV} in the environment instead")
    settings = OperatorSettings.model_validate(data or {})
    updates = {}
    if not settings.database_url:
        updates["database_url"] = os.environ.get("DATABASE_URL", "")
    if not settings.redis_url:
        updates["redis_url"] = os.environ.get("REDIS_URL", "")
    if "tiers" not in (data or {}):
        updates["tiers"] = tier_config.load()
    updates["replica_auth_key"] = os.environ.get(replica_auth.MASTER_KEY_ENV, "")
    return settings.model_copy(update=updates)


class OperatorSettings(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    image: str = "ghcr.io/agent-clusters/agent-clusters:0.1.0"
    """Image of replica pods whose AgentCluster names none."""
    runtime_command: list[str] = Field(default_factory=lambda: ["agentclusters", "runtime"])
    """Command that starts the agent runtime inside a replica pod."""
    database_url: str = ""
    """PostgreSQL, as the operator's privileged role: owner of the schema (it applies the
    migrations) and CREATEROLE (it creates each namespace's role). Never handed to replicas;
    the gateway uses the same role."""
    runtime_database_url: str = ""
    """How replica pods reach PostgreSQL when that differs from the operator's address (e.g. a
    PgBouncer); its user and password are replaced by each namespace's own role. Empty: the
    operator's databaseUrl."""
    runtime_database_pooling: Literal["session", "transaction"] = "session"
    """`transaction` when runtimeDatabaseUrl is a PgBouncer in transaction pooling mode (the
    replicas' AGENT_DATABASE_POOLING: no statement cache, no LISTEN)."""
    credential_rotation_days: Annotated[float, Field(ge=0)] = 0
    """Issue each namespace new database credentials when its current ones are this old (the
    pods roll one at a time); 0 never rotates by age."""
    redis_url: str = ""
    runtime_secret_name: str = "agentclusters-runtime"
    """Secret the operator keeps in every namespace with AgentClusters (DATABASE_URL with the
    namespace's own role, REDIS_URL)."""
    runtime_port: int = 8080
    termination_grace_period_seconds: Annotated[int, Field(ge=1, le=3600)] = 30
    resync_seconds: Annotated[float, Field(gt=0)] = 30.0
    """Every cluster is reconciled at least this often, even without events."""
    workers: Annotated[int, Field(ge=1, le=64)] = 4
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = 0
    """Plain-HTTP port for Prometheus' `GET /metrics` (docs/operations.md, Metrics); 0 serves
    none. The chart sets it (metrics.operatorPort)."""
    metrics_host: str = "0.0.0.0"
    """Address the metrics port listens on (127.0.0.1 when the operator runs on a workstation)."""
    tiers: tier_config.TierConfig = Field(default_factory=lambda: tier_config.DEFAULT)
    webhook: WebhookSettings | None = None
    leader_election: LeaderElectionSettings = Field(default_factory=LeaderElectionSettings)
    """The validating admission webhook; None runs without one (the CRD's own checks only)."""
    replica_auth_key: str = Field("", repr=False, exclude=True)
    """The master key each cluster's replica token is derived from (agent_api.replica_auth);
    read from AGENTCLUSTERS_REPLICA_AUTH_KEY by `load`, never from the settings file."""

    @field_validator("database_url", "runtime_database_url")
    @classmethod
    def _postgresql_url(cls, url: str) -> str:
        """A URL the namespaces' tenant URLs can be built from (checked here, at start-up,
        rather than at the first namespace)."""
        if url:
            try:
                tenants.tenant_url(url, "role", "password")
            except ValueError as error:
                raise ValueError(f"{error} (e.g. postgresql://user:password@host:5432/agents)") from error
        return url

