"""The runtime's PostgreSQL connections: bounded in number, bounded in time, pooler-aware.

Budget: one pooled connection at idle (the pool's minimum) plus the config listener, so two
per idle replica; a busy replica grows the pool to `POOL_MAX_SIZE` and shrinks back after
`POOL_IDLE_SECONDS`. Every statement has a timeout and every connect has one, so a half-open
socket (a failed-over host, a partition) surfaces as an error instead of a hang; the server
ends transactions left idle by a frozen replica.

Behind PgBouncer in transaction pooling mode (`AGENT_DATABASE_POOLING=transaction`) there is
no statement cache (a server connection is not ours between transactions), no startup
parameters (PgBouncer refuses unknown ones; set its `idle_transaction_timeout` instead) and no
LISTEN (the scheduler and the config watcher poll).
"""

from __future__ import annotations

import asyncio

import asyncpg

# Every database failure the runtime treats as transient: server errors, a dropped or
# half-open connection, a timeout, and asyncpg's own client-side state errors (a pooled
# connection the server had just terminated can fail with InternalClientError).
TRANSIENT: tuple[type[BaseException], ...] = (
    OSError, TimeoutError, asyncio.TimeoutError, asyncpg.PostgresError,
    asyncpg.InterfaceError, asyncpg.InternalClientError,
)

POOL_MAX_SIZE = 8
POOL_IDLE_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 5.0
STATEMENT_TIMEOUT_SECONDS = 10.0
# Every runtime transaction is a handful of statements; none is idle for seconds.
IDLE_IN_TRANSACTION_TIMEOUT_MS = 5000
POOLING_MODES = ("session", "transaction")


async def _no_reset(_conn: asyncpg.Connection) -> None:
    """The runtime leaves no session state behind (no SET, LISTEN or session lock on pooled
    connections), so the pool skips asyncpg's reset query: one round trip less per use."""


def connect_kwargs(pooling: str) -> dict:
    """asyncpg's connection arguments for a pooling mode (validated by config.Identity)."""
    kwargs: dict = {"timeout": CONNECT_TIMEOUT_SECONDS,
                    "command_timeout": STATEMENT_TIMEOUT_SECONDS}
    if pooling == "transaction":
        kwargs["statement_cache_size"] = 0
    else:
        # A replica frozen (SIGSTOP, a paused VM) inside a short claim or planning transaction
        # would hold its row locks and stall that schedule for everyone; the server ends such
        # a transaction, and the lease rules take it from there. Keepalives let the server
        # notice a vanished client.
        kwargs["server_settings"] = {
            "idle_in_transaction_session_timeout": str(IDLE_IN_TRANSACTION_TIMEOUT_MS),
            "tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5",
            "tcp_keepalives_count": "3",
        }
    return kwargs


async def create_pool(url: str, pooling: str = "session", min_size: int = 1,
                      max_size: int = POOL_MAX_SIZE) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        url, min_size=min_size, max_size=max_size,
        max_inactive_connection_lifetime=POOL_IDLE_SECONDS, reset=_no_reset,
        **connect_kwargs(pooling),
    )


async def connect(url: str, pooling: str = "session") -> asyncpg.Connection:
    return await asyncpg.connect(url, **connect_kwargs(pooling))
