"""Who this replica is (from the environment) and what it runs (from PostgreSQL).

The operator writes the spec into `cluster_configs` and NOTIFYs `agent_config`; the watcher
reloads on that wake-up and also polls, so a lost notification only delays a change, never
loses it; a dropped listening connection is re-established at once and followed by a reload.
Changes apply without a restart: the scheduler reads `watcher.current` on every tick.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import asyncpg

from agent_api import replica_auth
from agent_api.db import queries
from agent_runtime import database, spec

log = logging.getLogger(__name__)
CHANNEL = "agent_config"
FIRES_CHANNEL = "agent_fires"  # a fire was handed back (ReleaseFire): claim it now


@dataclass(frozen=True)
class Identity:
    namespace: str
    cluster: str
    replica: str
    ordinal: int
    pod_ip: str
    database_url: str
    redis_url: str
    http_port: int = 8080
    shutdown_grace_seconds: float = 25.0
    config_poll_seconds: float = 10.0
    # 'transaction' behind PgBouncer in transaction pooling mode: no LISTEN, no statement cache
    database_pooling: str = "session"
    scheduler_poll_seconds: float = 5.0
    # The bearer token callers of /run, /chat, /metrics and /hooks must present
    # (agent_api.replica_auth); the server refuses to start without one.
    replica_token: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Identity:
        env = os.environ if env is None else env
        required = ["AGENT_NAMESPACE", "AGENT_CLUSTER", "AGENT_REPLICA", "POD_IP",
                    "DATABASE_URL", "REDIS_URL", replica_auth.TOKEN_ENV]
        missing = [name for name in required if not env.get(name)]
        if missing:
            hint = ""
            if replica_auth.TOKEN_ENV in missing:
                hint = (f" ({replica_auth.TOKEN_ENV} is the credential callers of this replica must "
                        f"present; the operator sets it from the Secret {replica_auth.SECRET_NAME}, "
                        f"key {env.get('AGENT_CLUSTER') or '<cluster>'})")
            raise ValueError(f"missing required environment variables: {', '.join(missing)}{hint}")
        pooling = env.get("AGENT_DATABASE_POOLING", "session")
        if pooling not in database.POOLING_MODES:
            raise ValueError(
                f"AGENT_DATABASE_POOLING={pooling!r} is not a pooling mode: use 'session' (a "
                "direct connection or a session-mode pooler) or 'transaction' (PgBouncer in "
                "transaction pooling mode)")
        return cls(
            namespace=env["AGENT_NAMESPACE"],
            cluster=env["AGENT_CLUSTER"],
            replica=env["AGENT_REPLICA"],
            ordinal=int(env.get("AGENT_ORDINAL", "0")),
            pod_ip=env["POD_IP"],
            database_url=env["DATABASE_URL"],
            redis_url=env["REDIS_URL"],
            http_port=int(env.get("AGENT_HTTP_PORT", "8080")),
            shutdown_grace_seconds=float(env.get("AGENT_SHUTDOWN_GRACE_SECONDS", "25")),
            config_poll_seconds=float(env.get("AGENT_CONFIG_POLL_SECONDS", "10")),
            database_pooling=pooling,
            scheduler_poll_seconds=float(env.get("AGENT_SCHEDULER_POLL_SECONDS", "5")),
            replica_token=env[replica_auth.TOKEN_ENV],
        )

    @property
    def listens(self) -> bool:
        """LISTEN needs a session of its own: not through a transaction-mode pooler."""
        return self.database_pooling == "session"

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.cluster}"


class ConfigWatcher:
    """Holds the current parsed spec and keeps it fresh."""

    def __init__(self, pool: asyncpg.Pool, identity: Identity) -> None:
        self._pool = pool
        self._identity = identity
        self._wake = asyncio.Event()
        self.current: spec.RuntimeSpec | None = None
        self.changed = asyncio.Event()  # set on every applied change; the scheduler clears it
        self.fires_changed = asyncio.Event()  # a NOTIFY on agent_fires for this cluster

    async def load(self) -> bool:
        """Read the stored spec; True when a new generation was applied."""
        row = await self._pool.fetchrow(
            queries.SQL["LoadConfig"], self._identity.namespace, self._identity.cluster
        )
        if row is None or (self.current and self.current.generation == row["generation"]):
            return False
        raw = row["spec"]
        try:
            parsed = spec.parse(row["generation"], json.loads(raw) if isinstance(raw, str) else raw)
        except spec.InvalidSpec as error:
            # Keep running the last good spec rather than stopping every schedule.
            log.error("spec generation %s is invalid, keeping the previous one: %s",
                      row["generation"], error)
            return False
        self.current = parsed
        self.changed.set()
        log.info("applied spec generation %s", parsed.generation,
                 extra={"generation": parsed.generation,
                        "schedule_errors": parsed.schedule_errors or None})
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Reload on NOTIFY, and at least every `config_poll_seconds`.

        A lost listening connection (PostgreSQL restarted) wakes the loop at once; it then
        reconnects with a short backoff, not the poll interval, and reloads, which picks up
        any change whose NOTIFY was missed meanwhile.
        """
        listener: asyncpg.Connection | None = None
        retry_seconds = 0.0
        while not stop.is_set():
            # Cleared before reading, so a NOTIFY that lands during the read wakes us again.
            self._wake.clear()
            try:
                if self._identity.listens and (listener is None or listener.is_closed()):
                    listener = await database.connect(self._identity.database_url)
                    listener.add_termination_listener(self._on_listener_lost)
                    await listener.add_listener(CHANNEL, self._on_notify)
                    await listener.add_listener(FIRES_CHANNEL, self._on_fires_notify)
                    # Whatever was released while we were not listening: look once.
                    self.fires_changed.set()
                await self.load()
                retry_seconds = 0.0
            except Exception as error:  # the watcher must never die: no change would apply
                if isinstance(error, database.TRANSIENT):
                    log.warning("config reload failed, will retry: %r", error)
                else:
                    log.exception("config reload failed unexpectedly, will retry")
                if listener is not None and not listener.is_closed():
                    listener.terminate()
                listener = None
                retry_seconds = min(max(retry_seconds * 2, 0.2), 5.0)
            timeout = self._identity.config_poll_seconds
            if retry_seconds:
                timeout = min(timeout, retry_seconds)
            waiters = [asyncio.create_task(self._wake.wait()), asyncio.create_task(stop.wait())]
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
        if listener is not None and not listener.is_closed():
            await listener.close()

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        if payload == self._identity.key:
            self._wake.set()

    def _on_fires_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        if payload == self._identity.key:
            self.fires_changed.set()

    def _on_listener_lost(self, _conn: object) -> None:
        self._wake.set()
