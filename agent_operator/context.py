"""What every reconcile needs, built once at operator start-up."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field

import asyncpg
import redis.asyncio as aioredis

from agent_operator.kube import Kube
from agent_operator.settings import OperatorSettings


@dataclass
class Context:
    kube: Kube
    settings: OperatorSettings
    db: asyncpg.Pool
    redis: aioredis.Redis
    """Admin connection: creates each namespace's ACL user (agent_operator.redis_acl)."""
    # One allocation at a time per namespace: names and slots are namespace-wide.
    namespace_locks: defaultdict[str, asyncio.Lock] = field(
        default_factory=lambda: defaultdict(asyncio.Lock)
    )
    # (namespace, cluster) -> generation last written to PostgreSQL by this process.
    stored_generation: dict[tuple[str, str], int] = field(default_factory=dict)
    # Namespace -> monotonic time its runtime Secret was last checked.
    secrets_checked: dict[str, float] = field(default_factory=dict)
    # (namespace, cluster, uid) -> monotonic time its replica token was last checked.
    replica_secrets_checked: dict[tuple[str, str, str], float] = field(default_factory=dict)
    # Namespace -> the credentials version of its runtime Secret (pods carry it in their
    # template hash), as of the last check.
    credentials_versions: dict[str, str] = field(default_factory=dict)
    # Namespace -> the resourceVersion of its runtime Secret that PostgreSQL (and the other
    # services) were last made to agree with, by this process.
    credentials_synced: dict[str, str] = field(default_factory=dict)
